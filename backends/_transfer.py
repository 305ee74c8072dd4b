"""Explicit moves of arrays between the host and the backends."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._namespace import numpy_dtype, resolve_dtype
from ._registry import _adapter_of, get_backend


def to_numpy(x: Any) -> np.ndarray:
    """Any backend's array -> numpy.ndarray on the host (explicit transfer)."""
    if isinstance(x, np.ndarray):
        return x
    b = _adapter_of(x)
    if b is None:
        return np.asarray(x)
    return b.to_numpy(x)


def asarray(obj: Any, backend: str | None = None, dtype: Any = None, device: Any = None) -> Any:
    """Host data or another backend's array -> an array of ``backend``.

    An array already of that backend (and dtype) is returned as it is, as
    numpy.asarray does; data from another library is copied, never shared.
    """
    target = get_backend(backend)
    xp = target.namespace()
    xdtype = resolve_dtype(xp, dtype)
    if target.owns(obj) and device is None:
        return obj if xdtype is None or obj.dtype == xdtype else xp.astype(obj, xdtype)
    host = to_numpy(obj) if _adapter_of(obj) is not None else np.asarray(obj)
    if xdtype is not None:
        host = host.astype(numpy_dtype(xdtype), copy=False)
    return target.from_numpy(host, device)


def to_backend(tree: Any, backend: str, dtype: Any = None) -> Any:
    """An array, or a dict/list/tuple of them (a model's params), moved to ``backend``.

    Non-array leaves (numbers, strings) are kept as they are.
    """
    target = get_backend(backend)
    if isinstance(tree, dict):
        return {k: to_backend(v, target, dtype) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        moved = [to_backend(v, target, dtype) for v in tree]
        return type(tree)(moved) if isinstance(tree, tuple) else moved
    if isinstance(tree, (np.ndarray, np.generic)) or _adapter_of(tree) is not None:
        floating = numpy_dtype(tree.dtype).kind == "f"
        return asarray(tree, target.name, dtype if floating else None)
    return tree
