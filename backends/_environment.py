"""The environment variables that tune the backends, parsed in one place.

Each is read at every use, so a process may change it between runs; a value
that does not parse raises ``EnvironmentVariableError`` naming the variable,
its value and what it must be. ``check_environment()`` reads them all, for a
program that wants to fail at start rather than in the middle of a run.
"""

from __future__ import annotations

import math
import os

from ._errors import EnvironmentVariableError

#: Number of chunk workers (1: chunks run one after another); default: the BLAS threads.
THREADS_ENV = "XPLAYERS_NUM_THREADS"
#: Megabytes of work arrays kept between calls (0 keeps none).
WORKSPACE_ENV = "XPLAYERS_WORKSPACE_MB"
_THREADS_EXPECTED = "a positive integer (the number of chunk workers; 1 turns them off)"
_WORKSPACE_EXPECTED = "a number of megabytes >= 0 (0 keeps no work arrays)"


def _text(variable: str) -> str | None:
    """The variable's value, stripped; None when unset or blank."""
    return os.environ.get(variable, "").strip() or None


def threads_setting() -> int | None:
    """``XPLAYERS_NUM_THREADS`` as a count >= 1, or None when unset."""
    text = _text(THREADS_ENV)
    if text is None:
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise EnvironmentVariableError(THREADS_ENV, text, _THREADS_EXPECTED)
    return n


def workspace_mb_setting() -> float | None:
    """``XPLAYERS_WORKSPACE_MB`` as a finite number >= 0, or None when unset."""
    text = _text(WORKSPACE_ENV)
    if text is None:
        return None
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not (math.isfinite(mb) and mb >= 0):
        raise EnvironmentVariableError(WORKSPACE_ENV, text, _WORKSPACE_EXPECTED)
    return mb


def check_environment() -> None:
    """Parse every tuning variable now; EnvironmentVariableError for the first bad one."""
    threads_setting()
    workspace_mb_setting()
