"""Work arrays that layers reuse across the chunks of a call and, on the host,
across calls.

Fresh host memory is slow to touch (a page fault per 4 KiB page), so where
the policy says so, work arrays are
kept per thread, keyed by the computation's geometry, for the next call.
All kept arrays together stay within ``workspace_limit()`` bytes:
``XPLAYERS_WORKSPACE_MB`` sets it (default 256; 0 keeps nothing), and
``release_workspace()`` frees them at once (say, after training).
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np

from ._environment import workspace_mb_setting

_DEFAULT_MB = 256

_lock = threading.Lock()
_stores: dict[int, dict[tuple, Any]] = {}  # thread id -> that thread's kept arrays


def workspace_limit() -> int:
    """Bytes of work arrays kept between calls, all threads together."""
    mb = workspace_mb_setting()
    return _DEFAULT_MB << 20 if mb is None else int(mb * (1 << 20))


def workspace_bytes() -> int:
    """Bytes of work arrays kept between calls now."""
    with _lock:
        return sum(_nbytes(a) for store in _stores.values() for a in store.values())


def release_workspace() -> int:
    """Drop every kept work array (of all threads); returns the bytes released.

    Arrays a running call still uses stay alive until it ends; the next call
    allocates afresh.
    """
    with _lock:
        freed = sum(_nbytes(a) for store in _stores.values() for a in store.values())
        for store in _stores.values():
            store.clear()
    return freed


def _nbytes(a: Any) -> int:
    """Bytes of a kept array: the library's own count where it has one (NumPy, torch,
    CuPy; torch's bfloat16 has no NumPy dtype to ask), else from the NumPy dtype of
    the same name (array_api_strict, whose dtypes all have one)."""
    nbytes = getattr(a, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    size = 1
    for d in a.shape:
        size *= d
    return size * np.dtype(str(a.dtype).rsplit(".", 1)[-1]).itemsize


class Workspace:
    """The work arrays of one computation (``key``: its geometry), reused by every chunk.

    ``scratch(name, shape)`` is all zeros when first made and as its last use
    left it after that (scratch, not zeros), so regions a geometry never
    writes (padding, junk columns) stay zero for every later use under the
    same key. Kept arrays
    are looked up in the calling thread's store: chunks that run at once
    each get their own. None of them ever leaves a layer: outputs and caches
    are fresh arrays.
    """

    def __init__(self, xp: ModuleType, like: Any, key: tuple, keep: bool) -> None:
        self.xp, self.dtype, self.device = xp, like.dtype, like.device
        self._keep = keep
        self._call: dict[tuple, Any] = {}
        self._prefix = (key, str(self.dtype), str(self.device))

    def scratch(self, name: str, shape: tuple[int, ...]) -> Any:
        key = (self._prefix, name, shape)
        thread = threading.get_ident()
        found = self._call.get((thread, key))
        if found is None and self._keep:
            with _lock:
                found = _stores.get(thread, {}).get(key)
        if found is not None:
            return found
        a = self.xp.zeros(shape, dtype=self.dtype, device=self.device)
        self._call[(thread, key)] = a
        if self._keep:
            self._keep_array(key, a)
        return a

    @staticmethod
    def _keep_array(key: tuple, a: Any) -> None:
        """Keep ``a`` for later calls if it fits the limit, first dropping this
        thread's older arrays when they are what stands in the way."""
        limit, size = workspace_limit(), _nbytes(a)
        with _lock:
            store = _stores.setdefault(threading.get_ident(), {})
            held = sum(_nbytes(v) for s in _stores.values() for v in s.values())
            if held + size > limit:
                held -= sum(_nbytes(v) for v in store.values())
                store.clear()
            if held + size <= limit:
                store[key] = a
