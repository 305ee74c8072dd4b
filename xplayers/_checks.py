"""Input validation shared by layers, models and the solver.

Every error names the argument, what it got (shape, dtype, backend) and what
was expected, so a user sees the problem without reading the layer's code.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from . import backends

MODES = ("train", "test")


#: 'numpy float32 array of shape (2, 3)', for error messages.
describe = backends.describe_array


def namespace(**arrays: Any) -> ModuleType:
    """The namespace of the named arrays; BackendError naming them if mixed."""
    return backends.get_namespace(**arrays)


def check_ndim(name: str, x: Any, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d {layout}, got a {describe(x)}")


def check_shape(name: str, x: Any, expected: tuple[int | None, ...], why: str = "") -> None:
    """``expected`` may hold None for a free dimension."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape, strict=True)
    )
    if not ok:
        dims = ["*" if e is None else str(e) for e in expected]
        want = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
        raise ValueError(
            f"{name} must have shape {want}{' ' + why if why else ''}, got a {describe(x)}"
        )


def check_floating(name: str, x: Any, xp: ModuleType) -> None:
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating array, got a {describe(x)}")


def check_count(name: str, value: Any, allow_zero: bool = False) -> int:
    """A Python or NumPy integer >= 1 (>= 0 with ``allow_zero``), as an int."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        want = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {want} integer, got {value!r}")
    return int(value)


def check_mode(param_name: str, params: dict) -> str:
    mode = params.get("mode", "train")
    if mode not in MODES:
        raise ValueError(f"{param_name}['mode'] must be one of {MODES}, got {mode!r}")
    return mode


def check_labels(name: str, y: Any, n: int, num_classes: int, xp: ModuleType) -> None:
    """``y``: (N,) integer class labels in [0, num_classes)."""
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the scores, got a {describe(y)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"{name} must hold integer class labels, got a {describe(y)}")
