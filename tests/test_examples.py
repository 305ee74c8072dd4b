"""The example scripts and the train-step benchmark, each in its fast setting."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from subprocess_helpers import REPO, assert_clean_usage_error, assert_png, parse_number, run_python

import xplayers.backends as backends

EXAMPLES = REPO / "examples"


def _run_ok(script: str, *args: str, cwd) -> str:
    proc = run_python(EXAMPLES / script, *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_train_fc(tmp_path) -> None:
    out = _run_ok("train_fc.py", "--epochs", "2", "--out", str(tmp_path), cwd=tmp_path)
    assert 0.0 <= parse_number(r"val accuracy:\s+([0-9.]+)", out) <= 1.0
    assert_png(tmp_path / "train_fc.png")


def test_train_fc_writes_to_current_directory_by_default(tmp_path) -> None:
    _run_ok("train_fc.py", "--epochs", "1", cwd=tmp_path)
    assert_png(tmp_path / "train_fc.png")


def test_compare_optimizers(tmp_path) -> None:
    out = _run_ok("compare_optimizers.py", "--epochs", "1", "--out", str(tmp_path), cwd=tmp_path)
    for rule in ("sgd ", "sgd_momentum", "rmsprop", "adam"):
        assert rule in out
    assert_png(tmp_path / "compare_optimizers.png")


def test_batchnorm_dropout(tmp_path) -> None:
    _run_ok(
        "batchnorm_dropout.py",
        *("--epochs", "1", "--dropout-epochs", "1", "--out", str(tmp_path)),
        cwd=tmp_path,
    )
    assert_png(tmp_path / "batchnorm.png")
    assert_png(tmp_path / "dropout.png")


@pytest.mark.parametrize("script", ["train_fc.py", "compare_optimizers.py", "batchnorm_dropout.py"])
def test_examples_reject_an_unknown_backend(script: str, tmp_path) -> None:
    proc = run_python(EXAMPLES / script, "--backend", "foo", cwd=tmp_path)
    assert_clean_usage_error(proc, "--backend")


def test_train_step_benchmark_smoke() -> None:
    if backends.unavailable_reason("torch") is not None:
        pytest.skip("the benchmark compares against torch")
    proc = run_python(
        REPO / "benchmarks" / "bench_train_step.py", "--rounds", "1", "--repeats", "2"
    )
    assert proc.returncode == 0, proc.stderr
    assert parse_number(r"torch native = ([0-9.]+)", proc.stdout) > 0


def test_conv_benchmark_measures_peak_memory(capsys) -> None:
    """The memory row, run from a large process as the benchmark runs it after
    its timings: each contender's child reports its own peak (not the
    parent's, which a child's ru_maxrss inherits), a positive number of MiB
    under ten times the inputs (x, dout: 32 MiB each)."""
    if backends.unavailable_reason("torch") is not None:
        pytest.skip("the benchmark compares against torch")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_conv
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    ballast = np.ones(1 << 28, dtype=np.uint8)  # 256 MiB the children must not inherit
    bench_conv.bench_memory(bench_conv.Setup("numpy", 2))
    del ballast
    out = capsys.readouterr().out
    ours = parse_number(r"ours +([0-9.]+) MiB", out)
    torch = parse_number(r"torch +([0-9.]+) MiB", out)
    assert 0 < ours < 640 and 0 < torch < 640, out


#: The lowerings bench_conv.py names in its rows.
LOWERING_NAMES = ("flat", "channels-last", "rows", "pointwise")


def test_conv_benchmark_sweep_lowerings_smoke() -> None:
    """``--sweep --lowerings --quick``: a row per shape with a time for flat windows,
    the fastest lowering and the rule's pick, then the summary (no timing asserted)."""
    if backends.unavailable_reason("torch") is not None:
        pytest.skip("the benchmark compares against torch")
    proc = run_python(REPO / "benchmarks" / "bench_conv.py", "--sweep", "--lowerings", "--quick")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.count("|") == 2][1:]
    assert len(rows) >= 3, proc.stdout
    names = ("flat", "channels_last", "rows", "pointwise")
    for line in rows:
        times = re.findall(r"([0-9.]+)ms", line)
        assert len(times) >= 1 and all(float(t) > 0 for t in times), line
        best, pick = re.search(r"\| (\w+), (\w+) \(([0-9.]+)x\)$", line).groups()[:2]
        assert best in names and pick in names, line
    assert re.search(r"auto vs the fastest lowering: worst [0-9.]+x, geometric mean", proc.stdout)


def test_conv_benchmark_sweep_smoke() -> None:
    """``--sweep --quick``: a row per shape with two positive ratios (fwd, fwd+bwd) and the
    layout named, then the summary line over those rows (no timing asserted)."""
    if backends.unavailable_reason("torch") is not None:
        pytest.skip("the benchmark compares against torch")
    proc = run_python(REPO / "benchmarks" / "bench_conv.py", "--sweep", "--quick")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.count("|") == 3][
        1:
    ]  # less the header
    assert len(rows) >= 3, proc.stdout
    for line in rows:
        ratios = [float(r) for r in re.findall(r"([0-9.]+)x\b", line)]
        assert len(ratios) == 2 and all(r > 0 for r in ratios), line
        assert line.rsplit("|", 1)[1].strip() in LOWERING_NAMES, line
    summary = re.search(
        r"sweep: worst ([0-9.]+)x \((.+)\), geometric mean ([0-9.]+)x over (\d+) shapes",
        proc.stdout,
    )
    assert summary, proc.stdout
    worst, gmean = float(summary[1]), float(summary[3])
    assert int(summary[4]) == len(rows)
    assert 0 < gmean <= worst
    assert any(line.startswith(summary[2]) for line in rows)
