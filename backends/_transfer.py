"""Explicit moves of arrays between the host, the backends and their devices."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ._base import Backend
from ._errors import BackendError
from ._namespace import numpy_dtype, resolve_dtype
from ._registry import _ADAPTERS, _adapter_of, get_backend


def is_host(x: Any) -> bool:
    """True for data already on the host in NumPy's form, as the numpy adapter
    owns it: numpy arrays and numpy scalars. Reading it moves nothing and waits
    for no device. Other libraries' arrays are False even in host memory (a
    torch CPU tensor, an array_api_strict array): ``to_numpy`` converts them."""
    return _ADAPTERS["numpy"].owns(x)


def to_numpy(x: Any) -> np.ndarray:
    """Any backend's array -> numpy.ndarray on the host (explicit transfer)."""
    if isinstance(x, np.ndarray):
        return x
    b = _adapter_of(x)
    if b is None:
        return np.asarray(x)
    return b.to_numpy(x)


def asarray(obj: Any, backend: str | None = None, dtype: Any = None, device: Any = None) -> Any:
    """Host data or another backend's array -> an array of ``backend`` on ``device``.

    ``device`` (None: the backend's default device; see ``resolve_device``)
    is a device string or the library's device object. An array already of
    that backend, dtype and device (or of that backend with ``device=None``)
    is returned as it is, as numpy.asarray does; data from another library or
    device is copied, never shared. A dtype the device cannot hold (strict's
    'no_float64' and float64) is a BackendError.
    """
    target = get_backend(backend)
    xp = target.namespace()
    xdtype = resolve_dtype(xp, dtype)
    if target.owns(obj):
        if device is not None:
            dev = target.resolve_device(device)
            if obj.device != dev:
                _check_dtype(target, obj.dtype if xdtype is None else xdtype, dev)
                obj = array_api_compat.to_device(obj, dev)
        return obj if xdtype is None or obj.dtype == xdtype else xp.astype(obj, xdtype)
    dev = target.resolve_device(device)
    host = to_numpy(obj) if _adapter_of(obj) is not None else np.asarray(obj)
    if xdtype is not None:
        host = host.astype(numpy_dtype(xdtype), copy=False)
    _check_dtype(target, host.dtype, dev)
    return target.from_numpy(host, dev)


def _check_dtype(target: Backend, dtype: Any, device: Any) -> None:
    if not target.has_dtype(numpy_dtype(dtype), device):
        name = numpy_dtype(dtype).name
        raise BackendError(
            f"backend {target.name!r} device {target.device_label(device)!r} has no {name} "
            f"arrays (dtype={name!r} was asked for, or {name} data came without a dtype): "
            f"{target.dtype_hint(name)} (devices here: {target.devices()})"
        )


def to_backend(tree: Any, backend: str, dtype: Any = None, device: Any = None) -> Any:
    """An array, or a dict/list/tuple of them (a model's params), moved to
    ``backend`` (and ``device``; None: the backend's default device for data
    from elsewhere, the array's own device for arrays already there).

    ``dtype`` applies to floating arrays only; non-array leaves (numbers,
    strings) are kept as they are.
    """
    target = get_backend(backend)
    if isinstance(tree, dict):
        return {k: to_backend(v, target, dtype, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        moved = [to_backend(v, target, dtype, device) for v in tree]
        return type(tree)(moved) if isinstance(tree, tuple) else moved
    if isinstance(tree, (np.ndarray, np.generic)) or _adapter_of(tree) is not None:
        floating = numpy_dtype(tree.dtype).kind == "f"
        return asarray(tree, target.name, dtype if floating else None, device)
    return tree
