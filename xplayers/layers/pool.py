"""Max pooling over (pool_height, pool_width) windows of x: (N, C, H, W), NCHW.

out[n, c, i, j] = max(x[n, c, i*s : i*s + ph, j*s : j*s + pw]), with
Ho = 1 + (H - ph) / s and Wo = 1 + (W - pw) / s (no padding, as in CS231n).

Backward routes each window's gradient to ONE element of the window: the
first maximum in row-major window order (lowest row offset, then lowest
column offset). Ties are thus broken the same way by the naive and the fast
code, and the same way as ``argmax`` on the flattened window. Overlapping
windows (stride < pool size) accumulate their gradients at shared pixels.
The routing multiplies dout by a 0/1 mask, so an infinite dout entry turns
the other pixels of its window into NaN (0 * inf), in both implementations
(also under ``jax.jit``).
A window holding NaN has NaN as its maximum and routes its gradient to its
first NaN, as argmax does (and torch's max pooling).

Two implementations share the validation:

* ``max_pool_forward_naive`` / ``max_pool_backward_naive``: the readable
  reference, one Python iteration per output position; it stacks its
  results and updates dx a slice at a time (``xpx.at``), so it runs on
  arrays that cannot be written (JAX) too.
* ``max_pool_forward_fast`` / ``max_pool_backward_fast``: no Python loop over
  the channels or pixels; only over the ph*pw window offsets, each of which
  sees all windows of a batch chunk at once as one strided slice, and over
  the batch chunks (``backends.work_policy``). On arrays that cannot be
  written the same passes run on the whole batch and return new arrays
  (traceable under ``jax.jit``).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import array_api_extra as xpx

from .. import backends
from .._checks import (
    check_dout,
    check_floating,
    check_int,
    check_ndim,
    describe,
    namespace,
    writable,
)
from ._mask import mask_product


# ----------------------------------------------------------------- validation
def _pool_geometry(x: Any, pool_param: dict, xp: ModuleType) -> tuple[int, int, int, int, int]:
    """Check x and pool_param; return (ph, pw, stride, Ho, Wo)."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_floating("x", x, xp)
    if not isinstance(pool_param, dict):
        raise ValueError(
            f"pool_param must be a dict with 'pool_height', 'pool_width' and 'stride', "
            f"got {pool_param!r}"
        )
    sizes = {}
    for key in ("pool_height", "pool_width", "stride"):
        if key not in pool_param:
            raise ValueError(f"pool_param lacks {key!r}: got {pool_param!r}")
        sizes[key] = check_int(f"pool_param[{key!r}]", pool_param[key], 1)
    ph, pw, stride = sizes["pool_height"], sizes["pool_width"], sizes["stride"]
    out_sizes = []
    for axis, size, k in (("height", x.shape[2], ph), ("width", x.shape[3], pw)):
        span = size - k
        if span < 0:
            raise ValueError(
                f"the pool window ({ph}x{pw}) is larger than the input {axis} {size} "
                f"(x is a {describe(x)})"
            )
        if span % stride != 0:
            raise ValueError(
                f"stride {stride} does not tile the input {axis}: ({axis} {size} - pool {k}) "
                f"= {span} is not a multiple of {stride} (x is a {describe(x)}, "
                f"pool_param={pool_param!r})"
            )
        out_sizes.append(span // stride + 1)
    return ph, pw, stride, out_sizes[0], out_sizes[1]


def _unpack_cache(dout: Any, cache: tuple) -> tuple[Any, ModuleType, int, int, int, int, int]:
    """Validate dout against the forward cache; return (x, xp, ph, pw, stride, Ho, Wo)."""
    x, pool_param = cache[0], cache[-1]
    xp = namespace(dout=dout, x=x)
    ph, pw, stride, ho, wo = _pool_geometry(x, pool_param, xp)
    check_dout(dout, (x.shape[0], x.shape[1], ho, wo), x.dtype, "(N, C, Ho, Wo) of the output")
    return x, xp, ph, pw, stride, ho, wo


def _offset_index(
    di: int, dj: int, stride: int, ho: int, wo: int, batch: slice = slice(None)
) -> tuple[slice, ...]:
    """Index of the (nb, C, Ho, Wo) strided view of the pixels at offset (di, dj)
    of every window of the images ``batch``."""
    rows = slice(di, di + stride * (ho - 1) + 1, stride)
    cols = slice(dj, dj + stride * (wo - 1) + 1, stride)
    return (batch, slice(None), rows, cols)


def _chunks(x: Any) -> list[tuple[int, int]]:
    """Batch chunks of at most the policy's ``pool_chunk_elements`` input elements
    (at least one image; one chunk where the policy has no pool chunks)."""
    policy = backends.work_policy(x)
    n = x.shape[0]
    if policy.pool_chunk_elements is None:
        return policy.split_batch(n, n)
    per_image = max(1, x.shape[1] * x.shape[2] * x.shape[3])
    return policy.split_batch(n, policy.pool_chunk_elements // per_image)


# ---------------------------------------------------------------------- naive
def max_pool_forward_naive(x: Any, pool_param: dict) -> tuple[Any, tuple]:
    """x (N, C, H, W) -> out (N, C, Ho, Wo); out[n, c, i, j] = max of window (i, j)."""
    xp = namespace(x=x)
    ph, pw, stride, ho, wo = _pool_geometry(x, pool_param, xp)
    rows = []
    for i in range(ho):
        cols = []
        for j in range(wo):
            window = x[:, :, i * stride : i * stride + ph, j * stride : j * stride + pw]
            cols.append(xp.max(window, axis=(2, 3)))  # (N, C)
        rows.append(xp.stack(cols, axis=2))  # (N, C, Wo)
    return xp.stack(rows, axis=2), (x, pool_param)


def max_pool_backward_naive(dout: Any, cache: tuple) -> Any:
    """dout (N, C, Ho, Wo) -> dx (N, C, H, W): dout[n, c, i, j] goes to the window's argmax.

    One slice update per window (``xpx.at``: in place where the array allows it).
    """
    x, xp, ph, pw, stride, ho, wo = _unpack_cache(dout, cache)
    n, c = x.shape[0], x.shape[1]
    dx = xp.zeros_like(x)
    offsets = xp.arange(ph * pw, device=backends.device_of(x))
    for i in range(ho):
        for j in range(wo):
            rows = slice(i * stride, i * stride + ph)
            cols = slice(j * stride, j * stride + pw)
            flat = xp.reshape(x[:, :, rows, cols], (n, c, ph * pw))
            # argmax returns the first maximum: the documented tie rule.
            winner = xp.argmax(flat, axis=2)[:, :, None] == offsets
            routed = mask_product(winner, dout[:, :, i, j][:, :, None], xp)
            dx = xpx.at(dx)[:, :, rows, cols].add(xp.reshape(routed, (n, c, ph, pw)))
    return dx


def _interleaved(parts: list[Any], ph: int, pw: int, xp: ModuleType) -> Any:
    """dx (N, C, Ho*ph, Wo*pw) from the gradients (N, C, Ho, Wo) of the ph*pw window
    offsets, row-major, of windows that tile x: dx[n, c, i*ph + a, j*pw + b] =
    parts[a*pw + b][n, c, i, j]. A stack and a transpose, no update of dx."""
    n, c, ho, wo = parts[0].shape
    grid = xp.reshape(xp.stack(parts), (ph, pw, n, c, ho, wo))
    return xp.reshape(xp.permute_dims(grid, (2, 3, 4, 0, 5, 1)), (n, c, ho * ph, wo * pw))


# ----------------------------------------------------------------------- fast
def _window_max(
    x: Any, ph: int, pw: int, stride: int, out_hw: tuple[int, int], xp: ModuleType, batch: slice
) -> Any:
    """(nb, C, Ho, Wo): elementwise maximum of the ph*pw offset views of the images ``batch``."""
    top = None
    for k in range(ph * pw):
        view = x[_offset_index(*divmod(k, pw), stride, *out_hw, batch)]
        top = view if top is None else xp.maximum(top, view)
    return top


def _routed(
    x: Any, out: Any, dout: Any, pool: tuple[int, int, int], xp: ModuleType, batch: slice
) -> Iterator[tuple[tuple[slice, ...], Any]]:
    """Per window offset, row-major: (its index into x, the gradient it receives:
    dout times the 0/1 mask of the windows it wins) for the images ``batch`` of
    x (N, C, H, W), pooled into out, dout out's gradient.

    ``pool``: (ph, pw, stride). ``free`` marks the windows whose maximum has
    not been claimed yet, so only the first tying offset wins.
    """
    ph, pw, stride = pool
    top, grad = out[batch, ...], dout[batch, ...]
    free = None
    last = ph * pw - 1
    for k in range(ph * pw):
        index = _offset_index(*divmod(k, pw), stride, *out.shape[2:], batch)
        # A window holding NaN has a NaN maximum, equal to nothing: its
        # gradient goes to its first NaN, where argmax (naive, torch) puts it.
        view = x[index]
        hit = xp.logical_or(view == top, xp.isnan(view))
        if free is not None:
            hit = xp.logical_and(hit, free)
        if k < last:
            # hit is a subset of free, so xor removes exactly the claimed windows.
            free = xp.logical_not(hit) if free is None else xp.logical_xor(free, hit)
        yield index, mask_product(hit, grad, xp)


def max_pool_forward_fast(x: Any, pool_param: dict) -> tuple[Any, tuple]:
    """Same result as ``max_pool_forward_naive``: elementwise maximum of the ph*pw offset views.

    Each offset view is a strided slice (no copy), so the forward is ph*pw -
    1 elementwise passes over (nb, C, Ho, Wo) per batch chunk; arrays that
    cannot be written (JAX) take all the batch at once.
    """
    xp = namespace(x=x)
    ph, pw, stride, ho, wo = _pool_geometry(x, pool_param, xp)
    if not writable(x=x):
        out = _window_max(x, ph, pw, stride, (ho, wo), xp, slice(None))
        return out, (x, out, pool_param)
    out = xp.empty((x.shape[0], x.shape[1], ho, wo), dtype=x.dtype, device=backends.device_of(x))

    def chunk(span: tuple[int, int]) -> None:
        batch = slice(*span)
        out[batch, ...] = _window_max(x, ph, pw, stride, (ho, wo), xp, batch)

    backends.map_chunks(chunk, _chunks(x), x, uses_blas=False)
    return out, (x, out, pool_param)


def max_pool_backward_fast(dout: Any, cache: tuple) -> Any:
    """Same result as ``max_pool_backward_naive``, one vectorised pass per window offset.

    Offsets are visited in row-major order and only the first tying offset of
    a window gets its gradient (``_routed``). Where windows do not overlap
    (stride >= pool size), each offset's gradient is written rather than
    added, and where they also tile x exactly (stride == pool height == pool
    width) every pixel is written once, so dx needs no zero fill. Batch
    chunks as in the forward. Arrays that cannot be written (JAX) add each
    offset's gradient into its strided slice of a zero dx (``xpx.at``), all
    the batch at once.
    """
    x, xp, ph, pw, stride, _, _ = _unpack_cache(dout, cache)
    out = cache[1]
    if not writable(dout=dout, x=x):
        routed = _routed(x, out, dout, (ph, pw, stride), xp, slice(None))
        if stride == ph == pw:  # the windows tile x: dx is their gradients interleaved
            return _interleaved([grad for _, grad in routed], ph, pw, xp)
        dx = xp.zeros_like(x)
        for index, grad in routed:
            dx = xpx.at(dx)[index].add(grad)
        return dx
    overlapping = stride < ph or stride < pw
    tiled = stride == ph == pw
    dx = xp.empty_like(x) if tiled else xp.zeros_like(x)

    def chunk(span: tuple[int, int]) -> None:
        for index, routed in _routed(x, out, dout, (ph, pw, stride), xp, slice(*span)):
            if overlapping:
                dx[index] += routed
            else:
                dx[index] = routed

    backends.map_chunks(chunk, _chunks(x), x, uses_blas=False)
    return dx
