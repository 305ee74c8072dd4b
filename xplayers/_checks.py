"""Input validation shared by layers, models and the solver.

Every error names the argument, what it got (shape, dtype, backend) and what
was expected, so a user sees the problem without reading the layer's code.
"""

from __future__ import annotations

import reprlib
from types import ModuleType
from typing import Any

import numpy as np

from . import backends

MODES = ("train", "test")


#: 'numpy float32 array of shape (2, 3)', for error messages.
describe = backends.describe_array

_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxdict = 2, 4, 4
_short.maxstring = _short.maxother = _short.maxlong = 60


def short(value: Any) -> str:
    """``repr(value)``, cut short (a file's values may be huge or deeply nested)."""
    return _short.repr(value)


def namespace(**arrays: Any) -> ModuleType:
    """The namespace of the named arrays; BackendError naming them if mixed."""
    return backends.get_namespace(**arrays)


def writable(**arrays: Any) -> bool:
    """Whether the named arrays (of one namespace, else the BackendError of ``namespace``)
    can be written in place; False (JAX) sends a layer down its functional route."""
    namespace(**arrays)
    return backends.writes_in_place(next(iter(arrays.values())))


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


def check_param(name: str, p: Any, x: Any, xp: ModuleType) -> Any:
    """A parameter (w, b, gamma, beta) in x's dtype: integer and bool arrays are promoted
    to it, as the course's NumPy code does; a floating array of another precision is a
    TypeError naming both dtypes (the layers never change a float's precision silently)."""
    if p.dtype == x.dtype:
        return p
    if xp.isdtype(p.dtype, ("integral", "bool")):
        return xp.astype(p, x.dtype)
    if xp.isdtype(p.dtype, "real floating"):
        p_dtype, x_dtype = backends.dtype_name(p.dtype), backends.dtype_name(x.dtype)
        raise TypeError(
            f"{name} is {p_dtype} but x is {x_dtype}: cast one of them so they share a "
            f"dtype ({name} is a {describe(p)}, x is a {describe(x)})"
        )
    raise TypeError(f"{name} must be a real array, got a {describe(p)}")


def check_dout(dout: Any, shape: tuple[int | None, ...], dtype: Any, layout: str) -> None:
    """A backward's upstream gradient: ``shape`` (``layout`` says what it is, for the
    error) and ``dtype``, the dtype the forward ran in. A wrong shape is a ValueError,
    another dtype (another precision, an integer) a TypeError, alike on every backend:
    the gradients would otherwise mix precisions, or fail inside the library."""
    check_shape("dout", dout, shape, layout)
    if dout.dtype != dtype:
        want, got = backends.dtype_name(dtype), backends.dtype_name(dout.dtype)
        raise TypeError(
            f"dout is {got} but the forward ran in {want}: cast dout to {want} "
            f"(dout is a {describe(dout)}, expected {want})"
        )


def check_int(name: str, value: Any, low: int) -> int:
    """A Python or NumPy integer >= ``low``, as an int (stride, pad, pool sizes, G)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or value < low:
        want = {0: "a non-negative int", 1: "a positive int"}.get(low, f"an int >= {low}")
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return int(value)


def check_param_dict(name: str, params: Any) -> dict:
    """``bn_param``, ``ln_param``, ``dropout_param``: a dict (None is not one)."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict of settings, got {params!r}")
    return params


def check_mode(param_name: str, params: dict) -> str:
    mode = check_param_dict(param_name, params).get("mode", "train")
    if mode not in MODES:
        raise ValueError(f"{param_name}['mode'] must be one of {MODES}, got {mode!r}")
    return mode


class LabelError(ValueError, TypeError):
    """Labels that are not (N,) integers in [0, C): a ValueError (and a TypeError, as
    the wrong-dtype case used to be)."""


def check_labels(
    name: str,
    y: Any,
    n: int,
    num_classes: int,
    xp: ModuleType,
    known_range: tuple[int, int] | None = None,
) -> Any:
    """``y``: (N,) integer class labels in [0, num_classes); returned as int64 indices.

    The range is checked with one reduction and one read-back per call (a
    single ``any`` over both bounds; the extremes only for the error message),
    or, given ``known_range`` (the (min, max) the caller knows y lies within,
    as a Solver knows its training labels'), against those numbers with no
    read-back, which on a GPU would wait for the device. A traced y (inside
    ``jax.jit``) cannot be read back: it needs ``known_range``.
    """
    if y.ndim != 1 or y.shape[0] != n:
        raise LabelError(f"{name} must have shape ({n},) to match the scores, got a {describe(y)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise LabelError(f"{name} must hold integer class labels, got a {describe(y)}")
    if known_range is not None:
        bad = n and (known_range[0] < 0 or known_range[1] >= num_classes)
    elif n and backends.device_of(y) is None:
        # A traced array (inside jax.jit) has no values to read back.
        raise LabelError(
            f"{name} is a {describe(y)} (inside jax.jit): its labels cannot be read "
            f"back to check that they lie in [0, {num_classes}); pass "
            f"label_range=(min, max), the range the labels are known to lie within"
        )
    else:
        bad = n and bool(xp.any(xp.logical_or(y < 0, y >= num_classes)))
    if bad:
        low, high = known_range or (int(xp.min(y)), int(xp.max(y)))
        raise LabelError(
            f"{name} must hold class labels in [0, {num_classes}) for the {num_classes} "
            f"classes of the scores; its values range from {low} to {high} ({describe(y)})"
        )
    # take_along_axis wants the library's index dtype: int64 on torch (int32/int16/uint8
    # labels fail there), int32 on JAX without x64 (int64 would warn and truncate).
    index = xp.__array_namespace_info__().default_dtypes()["indexing"]
    return y if y.dtype == index else xp.astype(y, index)
