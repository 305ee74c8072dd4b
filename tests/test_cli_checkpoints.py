"""`xplayers evaluate`, `xplayers predict` and the training guards, in process; crafted
checkpoints through `evaluate` and `train --resume` (in process, and three fresh-process runs)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from crafted_checkpoints import CRAFTS, craft, read, write
from subprocess_helpers import assert_clean_usage_error, run_cli

import xplayers.backends as backends
from xplayers.cli import main
from xplayers.data import get_digits_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "2", "--quiet", "--checkpoint", str(folder / "d")]) == 0
    return folder / "d_epoch_2.safetensors"


def test_quiet_prints_only_the_results(trained, capsys) -> None:
    capsys.readouterr()
    assert main(["train", "--epochs", "1", "--quiet"]) == 0
    labels = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert labels == ["train accuracy", "val accuracy", "test accuracy", "training time"]


def test_evaluate_reports_the_accuracy_predict_agrees(backend, trained, tmp_path, capsys) -> None:
    capsys.readouterr()
    place = ["--backend", backend.name, *(["--device", backend.device] if backend.device else [])]
    assert main(["evaluate", str(trained), *place]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test accuracy: ") and "(300 rows of digits)" in out
    accuracy = float(out.split()[2])
    data = get_digits_data()
    np.save(tmp_path / "x.npy", data["X_test"])
    labels, scores = tmp_path / "labels.npy", tmp_path / "scores.npy"
    args = ["predict", str(trained), str(tmp_path / "x.npy"), *place]
    assert main([*args, "--output", str(labels)]) == 0
    assert main([*args, "--output", str(scores), "--scores"]) == 0
    predicted = np.load(labels)
    assert predicted.shape == (300,) and predicted.dtype == np.int64
    assert np.mean(predicted == data["y_test"]) == pytest.approx(accuracy, abs=1e-4)
    np.testing.assert_array_equal(np.argmax(np.load(scores), axis=1), predicted)


def _usage_error(capsys, argv, *needles) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err
    message = err.strip().splitlines()[-1]  # argparse's usage lines, then one error line
    for needle in needles:
        assert needle in message, (needle, err)


def test_bad_checkpoints_and_inputs_are_usage_errors(trained, tmp_path, capsys) -> None:
    marker = tmp_path / "PWNED"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Exploit()))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(trained.read_bytes()[:200])
    for path in (evil, truncated):
        _usage_error(capsys, ["evaluate", str(path)], str(path))
        _usage_error(capsys, ["predict", str(path), "x.npy"], str(path))
        _usage_error(capsys, ["train", "--resume", str(path)], "--resume", str(path))
    assert not marker.exists()
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 5), dtype=np.float32))
    _usage_error(capsys, ["predict", str(trained), str(wrong)], "INPUT.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    _usage_error(capsys, ["predict", str(trained), str(tmp_path / "obj.npy")], "INPUT.npy")


def test_train_on_a_named_device_and_evaluate_there(trained, tmp_path, capsys) -> None:
    if backends.unavailable_reason("array_api_strict") is not None:
        pytest.skip("array_api_strict is not installed")
    capsys.readouterr()
    place = ["--backend", "array_api_strict", "--device", "device1"]
    run = ["train", *place, "--epochs", "1", "--normalization", "batchnorm", "--dropout", "0.8"]
    assert main([*run, "--checkpoint", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("backend: array_api_strict (device: device1)")
    assert main(["evaluate", str(tmp_path / "d_epoch_1.safetensors"), *place]) == 0
    assert 0.5 < float(capsys.readouterr().out.split()[2]) <= 1.0


def test_bad_devices_are_usage_errors(capsys) -> None:
    _usage_error(
        capsys, ["train", "--backend", "numpy", "--device", "cuda:3"], "--device", "cuda:3"
    )
    if backends.unavailable_reason("array_api_strict") is None:
        nf64 = ["--backend", "array_api_strict", "--device", "no_float64", "--dtype", "float64"]
        _usage_error(capsys, ["train", *nf64], "--dtype", "no_float64")


def test_training_guards_fail_before_training(trained, tmp_path, capsys) -> None:
    _usage_error(
        capsys, ["train", "--resume", str(trained), "--epochs", "1"], "--epochs", "2 epochs"
    )
    _usage_error(capsys, ["train", "--batch-size", "5000"], "--batch-size", "1197 training rows")
    _usage_error(capsys, ["train", "--plot", "/proc/curves.png"], "--plot")
    _usage_error(capsys, ["train", "--hidden-dims", "7", "--resume", str(trained)], "--hidden-dims")


def test_an_interrupted_run_names_its_checkpoint_and_the_resume_command(
    tmp_path, capsys, monkeypatch
) -> None:
    from xplayers.solver import Solver

    real = Solver._step

    def interrupt_in_epoch_2(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(Solver, "_step", interrupt_in_epoch_2)
    name = str(tmp_path / "r")
    assert main(["train", "--epochs", "3", "--quiet", "--checkpoint", name]) == 130
    err = capsys.readouterr().err
    assert f"latest checkpoint: {name}_epoch_1.safetensors (epoch 1)" in err
    assert f"resume with: xplayers train --epochs 3 --quiet --checkpoint {name} --resume " in err


_SMALL_NET = ["--hidden-dims", "16,8", "--normalization", "batchnorm", "--quiet"]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, object]:
    """Each crafted file, made from a small batch-norm run of the command line."""
    folder = tmp_path_factory.mktemp("crafted")
    argv = ["train", *_SMALL_NET, "--epochs", "2", "--checkpoint", str(folder / "b")]
    assert main(argv) == 0
    good = folder / "b_epoch_2.safetensors"
    return {"good": good, **{name: craft(good, name, folder) for name in CRAFTS}}


def test_crafted_checkpoints_are_one_line_usage_errors(crafted, capsys) -> None:
    for name, (_, field) in CRAFTS.items():
        path = str(crafted[name])
        resume = ["train", *_SMALL_NET, "--resume", path, "--epochs", "3"]
        _usage_error(capsys, resume, "argument --resume", path, field)
        if name != "settings_batch_size_huge":  # fine for a model, wrong for the data only
            _usage_error(capsys, ["evaluate", path], "argument CHECKPOINT", path, field)
    assert not (crafted["good"].parent / "elsewhere").exists()


def test_evaluate_refuses_recorded_data_that_are_not_strings(crafted, tmp_path, capsys) -> None:
    meta, tensors = read(crafted["good"])
    for key, value in (("data_dir", 123), ("dataset", ["digits"])):
        path = write(tmp_path / f"{key}.safetensors", {**meta, "info": {key: value}}, tensors)
        _usage_error(capsys, ["evaluate", str(path)], str(path), f"info['{key}']")


def test_a_folder_where_a_checkpoint_goes_fails_before_training(crafted, tmp_path, capsys) -> None:
    (tmp_path / "run_epoch_0.safetensors").mkdir()
    argv = ["train", "--epochs", "1", "--quiet", "--checkpoint", str(tmp_path / "run")]
    _usage_error(capsys, argv, "argument --checkpoint", "run_epoch_0.safetensors' is a directory")
    good = crafted["good"]
    (good.parent / "b_epoch_3.safetensors").mkdir()
    resume = ["train", *_SMALL_NET, "--resume", str(good), "--epochs", "3"]
    _usage_error(capsys, resume, "argument --resume", "b_epoch_3.safetensors' is a directory")
    (good.parent / "b_epoch_3.safetensors").rmdir()


def test_crafted_checkpoints_in_a_fresh_process(crafted, tmp_path) -> None:
    wide = str(crafted["hidden_dims_1e6"])  # 7.28 TiB of weights, once
    assert_clean_usage_error(run_cli("evaluate", wide), "argument CHECKPOINT", wide, "init_args")
    elsewhere = str(crafted["settings_write_elsewhere"])
    proc = run_cli("train", *_SMALL_NET, "--resume", elsewhere, "--epochs", "3")
    assert_clean_usage_error(proc, "argument --resume", "checkpoint_name")
    assert not (crafted["good"].parent / "elsewhere").exists()
    (tmp_path / "r_epoch_0.safetensors").mkdir()
    proc = run_cli("train", "--epochs", "1", "--checkpoint", tmp_path / "r")
    assert_clean_usage_error(proc, "argument --checkpoint", "is a directory")
    assert len(proc.stderr.strip().splitlines()[-1]) < 400
