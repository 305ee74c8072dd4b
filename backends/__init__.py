"""The backend registry: which array libraries exist here, which one is the
default, and how arrays move between them.

Importing this package imports no array library beyond NumPy and never
initialises CUDA: each adapter probes its library only when asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np

from ._base import Backend
from .cupy_backend import CupyBackend
from .numpy_backend import NumpyBackend
from .strict_backend import StrictBackend
from .torch_backend import TorchBackend

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "asarray",
    "available_backends",
    "backend_of",
    "cache_block_rows",
    "chunk_workers",
    "default_backend",
    "describe",
    "describe_array",
    "get_backend",
    "get_namespace",
    "is_array",
    "map_chunks",
    "matmul_into",
    "numpy_dtype",
    "on_cpu",
    "resolve_dtype",
    "slices_are_views",
    "strided_view",
    "synchronize",
    "to_backend",
    "to_numpy",
    "unavailable_reason",
    "uniform_like",
]


class BackendError(ValueError):
    """An unknown or unavailable backend, or arrays of several backends mixed."""


_ADAPTERS: dict[str, Backend] = {
    b.name: b for b in (NumpyBackend(), CupyBackend(), TorchBackend(), StrictBackend())
}
#: Every backend name xplayers knows, available here or not.
BACKEND_NAMES: tuple[str, ...] = tuple(_ADAPTERS)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, e.g. ['numpy', 'torch']."""
    return [name for name, b in _ADAPTERS.items() if b.is_available()]


def describe() -> list[tuple[str, bool, str]]:
    """(name, available, device or reason) for every known backend."""
    rows = []
    for name, b in _ADAPTERS.items():
        reason = b.unavailable_reason()
        if reason is None:
            try:
                rows.append((name, True, b.device_name(b.default_device())))
            except Exception as exc:  # a device that answers detection but not queries
                rows.append((name, True, f"device query failed: {exc}"))
        else:
            rows.append((name, False, reason))
    return rows


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot be used here, or None when it can."""
    if name not in _ADAPTERS:
        raise BackendError(f"unknown backend {name!r}: known backends are {list(BACKEND_NAMES)}")
    return _ADAPTERS[name].unavailable_reason()


def default_backend() -> str:
    """'cupy' where available, else 'numpy'; env XPLAYERS_BACKEND overrides.

    The variable is read at each call so a process can switch between runs.
    """
    wanted = os.environ.get("XPLAYERS_BACKEND")
    if wanted:
        return get_backend(wanted).name
    return "cupy" if _ADAPTERS["cupy"].is_available() else "numpy"


def get_backend(name: str | None = None) -> Backend:
    """The adapter for ``name`` (default: ``default_backend()``), checked usable."""
    if name is None:
        name = default_backend()
    if isinstance(name, Backend):
        return name
    adapter = _ADAPTERS.get(str(name).lower())
    if adapter is None:
        raise BackendError(
            f"unknown backend {name!r}: known backends are {list(BACKEND_NAMES)}, "
            f"available here: {available_backends()}"
        )
    reason = adapter.unavailable_reason()
    if reason is not None:
        raise BackendError(
            f"backend {adapter.name!r} is not available here ({reason}); "
            f"available: {available_backends()}"
        )
    return adapter


# Array type -> adapter: layers ask for a namespace on every call, so the
# lookup for a type seen before is one dict access.
_BY_TYPE: dict[type, Backend] = {}


def _adapter_of(x: Any) -> Backend | None:
    b = _BY_TYPE.get(type(x))
    if b is not None:
        return b
    for b in _ADAPTERS.values():
        if b.owns(x):
            _BY_TYPE[type(x)] = b
            return b
    return None


def is_array(x: Any) -> bool:
    """True for an array of any known backend (numpy arrays included)."""
    return _adapter_of(x) is not None


def backend_of(x: Any) -> str:
    """The backend name of array ``x``; BackendError for a non-array."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(
            f"expected an array of one of {list(BACKEND_NAMES)}, got {type(x).__name__}"
        )
    return b.name


def describe_array(x: Any) -> str:
    """'numpy float32 array of shape (2, 3)', for error messages."""
    b = _adapter_of(x)
    where = b.name if b is not None else type(x).__name__
    return f"{where} {numpy_dtype(x.dtype).name} array of shape {tuple(x.shape)}"


_SCALARS = (int, float, bool, type(None))


def get_namespace(*arrays: Any, **named: Any) -> ModuleType:
    """The Array API namespace shared by the arrays (None and Python scalars ignored).

    Keyword arguments name the arrays, so a mixed call says which argument
    came from which backend: ``get_namespace(x=x, w=w)``. Layers call this on
    every forward and backward, so the common case is a few dict lookups.
    """
    found = None
    for a in (*arrays, *named.values()):
        if type(a) in _SCALARS:
            continue
        b = _BY_TYPE.get(type(a)) or _adapter_of(a)
        if b is None or (found is not None and b is not found):
            _raise_mixed(arrays, named)
        found = b
    if found is None:
        raise BackendError("no arrays given: cannot tell which backend to use")
    return found.namespace()


def _raise_mixed(arrays: tuple, named: dict[str, Any]) -> None:
    """The slow path of get_namespace: say which argument is what."""
    items = [(f"argument {i}", a) for i, a in enumerate(arrays)] + list(named.items())
    found: dict[str, tuple[str, Any]] = {}
    for label, a in items:
        if type(a) in _SCALARS:
            continue
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


def numpy_dtype(dtype: Any) -> np.dtype:
    """Any library's dtype (or a string) -> the numpy dtype of the same name."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


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


def uniform_like(x: Any, seed: int | None = None) -> Any:
    """Uniform [0, 1) samples with the shape, dtype, device and backend of ``x``."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"uniform_like needs an array, got {type(x).__name__}")
    return b.uniform(tuple(x.shape), x.dtype, x.device, seed)


def on_cpu(x: Any) -> bool:
    """True when array ``x`` lives in host memory (False on a GPU or for a non-array)."""
    b = _adapter_of(x)
    return b is not None and b.on_cpu(x)


def cache_block_rows(x: Any, elements: int) -> int | None:
    """Rows of ``x`` per block of about ``elements`` values, where blocking pays.

    Element-wise chains over a large array run from memory; on a CPU they run
    several times faster over blocks that stay in cache. On a GPU, blocking
    only multiplies kernel launches, so the answer there is None.
    """
    if not on_cpu(x) or x.ndim == 0:
        return None
    row = 1
    for d in x.shape[1:]:
        row *= d
    return max(1, elements // max(row, 1))


def matmul_into(a: Any, b: Any, out: Any) -> Any:
    """``out[...] = a @ b`` for 2-d arrays of one backend and dtype; returns ``out``.

    Where the library's matmul takes ``out=`` (numpy, cupy, torch) the product
    is written straight into ``out``, so a reused work buffer saves a fresh
    allocation (and its page faults) per call; elsewhere a temporary is assigned.
    """
    adapter = _adapter_of(out)
    if adapter is None:
        raise BackendError(f"matmul_into needs an array for out, got {type(out).__name__}")
    return adapter.matmul_into(a, b, out)


def strided_view(x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A read-only view of C-contiguous ``x`` of ``shape`` with element ``strides``
    (overlapping windows allowed), or None where the library has none
    (array_api_strict: the standard has no such view). Callers keep a portable
    path for None, tested against the view."""
    b = _adapter_of(x)
    return None if b is None else b.strided_view(x, shape, strides)


def chunk_workers(x: Any) -> int:
    """How many chunks of work on arrays like ``x`` ``map_chunks`` runs at once:
    the BLAS thread count on numpy (``XPLAYERS_NUM_THREADS`` overrides it), 1
    elsewhere. Split work into at least this many chunks to use every core."""
    b = _adapter_of(x)
    return 1 if b is None else b.chunk_workers()


def map_chunks(fn: Callable[[Any], Any], items: Iterable[Any], like: Any) -> list[Any]:
    """[fn(item) for item in items], in order, for work on arrays like ``like``.

    On numpy the items run concurrently on a thread pool while the BLAS is held
    at one thread (numpy's copies are single-threaded, its BLAS is not: this
    keeps every core busy). ``fn`` must write only its own part of any shared
    output and return what the caller combines, so results are the same bits
    whatever the scheduling. Other libraries parallelise inside each
    operation and run the items one by one.
    """
    adapter = _adapter_of(like)
    if adapter is None:
        raise BackendError(f"map_chunks needs an array for like, got {type(like).__name__}")
    return adapter.map_chunks(fn, items)


def slices_are_views(x: Any) -> bool:
    """True when basic slices of ``x`` share its memory, so in-place updates of a
    slice reach ``x`` (numpy, torch, cupy). The standard leaves this open;
    array_api_strict answers False so code paths that rely on it get tested.
    """
    b = _adapter_of(x)
    return b is not None and b.slices_are_views


def synchronize(*names: str) -> None:
    """Wait for the device work queued by these backends (all when none named)."""
    for name in names or available_backends():
        _ADAPTERS[name].synchronize()


def iter_adapters() -> Iterable[Backend]:
    return iter(_ADAPTERS.values())
