"""`xplayers evaluate`, `xplayers predict` and the training guards, in process."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

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
    for needle in needles:
        assert needle in err, (needle, err)


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
