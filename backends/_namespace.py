"""Which namespace an array belongs to, and dtypes by name across libraries."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ._errors import BackendError
from ._registry import _BY_TYPE, BACKEND_NAMES, _adapter_of


def describe_array(x: Any) -> str:
    """'numpy float32 array of shape (2, 3)', for error messages; libraries with
    several devices add where it lives ('torch ... on cuda:1')."""
    b = _adapter_of(x)
    where = b.name if b is not None else type(x).__name__
    text = f"{where} {dtype_name(x.dtype)} array of shape {tuple(x.shape)}"
    if b is not None and not b.single_device:
        text += f" on {b.device_label(b.array_device(x))}"
    return text


def numpy_dtype(dtype: Any) -> np.dtype:
    """Any library's dtype (or a string) -> the numpy dtype of the same name."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def dtype_name(dtype: Any) -> str:
    """'float32', 'bfloat16': a dtype's name in any library, also for dtypes NumPy lacks."""
    try:
        return numpy_dtype(dtype).name
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]


_SCALARS = (int, float, bool, type(None))


def get_namespace(*arrays: Any, **named: Any) -> ModuleType:
    """The Array API namespace shared by the arrays (None and Python scalars ignored).

    Keyword arguments name the arrays, so a mixed call says which argument
    came from which backend: ``get_namespace(x=x, w=w)``. Layers call this on
    every forward and backward, so the common case is a few dict lookups.
    """
    found = device = None
    for a in (*arrays, *named.values()):
        if type(a) in _SCALARS:
            continue
        b = _BY_TYPE.get(type(a)) or _adapter_of(a)
        if b is None or (found is not None and b is not found):
            _raise_mixed(arrays, named)
        if found is None:
            found = b
            device = None if b.single_device else b.array_device(a)
        elif device is not None and b.array_device(a) not in (device, None):
            _raise_mixed_devices(arrays, named)
    if found is None:
        raise BackendError("no arrays given: cannot tell which backend to use")
    return found.namespace()


def _labelled(arrays: tuple, named: dict[str, Any]) -> list[tuple[str, Any]]:
    """(argument label, array) for every array argument, scalars left out."""
    items = [(f"argument {i}", a) for i, a in enumerate(arrays)] + list(named.items())
    return [(label, a) for label, a in items if type(a) not in _SCALARS]


def _raise_mixed_devices(arrays: tuple, named: dict[str, Any]) -> None:
    """Arrays of one backend on several devices: name the first array on each."""
    found: dict[str, tuple[str, Any]] = {}
    for label, a in _labelled(arrays, named):
        b = _adapter_of(a)
        found.setdefault(b.device_label(b.array_device(a)), (label, a))
    parts = ", ".join(f"{label} is a {describe_array(a)}" for label, a in found.values())
    raise BackendError(
        f"arrays on several devices ({', '.join(found)}) mixed in one call ({parts}); "
        f"nothing is copied behind your back: move them to one device with "
        f"xplayers.to_backend(tree, backend, device=...)"
    )


def _raise_mixed(arrays: tuple, named: dict[str, Any]) -> None:
    """The slow path of get_namespace: say which argument is what."""
    found: dict[str, tuple[str, Any]] = {}
    for label, a in _labelled(arrays, named):
        b = _adapter_of(a)
        if b is None:
            raise BackendError(
                f"{label} is a {type(a).__name__}, not an array of a known backend "
                f"({list(BACKEND_NAMES)}); convert it with xplayers.asarray first"
            )
        found.setdefault(b.name, (label, a))
    parts = ", ".join(f"{label} is a {describe_array(a)}" for label, a in found.values())
    raise BackendError(
        f"arrays of several backends mixed in one call ({parts}); "
        f"move them to one backend with xplayers.to_backend(...)"
    )


def resolve_dtype(xp: ModuleType, dtype: Any) -> Any:
    """A numpy dtype, a string ('float32') or a namespace dtype -> ``xp``'s dtype."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        name = dtype
    else:
        name = numpy_dtype(dtype).name
    result = getattr(xp, name, None)
    if result is None:
        raise BackendError(f"dtype {dtype!r} is not a dtype of {xp.__name__}")
    return result
