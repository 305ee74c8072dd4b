"""The command line against crafted files and careless flags: INPUT.npy, CIFAR-10
batches, --output/--plot destinations, model sizes, seeds and XPLAYERS_* values.
Each ends in exit status 2 with one message naming what to fix, before any work."""

from __future__ import annotations

import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from subprocess_helpers import assert_clean_usage_error, run_cli

from xplayers.cli import main
from xplayers.cli._inference import scores
from xplayers.data import get_digits_data


@pytest.fixture(scope="module")
def bn_checkpoint(tmp_path_factory) -> Path:
    """A batch-norm net on the digits: its params include beta1, beta2."""
    folder = tmp_path_factory.mktemp("bn")
    run = ["train", "--epochs", "1", "--quiet", "--normalization", "batchnorm"]
    assert main([*run, "--checkpoint", str(folder / "bn")]) == 0
    return folder / "bn_epoch_1.safetensors"


def _usage_error(capsys, argv, *needles) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err
    for needle in needles:
        assert needle in captured.err, (needle, captured.err)
    return captured.err


def _bomb(path: Path, shape: tuple[int, ...], data_bytes: int) -> Path:
    """A .npy whose header claims ``shape`` float64 but holds ``data_bytes`` bytes."""
    header = io.BytesIO()
    fields = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(header, fields)
    path.write_bytes(header.getvalue() + bytes(data_bytes))
    return path


# ------------------------------------------------------------------ predict
def test_predict_reads_the_header_before_allocating(bn_checkpoint, tmp_path, capsys) -> None:
    # 384 bytes claiming 10**12 rows: 512 TB if allocated.
    bomb = _bomb(tmp_path / "bomb.npy", (10**12, 64), 256)
    assert bomb.stat().st_size == 384
    _usage_error(capsys, ["predict", bn_checkpoint, bomb], "INPUT.npy", "512,000")
    # One row short of what the header says: truncated.
    cut = _bomb(tmp_path / "cut.npy", (3, 64), 2 * 64 * 8)
    _usage_error(capsys, ["predict", bn_checkpoint, cut], "1,024 bytes", "needs 1,536")
    # Rows that do not fit the model are refused from the header alone.
    wide = _bomb(tmp_path / "wide.npy", (10**9, 65), 0)
    _usage_error(capsys, ["predict", bn_checkpoint, wide], "rows of 65 values", "takes rows of 64")
    (tmp_path / "text.npy").write_text("1,2,3\n")
    _usage_error(capsys, ["predict", bn_checkpoint, tmp_path / "text.npy"], "not a .npy array")


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        (np.zeros((2, 64), dtype=bool), False),
        (np.zeros((2, 64), dtype=np.complex64), False),
        (np.array([[1, None]] * 2, dtype=object), False),
        (np.zeros(2, dtype=[("a", "f4", (64,))]), False),
        (np.arange(2 * 64).reshape(2, 64), True),
        (np.arange(2 * 64, dtype=np.uint8).reshape(2, 64), True),
        (np.linspace(-1, 1, 128).reshape(2, 64).astype(">f8"), True),
        (np.linspace(-1, 1, 128).reshape(2, 1, 8, 8).astype(np.float16), True),
    ],
    ids=["bool", "complex", "object", "structured", "int64", "uint8", "big-endian", "float16"],
)
def test_predict_takes_real_numbers_of_any_width(
    bn_checkpoint, tmp_path, capsys, values, accepted
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, values, allow_pickle=True)
    if not accepted:
        _usage_error(capsys, ["predict", bn_checkpoint, path], "INPUT.npy", "integer or float")
        return
    out = tmp_path / "labels.npy"
    assert main(["predict", str(bn_checkpoint), str(path), "--output", str(out)]) == 0
    # The same labels as the values converted to float32 by hand.
    np.save(tmp_path / "f32.npy", values.astype(np.float32).reshape(2, 64))
    assert main(["predict", str(bn_checkpoint), str(tmp_path / "f32.npy")]) == 0
    printed = [int(v) for v in capsys.readouterr().out.split()[-2:]]
    assert np.load(out).tolist() == printed


def test_predict_refuses_rows_with_nan_naming_them(bn_checkpoint, tmp_path, capsys) -> None:
    X = get_digits_data(image=False)["X_test"][:8].astype(np.float64)
    X[2, 5], X[6, 0] = np.nan, np.inf
    np.save(tmp_path / "nan.npy", X)
    _usage_error(
        capsys,
        ["predict", bn_checkpoint, tmp_path / "nan.npy"],
        "NaN or infinite",
        "2 of 8 rows (2, 6)",
    )
    # Finite as float64 but infinite as the model's float32.
    np.save(tmp_path / "big.npy", np.full((2, 64), 1e300))
    _usage_error(capsys, ["predict", bn_checkpoint, tmp_path / "big.npy"], "as float32", "2 of 2")


def test_no_rows_score_as_no_rows_of_every_class(bn_checkpoint, tmp_path, capsys) -> None:
    from xplayers.checkpoint import load_model

    model = load_model(bn_checkpoint)
    assert "beta1" in model.params
    assert scores(model, np.zeros((0, 64), np.float32), 10).shape == (0, 10)
    np.save(tmp_path / "none.npy", np.zeros((0, 64), np.float32))
    out = tmp_path / "s.npy"
    argv = ["predict", str(bn_checkpoint), str(tmp_path / "none.npy"), "--scores", "--output"]
    assert main([*argv, str(out)]) == 0
    assert np.load(out).shape == (0, 10)


def test_predict_output_is_checked_first_and_written_where_reported(
    bn_checkpoint, tmp_path, capsys
) -> None:
    X = tmp_path / "x.npy"
    np.save(X, np.zeros((3, 64), np.float32))
    run = ["predict", bn_checkpoint, X, "--output"]
    _usage_error(capsys, [*run, tmp_path / "o.txt"], "--output", "FILE.npy")
    _usage_error(capsys, [*run, tmp_path], "--output", "is a directory")
    _usage_error(capsys, [*run, tmp_path / "no" / "o.npy"], "--output", "does not exist")
    # np.save would have written o.NPY.npy; the file is the one named and reported.
    capsys.readouterr()
    assert main([str(a) for a in [*run, tmp_path / "o.NPY"]]) == 0
    assert f"wrote 3 labels to {tmp_path / 'o.NPY'}" in capsys.readouterr().out
    assert np.load(tmp_path / "o.NPY").shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.NPY", "x.npy"]


# -------------------------------------------------- --plot, sizes, seeds, env
def test_every_plot_and_output_follows_one_rule(tmp_path, capsys) -> None:
    missing = tmp_path / "no" / "p.png"
    for command in (["train"], ["parity", "--iterations", "1"]):
        _usage_error(capsys, [*command, "--plot", missing], "--plot", "does not exist")
        _usage_error(capsys, [*command, "--plot", tmp_path / "p.txt"], "--plot", "FILE.png")
        if sys.platform.startswith("linux"):
            _usage_error(capsys, [*command, "--plot", "/proc/p.png"], "--plot", "cannot write")
    assert not missing.parent.exists()


def test_a_model_too_large_to_allocate_names_hidden_dims(capsys) -> None:
    err = _usage_error(capsys, ["train", "--hidden-dims", "1000000,1000000"], "--hidden-dims")
    assert "1,000,076,000,010 parameters" in err and "limit is 100,000,000" in err
    _usage_error(capsys, ["train", "--model", "cnn", "--hidden-dims", "300000"], "--hidden-dims")


def test_a_negative_parity_seed_names_seed(capsys) -> None:
    err = _usage_error(capsys, ["parity", "--seed", "-5"], "--seed", "-5")
    assert "--backends" not in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("XPLAYERS_NUM_THREADS", "abc", "a positive integer"),
        ("XPLAYERS_WORKSPACE_MB", "-1", "a number of megabytes >= 0"),
        ("XPLAYERS_BACKEND", "nope", "a backend available here"),
    ],
)
def test_a_bad_environment_variable_is_a_usage_error(
    capsys, monkeypatch, variable, value, expected
) -> None:
    monkeypatch.setenv(variable, value)
    _usage_error(capsys, ["train", "--epochs", "1"], f"variable {variable}", repr(value), expected)


def _small_cifar(folder: Path, bad_label: int | None = None) -> Path:
    """Batches of 3 images; ``bad_label`` as data_batch_2's last label."""
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [0, 1, 2 if bad_label is None or name != "data_batch_2" else bad_label]
        batch = {b"data": np.zeros((3, 3072), np.uint8), b"labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def test_cifar_batches_too_short_for_the_split_name_data_dir(tmp_path, capsys) -> None:
    folder = _small_cifar(tmp_path / "cifar-10-batches-py")
    argv = ["train", "--dataset", "cifar10", "--data-dir", folder]
    _usage_error(capsys, argv, "--data-dir", "exceeds the 15 rows available")


# ------------------------------------------------- as the user runs them
def test_crafted_files_end_in_one_line_not_a_traceback(bn_checkpoint, tmp_path) -> None:
    bomb = _bomb(tmp_path / "bomb.npy", (10**12, 64), 256)
    assert_clean_usage_error(run_cli("predict", bn_checkpoint, bomb), "INPUT.npy", "bomb.npy")
    folder = _small_cifar(tmp_path / "cifar-10-batches-py", bad_label=255)
    proc = run_cli("train", "--dataset", "cifar10", "--data-dir", folder)
    assert_clean_usage_error(proc, "--data-dir", "data_batch_2", "label 2 is 255")


def test_a_bad_thread_count_in_a_fresh_process(monkeypatch) -> None:
    monkeypatch.setenv("XPLAYERS_NUM_THREADS", "abc")
    proc = run_cli("train", "--epochs", "1")
    assert_clean_usage_error(proc, "XPLAYERS_NUM_THREADS", "'abc'", "positive integer")
