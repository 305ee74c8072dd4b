"""The `xplayers` command, run as a user runs it (a fresh `python -m xplayers`)."""

from __future__ import annotations

import pytest
from subprocess_helpers import (
    assert_clean_usage_error,
    assert_png,
    parse_number,
    run_cli,
)

import xplayers.backends as backends
from xplayers.cli import main

VAL_ACC = r"val accuracy:\s+([0-9.]+)"


def test_backends_lists_every_backend_with_device_or_reason() -> None:
    proc = run_cli("backends")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert set(lines) == set(backends.BACKEND_NAMES)
    assert "  available" in lines["numpy"] and "device: cpu" in lines["numpy"]
    assert lines["numpy"].endswith("devices: cpu")
    for name, available, info in backends.describe():
        if available:
            assert "device:" in lines[name]
            assert lines[name].endswith("devices: " + ", ".join(backends.devices(name)))
        else:  # e.g. cupy on a machine without CUDA: say why
            assert "not available" in lines[name] and "reason:" in lines[name]
            assert info and info in lines[name]


def test_backends_lists_the_strict_devices() -> None:
    if backends.unavailable_reason("array_api_strict") is not None:
        pytest.skip("array_api_strict is not installed")
    line = next(ln for ln in run_cli("backends").stdout.splitlines() if ln.startswith("array_api"))
    listed = line.split("devices: ")[1].split(", ")
    assert {"CPU_DEVICE", "device1", "no_float64"} <= set(listed)


def test_train_short_run_prints_backend_and_accuracies() -> None:
    proc = run_cli("train", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("backend: ")
    assert "(device: " in proc.stdout.splitlines()[0]
    for split in ("train", "val", "test"):
        assert 0.0 <= parse_number(rf"{split} accuracy:\s+([0-9.]+)", proc.stdout) <= 1.0


def test_default_train_reaches_90_percent_validation_accuracy() -> None:
    proc = run_cli("train")
    assert proc.returncode == 0, proc.stderr
    assert parse_number(VAL_ACC, proc.stdout) >= 0.90
    seconds = parse_number(r"training time:\s+([0-9.]+) s", proc.stdout)
    assert seconds < 30
    # 15 epochs of 1197 // 100 = 11 full batches of 100; the time is printed to 0.1 s.
    rate = parse_number(r"\(([0-9,]+) samples/s", proc.stdout.replace(",", ""))
    assert abs(rate * seconds - 15 * 11 * 100) <= 0.05 * rate + 1


def test_plot_writes_png(tmp_path) -> None:
    png = tmp_path / "curves.png"
    proc = run_cli("train", "--epochs", "1", "--quiet", "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert_png(png)


def test_checkpoint_written_and_resumed(tmp_path) -> None:
    first = run_cli("train", "--epochs", "1", "--quiet", "--checkpoint", tmp_path / "run")
    assert first.returncode == 0, first.stderr
    ckpt = tmp_path / "run_epoch_1.safetensors"
    assert ckpt.is_file() and ckpt.stat().st_size > 0
    assert f"checkpoint:     {ckpt}" in first.stdout
    resumed = run_cli("train", "--epochs", "2", "--resume", ckpt)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed:" in resumed.stdout and "at epoch 1" in resumed.stdout
    assert (tmp_path / "run_epoch_2.safetensors").is_file()  # saved under the same name
    # A checkpoint of another architecture is a usage error naming the flag.
    other = run_cli("train", "--quiet", "--hidden-dims", "20", "--resume", ckpt)
    assert_clean_usage_error(other, "--resume", "--hidden-dims")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--backend", "foo"], "--backend"),
        (["--model", "rnn"], "--model"),
        (["--dataset", "cifar10"], "--data-dir"),
        (["--hidden-dims", "100,x"], "--hidden-dims"),
        (["--dropout", "0"], "--dropout"),
        (["--lr", "-1"], "--lr"),
        (["--plot", "/nonexistent-dir/x.png"], "--plot"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(args: list[str], flag: str) -> None:
    assert_clean_usage_error(run_cli("train", *args), flag)


def test_unavailable_backend_gives_the_reason() -> None:
    missing = [(name, info) for name, ok, info in backends.describe() if not ok]
    if not missing:
        pytest.skip("every backend is available here")
    name, reason = missing[0]
    assert_clean_usage_error(run_cli("train", "--backend", name), "--backend", name, reason)


def test_diverged_run_exits_1_with_a_message() -> None:
    proc = run_cli("train", "--update-rule", "sgd", "--lr", "1000", "--quiet")
    assert proc.returncode == 1
    assert "diverged" in proc.stderr and "--lr" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_main_returns_exit_status_in_process(capsys) -> None:
    assert main(["train", "--model", "rnn"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["--version"]) == 0
