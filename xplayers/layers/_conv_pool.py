"""conv -> max pool -> relu in one pass per batch chunk, on either lowering.

Each chunk's conv product, positions-major (nb*Ho*grid_w, F) on the
lowering's grid, is pooled while it is still in cache, so the full-size
conv output (N, F, Ho, Wo) is never written or read back. The forward keeps
one byte per pooled cell: the window offset its gradient goes to (the first
maximum, the rule of ``max_pool_backward_fast``), or NONE where the relu
passes nothing (the window's max is not > 0, NaN included: there the relu
would stop the gradient wherever the pool sent it). The backward writes the
routed gradient straight onto the grid the conv's weight gradient
multiplies, so no full-size gradient is built and then copied either.

``conv_relu_pool_forward`` takes this path for pools that tile the conv
output (stride = pool height = pool width, dividing Ho and Wo) after a
conv on flat windows or channels-last columns whose backward uses columns
of x (not the transposed one of flat windows, which takes dw from columns
of dout; kernel rows and pointwise products run the unfused chain). The result is the
unfused chain's up to the rounding of the conv products, which on flat
windows run in the other orientation here (on integer-valued data, where
products are exact, it is the same bit for bit: tested, ties and NaN
included).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import backends
from .._checks import check_dout, namespace
from . import _conv_channels_last, _conv_flat
from .conv import backward_on_plan
from .pool import _offset_index


@dataclasses.dataclass(frozen=True)
class ConvPoolCache:
    """What the fused backward needs: the conv's input, weights and plan, the
    pool size and ``route`` (N, Hp, Wp, F) uint8, the offset each pooled
    cell's gradient goes to (ph * pw: none)."""

    x: Any
    w: Any
    plan: Any
    pool: tuple[int, int]
    route: Any


def tiling_pool(plan: Any, pool_param: Any) -> tuple[int, int] | None:
    """(ph, pw) when the fused path applies to this conv plan and pool, else None
    (the unfused chain then runs, and checks ``pool_param`` itself)."""
    fused = (_conv_flat.FlatWindows, _conv_channels_last.ChannelsLast)
    if plan.transposed or not isinstance(plan.lowering, fused):
        return None
    if not isinstance(pool_param, dict):
        return None
    sizes = [pool_param.get(k) for k in ("pool_height", "pool_width", "stride")]
    if any(type(v) is not int for v in sizes):
        return None
    ph, pw, stride = sizes
    ho, wo = plan.out_hw
    # Routes are uint8 codes 0..ph*pw.
    if not (ph == pw == stride >= 1 and ph * pw < 255 and ho % ph == 0 and wo % pw == 0):
        return None
    return ph, pw


def _window_index(k: int, pw: int, hp: int, wp: int) -> tuple[slice, ...]:
    """Index of window offset k (row-major) as an (nb, Hp, Wp, F) view of a
    positions-major grid (nb, Ho, grid_w, F): the max pool's offset view,
    stride = pool size, with F moved last."""
    _, _, rows, cols = _offset_index(*divmod(k, pw), pw, hp, wp)
    return (slice(None), rows, cols, slice(None))


def forward(x: Any, w: Any, b: Any, plan: Any, pool: tuple[int, int], xp: Any) -> tuple[Any, Any]:
    """out (N, F, Hp, Wp) = relu(max_pool(conv(x, w) + b)) for a tiling pool."""
    ph, pw = pool
    low = plan.lowering
    f, c, hh, ww = w.shape
    ho, wo = plan.out_hw
    n, hp, wp = x.shape[0], ho // ph, wo // pw
    dev = backends.device_of(x)
    out = xp.empty((n, f, hp, wp), dtype=x.dtype, device=dev)
    route = xp.empty((n, hp, wp, f), dtype=xp.uint8, device=dev)
    zero = xp.zeros((), dtype=x.dtype, device=dev)
    none = ph * pw

    def emit(n0: int, prod: Any) -> None:
        m = prod.shape[0] // (ho * low.grid_w)
        # One copy makes the windows contiguous: every pass below then runs on
        # a cache-resident block instead of stride-ph views of the grid.
        grid = xp.reshape(prod, (m, ho, low.grid_w, f))
        win = xp.stack([grid[_window_index(k, pw, hp, wp)] for k in range(none)])
        top = xp.max(win, axis=0)
        # The first hit wins: offset k scores none - k where it hits, the best
        # score is kept, and route = none - score (none: no hit, or max <= 0).
        score = None
        for k in range(none):
            s = xp.astype(win[k, ...] == top, xp.uint8) * (none - k)
            score = s if score is None else xp.maximum(score, s)
        route[n0 : n0 + m, ...] = none - score * xp.astype(top > zero, xp.uint8)
        out[n0 : n0 + m, ...] = xp.permute_dims(xp.maximum(top, zero), (0, 3, 1, 2))

    if isinstance(low, _conv_flat.FlatWindows):
        _conv_flat.forward(out, low, xp.reshape(w, (f, c * hh * ww)), b[:, None], emit)
    else:
        _conv_channels_last.forward(out, low, w, b, emit)
    return out, ConvPoolCache(x, w, plan, pool, route)


def backward(dout: Any, cache: ConvPoolCache, need_dx: bool) -> tuple[Any, Any, Any]:
    """dout (N, F, Hp, Wp) -> dx (None unless need_dx), dw, db of the fused layer."""
    x, w, plan, (ph, pw), route = cache.x, cache.w, cache.plan, cache.pool, cache.route
    xp = namespace(dout=dout, x=x, w=w)
    n, hp, wp, f = route.shape
    check_dout(dout, (n, f, hp, wp), x.dtype, "(N, F, Hp, Wp) of the pooled output")
    low = plan.lowering
    ho = plan.out_hw[0]

    def grid(n0: int, n1: int) -> Any:
        m = n1 - n0
        # dout's chunk positions-major, like the route: one transposing copy
        # instead of a strided read in every offset's pass.
        g = low.work.scratch("dout-t", (m, hp, wp, f))
        g[...] = xp.permute_dims(dout[n0:n1, ...], (0, 2, 3, 1))
        to = route[n0:n1, ...]
        d = low.work.scratch("dpool", (m, ho, low.grid_w, f))
        for k in range(ph * pw):
            d[_window_index(k, pw, hp, wp)] = xp.astype(to == k, dout.dtype) * g
        return xp.reshape(d, (m * ho * low.grid_w, f))

    return backward_on_plan(dout, plan, w, need_dx, xp, grid)
