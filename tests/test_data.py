"""Data loaders: CIFAR-10 from files in the official pickle format, the bundled digits."""

from __future__ import annotations

import _codecs
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from xplayers import _cifar_batch
from xplayers.data import (
    DatasetError,
    get_cifar10_data,
    get_digits_data,
    load_cifar10,
    load_digits,
)

ROWS = 6  # rows per fake batch: 30 training images, 6 test images


def _write_batch(path: Path, seed: int, protocol: int) -> tuple[np.ndarray, list[int]]:
    """A batch laid out as the real files: b'data' (N, 3072) uint8, b'labels' list."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(ROWS, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=ROWS)]
    batch = {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(ROWS)],
    }
    raw = pickle.dumps(batch, protocol=protocol)
    if protocol == 2:
        # Files written by NumPy 1.x (the real ones) name numpy.core, not numpy._core.
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(raw)
    return data, labels


@pytest.fixture
def fake_cifar(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {}
    for i in range(1, 6):
        # Protocol 2 as in the original (Python 2) files, and a current one.
        written[f"data_batch_{i}"] = _write_batch(folder / f"data_batch_{i}", i, 2 + i % 3)
    written["test_batch"] = _write_batch(folder / "test_batch", 99, 2)
    return folder, written


def test_load_cifar10_reads_the_pickles_as_nchw(fake_cifar) -> None:
    folder, written = fake_cifar
    Xtr, ytr, Xte, _ = load_cifar10(folder)
    assert Xtr.shape == (5 * ROWS, 3, 32, 32) and Xte.shape == (ROWS, 3, 32, 32)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    data, labels = written["data_batch_2"]
    row = ROWS + 3  # fourth image of the second batch
    # The row holds the red plane, then green, then blue, each 32x32 row-major.
    assert Xtr[row, 0, 0, 0] == data[3, 0] and Xtr[row, 0, 1, 0] == data[3, 32]
    assert Xtr[row, 1, 0, 0] == data[3, 1024] and Xtr[row, 2, 31, 31] == data[3, 3071]
    np.testing.assert_array_equal(Xtr[row].ravel(), data[3])
    assert ytr[ROWS : 2 * ROWS].tolist() == labels
    np.testing.assert_array_equal(Xte.reshape(ROWS, -1), written["test_batch"][0])
    # The parent folder works too, and so does another dtype.
    Xtr64, *_ = load_cifar10(folder.parent, dtype=np.float64)
    assert Xtr64.dtype == np.float64
    np.testing.assert_array_equal(Xtr64, Xtr)


def test_get_cifar10_data_splits_and_centres(fake_cifar) -> None:
    folder, _ = fake_cifar
    Xtr, ytr, Xte, _ = load_cifar10(folder)
    data = get_cifar10_data(folder, num_training=20, num_validation=5, num_test=4)
    assert sorted(data) == ["X_test", "X_train", "X_val", "y_test", "y_train", "y_val"]
    assert data["X_train"].shape == (20, 3, 32, 32) and data["X_val"].shape == (5, 3, 32, 32)
    assert data["X_test"].shape == (4, 3, 32, 32)
    mean = Xtr[:20].mean(axis=0)
    np.testing.assert_allclose(data["X_val"], Xtr[20:25] - mean, atol=1e-4)
    np.testing.assert_allclose(data["X_test"], Xte[:4] - mean, atol=1e-4)
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_array_equal(data["y_val"], ytr[20:25])
    raw = get_cifar10_data(folder, 20, 5, 4, subtract_mean=False)
    np.testing.assert_array_equal(raw["X_train"], Xtr[:20])
    with pytest.raises(ValueError, match="num_training=29 \\+ num_validation=5 = 34 exceeds"):
        get_cifar10_data(folder, num_training=29, num_validation=5)


def test_missing_cifar_folder_says_where_to_get_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path / "nowhere")
    msg = str(info.value)
    assert "nowhere" in msg and "cifar-10-batches-py" in msg and "data_batch_1" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg


def test_missing_batch_is_named(fake_cifar) -> None:
    folder, _ = fake_cifar
    os.remove(folder / "data_batch_4")
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        load_cifar10(folder)


def test_a_pickle_that_runs_code_is_refused(fake_cifar, tmp_path) -> None:
    folder, _ = fake_cifar
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": []}, f)
    with pytest.raises(DatasetError, match=r"data_batch_3.*refusing to load (posix|nt)\.mkdir"):
        load_cifar10(folder)
    assert not marker.exists()


class _Call:
    """Pickles as the call ``fn(*args)``: how a crafted file asks numpy for arrays."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


_U1 = np.dtype(np.uint8)
_ROWS_OK = np.zeros((ROWS, 3072), np.uint8)
_LABELS_OK = [0] * ROWS
_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        # 10001 rows that are one byte, repeated by zero strides.
        (
            {b"data": _Call(np.ndarray, (10001, 3072), _U1, b"\0", 0, (0, 0)), b"labels": []},
            "refusing numpy.ndarray",
        ),
        # An array of 2**40 bytes asked for before its data is seen.
        (
            {b"data": _Call(_multiarray._reconstruct, np.ndarray, (2**40,), b"b")},
            r"refusing _reconstruct",
        ),
        ({b"data": _Call(_codecs.encode, "x", "rot13")}, r"refusing _codecs.encode"),
        ({b"labels": _LABELS_OK}, "has no 'data' field"),
        ({b"data": _ROWS_OK}, "has no 'labels' field"),
        ([_ROWS_OK, _LABELS_OK], "holds a list, not a dict"),
        ({b"data": _ROWS_OK, b"labels": _LABELS_OK[:-1]}, r"'labels' holds 5 labels for 6"),
        ({b"data": _ROWS_OK[:, :100], b"labels": _LABELS_OK}, r"'data' has shape \(6, 100\)"),
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, r"'data' has shape \(0,"),
        (
            {b"data": _ROWS_OK.astype(np.float32), b"labels": _LABELS_OK},
            "uint8 array, got a float32",
        ),
        ({b"data": _ROWS_OK, b"labels": [0, 1, 2, 255, 4, 5]}, "label 3 is 255; expected"),
        ({b"data": _ROWS_OK, b"labels": [0, 1, -1, 3, 4, 5]}, "label 2 is -1"),
        ({b"data": _ROWS_OK, b"labels": [0, 1.0, 2, 3, 4, 5]}, "label 1 is 1.0"),
        ({b"data": _ROWS_OK, b"labels": np.zeros(ROWS, np.float64)}, "must hold integers"),
    ],
)
def test_a_batch_that_is_not_one_is_a_dataset_error(fake_cifar, batch, message) -> None:
    folder, _ = fake_cifar
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DatasetError, match=message) as info:
        load_cifar10(folder)
    assert "data_batch_3" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_truncated_or_empty_batch_is_a_dataset_error(fake_cifar) -> None:
    folder, _ = fake_cifar
    path = folder / "test_batch"
    whole = path.read_bytes()
    for cut in (whole[: len(whole) // 2], b""):
        path.write_bytes(cut)
        with pytest.raises(DatasetError, match=r"test_batch.* is not a python batch"):
            load_cifar10(folder)


def test_a_batch_file_far_larger_than_cifar_is_refused_unread(fake_cifar, monkeypatch) -> None:
    folder, _ = fake_cifar
    monkeypatch.setattr(_cifar_batch, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DatasetError, match=r"data_batch_1' is [0-9,]+ bytes; a batch is about"):
        load_cifar10(folder)


def test_integer_labels_of_numpy_arrays_and_scalars_load(fake_cifar) -> None:
    folder, _ = fake_cifar
    labels = np.arange(ROWS, dtype=np.uint8)
    batch = {b"data": _ROWS_OK, b"labels": labels}
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=5))
    (folder / "data_batch_3").write_bytes(pickle.dumps({**batch, b"labels": list(labels)}))
    _, ytr, _, _ = load_cifar10(folder)
    assert ytr[ROWS : 3 * ROWS].tolist() == list(range(ROWS)) * 2


def test_load_digits() -> None:
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 16
    assert sorted(set(y.tolist())) == list(range(10))
    assert np.bincount(y).min() >= 170  # about 180 of each digit


def test_get_digits_data_split_scaling_and_seed() -> None:
    data = get_digits_data(num_validation=200, num_test=100, seed=1)
    assert data["X_train"].shape == (1497, 1, 8, 8) and data["X_train"].dtype == np.float32
    assert data["X_val"].shape == (200, 1, 8, 8) and data["X_test"].shape == (100, 1, 8, 8)
    assert data["y_train"].dtype == np.int64
    n = sum(len(data[k]) for k in ("y_train", "y_val", "y_test"))
    assert n == 1797
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0, atol=1e-5)
    again = get_digits_data(num_validation=200, num_test=100, seed=1)
    for k in data:
        np.testing.assert_array_equal(data[k], again[k])
    other = get_digits_data(num_validation=200, num_test=100, seed=2)
    assert not np.array_equal(other["y_val"], data["y_val"])

    flat = get_digits_data(seed=1, subtract_mean=False, image=False, dtype=np.float64)
    assert flat["X_train"].shape == (1197, 64) and flat["X_train"].dtype == np.float64
    assert flat["X_train"].min() == 0 and flat["X_train"].max() == 1
    # The same rows, laid out as images or flat.
    img = get_digits_data(seed=1, subtract_mean=False)
    np.testing.assert_array_equal(img["X_val"].reshape(-1, 64), flat["X_val"].astype(np.float32))
    with pytest.raises(ValueError, match="exceeds the 1797 rows"):
        get_digits_data(num_validation=1000, num_test=1000)
