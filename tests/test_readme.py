"""The README's "Using it" snippet runs as printed, on an install without
the optional backends (torch, array_api_strict), and learns the digits."""

from __future__ import annotations

import re

from subprocess_helpers import REPO, run_python

HIDE_OPTIONAL = "import sys\nsys.modules['torch'] = sys.modules['array_api_strict'] = None\n"


def _snippet() -> str:
    section = (REPO / "README.md").read_text().split("## Using it", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block under 'Using it'"
    return match.group(1)


def test_using_it_runs_without_optional_backends() -> None:
    proc = run_python("-c", HIDE_OPTIONAL + _snippet())
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip().splitlines()[-1]) > 0.9
