"""Run independent chunks of host work on all cores, with the BLAS held at one thread.

NumPy copies and element-wise passes run on one thread; only its BLAS is
threaded. A layer that splits a batch into chunks (each: build a matrix,
multiply, write its rows of the output) therefore leaves cores idle during
the copies. Running the chunks on a pool of threads, each calling a
one-thread BLAS, keeps every core busy for the whole chunk. NumPy releases
the GIL in copies and in matmul, so Python threads suffice.

The BLAS thread count is process-wide (threadpoolctl sets it), so it is held
at one from the first overlapping ``map_chunks`` call that enters until the
last one leaves, and then restored. Workers = the BLAS thread count found
outside such a window (what OPENBLAS_NUM_THREADS, threadpoolctl or the core
count set), or ``XPLAYERS_NUM_THREADS`` when that is set; 1 means sequential.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

from ._environment import threads_setting

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_worker = threading.local()  # .busy is True inside a pool worker
_state: dict[str, Any] = {}


def _reset() -> None:
    """Forget the pool and the BLAS hold (at import, and in a forked child,
    whose copy of the pool has no threads behind it)."""
    global _lock
    _lock = threading.Lock()
    _state.clear()
    _state.update(pool=None, size=0, depth=0, limiter=None, blas=None, blas_threads=None)


_reset()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset)


def _blas() -> Any:
    """threadpoolctl's handle on the loaded BLAS libraries, or False without one."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController

            blas = ThreadpoolController().select(user_api="blas")
            _state["blas"] = blas if blas.lib_controllers else False
        except Exception:  # no threadpoolctl, or a BLAS it cannot drive
            _state["blas"] = False
    return _state["blas"]


def _configured_threads() -> int:
    """Threads the BLAS uses outside our windows (cached while a window is open)."""
    if _state["depth"] == 0 or _state["blas_threads"] is None:
        blas = _blas()
        if not blas:
            _state["blas_threads"] = 1
        else:
            # The controllers' own getters: ``blas.info()`` builds a dict per
            # library, and this runs on every chunked call.
            _state["blas_threads"] = max(
                int(c.get_num_threads() or 1) for c in blas.lib_controllers
            )
    return _state["blas_threads"]


def workers() -> int:
    """How many chunks ``map_chunks`` runs at once (1 inside a pool worker)."""
    if getattr(_worker, "busy", False):
        return 1
    n = threads_setting()
    if n is not None:
        return n if _blas() else 1
    return _configured_threads()


def _enter() -> None:
    with _lock:
        if _state["depth"] == 0:
            _configured_threads()
            _state["limiter"] = _blas().limit(limits=1)
        _state["depth"] += 1


def _leave() -> None:
    with _lock:
        _state["depth"] -= 1
        if _state["depth"] == 0:
            _state["limiter"].restore_original_limits()
            _state["limiter"] = None


def _pool(size: int) -> ThreadPoolExecutor:
    with _lock:
        if _state["pool"] is None or _state["size"] != size:
            old = _state["pool"]
            _state["pool"] = ThreadPoolExecutor(size, thread_name_prefix="xplayers-chunk")
            _state["size"] = size
            if old is not None:
                old.shutdown(wait=False)
        return _state["pool"]


def _as_worker(fn: Callable[[], None]) -> None:
    """Run ``fn`` with this thread marked busy, so nested calls run inline."""
    outer = getattr(_worker, "busy", False)
    _worker.busy = True
    try:
        fn()
    finally:
        _worker.busy = outer


def map_chunks(fn: Callable[[T], R], items: Iterable[T], hold_blas: bool = True) -> list[R]:
    """[fn(item) for item in items], the items run concurrently on the host.

    ``hold_blas``: hold the BLAS at one thread meanwhile (items that multiply
    matrices); items that call no BLAS skip the hold.

    The calling thread and ``workers() - 1`` pool threads take items from one
    queue (waking fewer threads costs less than handing every item over).
    ``fn`` must touch only its own part of any shared output. Results come
    back in the order of ``items``, so a caller that sums them gets the same
    bits on every run. Every item runs even when one fails; the error of the
    first failing item is then re-raised.
    """
    items = list(items)
    most = workers()
    size = min(most, len(items))
    if size <= 1:
        return [fn(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: list[tuple[int, BaseException]] = []
    order = iter(range(len(items)))
    take = threading.Lock()

    def drain() -> None:
        while True:
            with take:
                i = next(order, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # re-raised below, in the caller
                errors.append((i, exc))

    pool = _pool(most - 1)
    if hold_blas:
        _enter()
    try:
        helpers = [pool.submit(_as_worker, drain) for _ in range(size - 1)]
        _as_worker(drain)
        wait(helpers)
    finally:
        if hold_blas:
            _leave()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results
