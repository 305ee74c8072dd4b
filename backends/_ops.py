"""What the standard lacks, forwarded to the adapter of the array at hand:
seeded random numbers, products into buffers, strided views, chunked work,
synchronisation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

from ._base import Backend
from ._errors import BackendError
from ._formulas import UpdateFormula
from ._policy import WorkPolicy
from ._registry import _adapter_of, available_backends, get_backend
from ._workspace import Workspace


def uniform_like(x: Any, seed: int | tuple | None = None) -> Any:
    """Uniform [0, 1) samples with the shape, dtype, device and backend of ``x``.

    ``seed``: None (fresh numbers), an int, or a tuple of ints, the entropy of one
    stream (e.g. (seed, step, layer)): the same tuple always gives the same numbers,
    on the host libraries those of the int ``SeedSequence(entropy)`` makes; on JAX
    its elements are folded into a ``jax.random`` key and may be traced.
    """
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"uniform_like needs an array, got {type(x).__name__}")
    return b.uniform(tuple(x.shape), x.dtype, b.array_device(x), b.seed_of(seed))


def fused_update(
    formula: UpdateFormula, w: Any, dw: Any, state: Sequence[Any], scalars: Sequence[float]
) -> Any:
    """next_w of ``formula`` (an optimizer's update rule) as one fused kernel where
    w's library has one (CuPy), updating ``state`` in place; None elsewhere, and
    the caller runs its generic element-wise chain.

    ``state``: an array per ``formula.state``; ``scalars``: a float per
    ``formula.scalars``, in that order (a NamedTuple of those fields reads best).
    """
    if len(state) != len(formula.state) or len(scalars) != len(formula.scalars):
        raise ValueError(
            f"formula {formula.name!r} takes state {formula.state} and scalars "
            f"{formula.scalars}: got {len(state)} state arrays and {len(scalars)} scalars"
        )
    b = _adapter_of(w)
    return None if b is None else b.fused_update(formula, w, dw, tuple(state), tuple(scalars))


def work_policy(x: Any) -> WorkPolicy:
    """How work on arrays like ``x`` is chunked, threaded and buffered (see ``WorkPolicy``):
    cache-sized chunks on every core with kept work arrays in host memory, one
    chunk on a GPU. Layers ask this instead of asking where ``x`` lives."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"work_policy needs an array, got {type(x).__name__}")
    return b.work_policy(x)


def workspace(xp: ModuleType, like: Any, key: tuple, policy: WorkPolicy | None = None) -> Workspace:
    """Work arrays for one computation on arrays like ``like`` (``key``: its geometry),
    kept between calls where its work policy says so (``policy``: the one the
    caller already has for ``like``; None: asked here)."""
    if policy is None:
        policy = work_policy(like)
    return Workspace(xp, like, key, policy.keep_workspace)


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


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 2-d arrays of one backend and dtype.

    On numpy a large product runs as row blocks on the chunk workers, the
    BLAS held at one thread, like the conv chunks: a threaded OpenBLAS call
    leaves its threads spinning for a while after it returns, and those
    spinners take the cores from the chunk workers of the layers that follow
    (docs/performance.md has the measurement). Elsewhere it is
    the library's own ``a @ b``.
    """
    adapter = _adapter_of(a)
    if adapter is None:
        raise BackendError(f"matmul needs an array for a, got {type(a).__name__}")
    return adapter.matmul(a, b)


def strided_view(x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A read-only view of C-contiguous ``x`` of ``shape`` with element ``strides``
    (overlapping windows allowed), or None where the library has none
    (array_api_strict: the standard has no such view). Callers keep a portable
    path for None, tested against the view."""
    b = _adapter_of(x)
    return None if b is None else b.strided_view(x, shape, strides)


def map_chunks(
    fn: Callable[[Any], Any], items: Iterable[Any], like: Any, *, uses_blas: bool = True
) -> list[Any]:
    """[fn(item) for item in items], in order, for work on arrays like ``like``.

    On numpy the items run concurrently on a thread pool while the BLAS is held
    at one thread (numpy's copies are single-threaded, its BLAS is not: this
    keeps every core busy); work that calls no BLAS (``uses_blas=False``:
    element-wise passes, pooling) skips the hold, which costs more than a
    small chunk. ``fn`` must write only its own part of any shared
    output and return what the caller combines, so results are the same bits
    whatever the scheduling. Other libraries parallelise inside each
    operation and run the items one by one.
    """
    adapter = _adapter_of(like)
    if adapter is None:
        raise BackendError(f"map_chunks needs an array for like, got {type(like).__name__}")
    return adapter.map_chunks(fn, items, uses_blas)


def compiler(x: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]] | None:
    """How the library of ``x`` compiles a pure function of arrays into one program
    (JAX: ``jax.jit``), or None where operations run one by one (every other backend)."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"compiler needs an array, got {type(x).__name__}")
    return None if type(b).compile is Backend.compile else b.compile


def tracing_errors(x: Any) -> tuple[type[BaseException], ...]:
    """The errors a function compiled by ``compiler(x)`` raises where it reads a traced
    value back to Python (``float()``, an ``if`` on an array)."""
    b = _adapter_of(x)
    return () if b is None else b.tracing_errors()


def device_scalar(value: float, like: Any) -> Any:
    """The Python number ``value`` as a 0-d array on ``like``'s backend and device that
    takes the dtype of the arrays it meets (a weakly typed scalar on JAX)."""
    b = _adapter_of(like)
    if b is None:
        raise BackendError(f"device_scalar needs an array for like, got {type(like).__name__}")
    return b.device_scalar(value, b.array_device(like))


def writes_in_place(x: Any) -> bool:
    """True when arrays like ``x`` can be written (``x[i] = v``): numpy, torch, cupy,
    array_api_strict. False for JAX: layers then take their functional routes
    (``xpx.at``, stacked slices, sums of shifted products) and optimizers and
    batch norm return new state instead of updating it."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"writes_in_place needs an array, got {type(x).__name__}")
    return b.writes_in_place


def slices_are_views(x: Any) -> bool:
    """True when basic slices of ``x`` share its memory, so in-place updates of a
    slice reach ``x`` (numpy, torch, cupy). The standard leaves this open;
    array_api_strict answers False so code paths that rely on it get tested.
    """
    b = _adapter_of(x)
    return b is not None and b.slices_are_views


def synchronize(*targets: Any) -> None:
    """Wait for queued device work: of each backend named, or on each array's
    device (every available backend when none is given). A no-op on CPU
    libraries; code that hands device memory to another library (MPI) calls it."""
    for target in targets or available_backends():
        if isinstance(target, str):
            get_backend(target).synchronize()
            continue
        b = _adapter_of(target)
        if b is None:
            raise BackendError(
                f"synchronize takes backend names or arrays, got {type(target).__name__}"
            )
        b.wait_for(target)
