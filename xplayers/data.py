"""Datasets as host NumPy arrays in the CS231n dict layout.

- CIFAR-10 from the standard ``cifar-10-batches-py`` pickles (downloaded by
  the user; nothing here touches the network).
- The bundled UCI handwritten digits (8x8, 1797 images): a small real
  dataset that needs no download, the default of the command line and the
  examples.

Everything returned is a ``numpy.ndarray``; the Solver moves batches to the
model's backend, so data sets never need to fit in device memory.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._cifar_batch import DatasetError, read_batch

__all__ = ["DatasetError", "get_cifar10_data", "get_digits_data", "load_cifar10", "load_digits"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


# ----------------------------------------------------------------- CIFAR-10
def _cifar_folder(root: str | os.PathLike) -> Path:
    """``root`` itself or ``root/cifar-10-batches-py``, whichever holds the batches."""
    root = Path(root).expanduser()
    for folder in (root, root / _CIFAR_FOLDER):
        if (folder / _CIFAR_TRAIN[0]).is_file():
            return folder
    raise FileNotFoundError(
        f"CIFAR-10 not found at {str(root)!r}: expected the folder {_CIFAR_FOLDER!r} "
        f"(or its parent) holding {', '.join(_CIFAR_TRAIN)} and {_CIFAR_TEST}. "
        f"Download {CIFAR10_URL} (163 MB) and unpack it, e.g. "
        f"`tar -xzf cifar-10-python.tar.gz -C {root}`."
    )


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> X: (N, 3, 32, 32) uint8 NCHW, y: (N,) int64."""
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 batch {str(path)!r} is missing; re-download {CIFAR10_URL} and unpack it"
        )
    return read_batch(path)


def _load_cifar10_uint8(root: str | os.PathLike) -> tuple[np.ndarray, ...]:
    folder = _cifar_folder(root)
    train = [_load_cifar_batch(folder / name) for name in _CIFAR_TRAIN]
    Xte, yte = _load_cifar_batch(folder / _CIFAR_TEST)
    Xtr = np.concatenate([x for x, _ in train])
    ytr = np.concatenate([y for _, y in train])
    return Xtr, ytr, Xte, yte


def load_cifar10(
    root: str | os.PathLike, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the ``cifar-10-batches-py`` folder (``root`` may also be its parent).

    Returns ``Xtr`` (50000, 3, 32, 32), ``ytr`` (50000,), ``Xte`` (10000, 3, 32,
    32), ``yte`` (10000,): images NCHW with pixel values 0..255 as ``dtype``
    (float32 by default: half the memory of CS231n's float64, 600 MB for the
    training set), labels int64. FileNotFoundError says where to get the data
    when the folder is missing; ``DatasetError`` (a ValueError) names the file
    and field of a batch that is not one (truncated, wrong shape or dtype, a
    label outside 0..9, a pickle that asks for more than plain arrays).
    """
    Xtr, ytr, Xte, yte = _load_cifar10_uint8(root)
    return Xtr.astype(dtype), ytr, Xte.astype(dtype), yte


def _check_split(total: int, **counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if sum(counts.values()) > total:
        parts = " + ".join(f"{k}={v}" for k, v in counts.items())
        raise ValueError(f"{parts} = {sum(counts.values())} exceeds the {total} rows available")


def _centre(data: dict[str, np.ndarray], subtract_mean: bool) -> dict[str, np.ndarray]:
    """Subtract the training images' mean image from every split (in place)."""
    if subtract_mean and len(data["X_train"]):
        mean = data["X_train"].mean(axis=0)
        for k in ("X_train", "X_val", "X_test"):
            data[k] -= mean
    return data


def get_cifar10_data(
    root: str | os.PathLike,
    num_training: int = 49000,
    num_validation: int = 1000,
    num_test: int = 1000,
    subtract_mean: bool = True,
    dtype: Any = np.float32,
) -> dict[str, np.ndarray]:
    """CIFAR-10 split as in CS231n: the dict X_train, y_train, X_val, y_val, X_test, y_test.

    Training rows [0, num_training) train, the next ``num_validation``
    validate, the first ``num_test`` test rows test. Images (N, 3, 32, 32) of
    ``dtype`` (extra keyword; float32 by default), minus the training mean
    image when ``subtract_mean``; labels (N,) int64.
    """
    Xtr, ytr, Xte, yte = _load_cifar10_uint8(root)
    _check_split(len(Xtr), num_training=num_training, num_validation=num_validation)
    _check_split(len(Xte), num_test=num_test)
    val = slice(num_training, num_training + num_validation)
    # Converting only the rows kept saves a full-size float copy of the set.
    data = {
        "X_train": Xtr[:num_training].astype(dtype),
        "y_train": ytr[:num_training],
        "X_val": Xtr[val].astype(dtype),
        "y_val": ytr[val],
        "X_test": Xte[:num_test].astype(dtype),
        "y_test": yte[:num_test],
    }
    return _centre(data, subtract_mean)


# ------------------------------------------------------------------- digits
DIGITS_FILE = "digits.csv.gz"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled UCI handwritten digits: X (1797, 64) float64 pixel counts 0..16, y int64.

    Each row is an 8x8 image, row-major; labels are 0..9. Source and licence:
    ``xplayers/datasets/README.txt``.
    """
    resource = importlib.resources.files("xplayers") / "datasets" / DIGITS_FILE
    raw = resource.read_bytes()
    with gzip.open(io.BytesIO(raw), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 65:
        raise ValueError(
            f"{DIGITS_FILE}: expected 65 columns (64 pixels, label), got {table.shape}"
        )
    return table[:, :64].astype(np.float64), table[:, 64]


def get_digits_data(
    num_validation: int = 300,
    num_test: int = 300,
    seed: int | None = 0,
    subtract_mean: bool = True,
    image: bool = True,
    dtype: Any = np.float32,
) -> dict[str, np.ndarray]:
    """The digits as the CS231n dict: X_train, y_train, X_val, y_val, X_test, y_test.

    The 1797 rows are shuffled with ``seed`` (the same seed, the same split),
    then ``num_test`` go to test, ``num_validation`` to validation and the rest
    (1197 by default) to training. Pixels are scaled to [0, 1] (divided by 16)
    and, with ``subtract_mean``, centred on the training mean. X is
    (N, 1, 8, 8) with ``image`` (NCHW, for conv nets and like CIFAR), else
    (N, 64); ``dtype`` float32 by default; labels int64.
    """
    X, y = load_digits()
    _check_split(len(X), num_validation=num_validation, num_test=num_test)
    order = np.random.default_rng(seed).permutation(len(X))
    X = (X[order] / 16.0).astype(dtype)
    y = y[order]
    if image:
        X = X.reshape(-1, 1, 8, 8)
    test, val = slice(0, num_test), slice(num_test, num_test + num_validation)
    train = slice(num_test + num_validation, None)
    data = {
        "X_train": X[train].copy(),
        "y_train": y[train].copy(),
        "X_val": X[val].copy(),
        "y_val": y[val].copy(),
        "X_test": X[test].copy(),
        "y_test": y[test].copy(),
    }
    return _centre(data, subtract_mean)
