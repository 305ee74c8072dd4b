"""Running the command line and the example scripts as a user would: in a
fresh interpreter, against the installed (editable) package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_python(
    *args: str | Path, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh interpreter; stdout/stderr captured as text."""
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"  # never try to open a window
    # The checkout under test, whichever checkout the environment installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m xplayers ARGS``."""
    return run_python("-m", "xplayers", *args, cwd=cwd)


def assert_png(path: Path) -> None:
    """``path`` exists and holds a non-empty PNG image."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert len(data) > len(PNG_SIGNATURE)


def assert_clean_usage_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, an argparse-style message mentioning ``needles``, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "error:" in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def parse_number(pattern: str, text: str) -> float:
    """The number captured by ``pattern`` (one group) in ``text``; fails if absent."""
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))
