"""benchmarks/gpu_check.sh on a machine without a GPU: it says so and runs nothing
else (on a GPU machine it is the GPU check itself, too long for the suite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import xplayers.backends as backends

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_without_a_gpu_the_check_reports_it_and_stops(tmp_path) -> None:
    if backends.unavailable_reason("cupy") is None:
        pytest.skip("a GPU answers here: run benchmarks/gpu_check.sh itself")
    # The script runs $PYTHON: this interpreter, whether or not its venv is activated.
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = (tmp_path / "report.md").read_text()
    assert "## versions: FAILED" in report and backends.unavailable_reason("cupy") in report
    assert report.rstrip().endswith("no usable CuPy GPU here: nothing else was run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "versions.log"]
