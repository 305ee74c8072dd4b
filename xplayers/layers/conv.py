"""Convolution layer (NCHW, weights (F, C, HH, WW), zero padding, CS231n semantics).

out[n, f, i, j] = b[f] + sum_{c, di, dj} xpad[n, c, i*s + di, j*s + dj] * w[f, c, di, dj]

``conv_param``: ``stride``, ``pad`` and optionally ``truncate`` (see
``_conv_geometry``). Two implementations:

* ``conv_forward_naive`` / ``conv_backward_naive``: the formula above, one
  Python iteration per filter and output position (no array written in
  place beyond ``xpx.at``'s slice updates: it runs on JAX as it is).
* ``conv_forward_fast`` / ``conv_backward_fast``: matrix products over
  columns built per batch chunk in reused work arrays, in one of four
  lowerings picked per geometry (``LOWERING``): flat windows of stride-phase
  planes (``_conv_flat``), channels-last rows (``_conv_channels_last``),
  kernel rows (``_conv_rows``) or, for 1x1 kernels, plain products over the
  channels (``_conv_pointwise``).
  The forward makes a ``ConvPlan`` (lowering, chunks, work arrays) and keeps
  it in the cache; the backward follows it. Arrays that cannot be written
  (``backends.writes_in_place`` False: JAX) take ``_conv_functional``
  instead, one product over the whole batch, traceable under ``jax.jit``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import array_api_extra as xpx

from .. import backends
from .._checks import namespace, writable
from . import (
    _conv_bands,
    _conv_channels_last,
    _conv_flat,
    _conv_functional,
    _conv_pointwise,
    _conv_rows,
)
from ._conv_geometry import check_conv_dout, conv_geometry, conv_params, pad_input, unpad


# ---------------------------------------------------------------------- naive
def conv_forward_naive(x: Any, w: Any, b: Any, conv_param: dict) -> tuple[Any, tuple]:
    """x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, Ho, Wo), Ho = 1 + (H + 2p - HH) // s.

    out[:, f, i, j] = b[f] + sum(xpad[:, :, i*s : i*s+HH, j*s : j*s+WW] * w[f]), one
    filter and output position at a time (vectorised over the batch only), the
    results stacked (no array written in place: this runs on every library).
    """
    xp = namespace(x=x, w=w, b=b)
    w, b = conv_params(x, w, b, xp)
    stride, pad, ho, wo = conv_geometry(x, w, b, conv_param, xp)
    f, _, hh, ww = w.shape
    xpad = pad_input(x, pad, xp)
    rows = []
    for i in range(ho):
        cols = []
        for j in range(wo):
            patch = xpad[:, :, i * stride : i * stride + hh, j * stride : j * stride + ww]
            sums = [xp.sum(patch * w[k, ...], axis=(1, 2, 3)) + b[k] for k in range(f)]
            cols.append(_stack(sums, 1, (x.shape[0], 0), x, xp))  # (N, F)
        rows.append(xp.stack(cols, axis=2))  # (N, F, Wo)
    return xp.stack(rows, axis=2), (x, w, b, conv_param)


def _stack(parts: list, axis: int, empty_shape: tuple[int, ...], like: Any, xp: Any) -> Any:
    """xp.stack(parts, axis), or zeros of ``empty_shape`` when there are none (no filters)."""
    if parts:
        return xp.stack(parts, axis=axis)
    return xp.zeros(empty_shape, dtype=like.dtype, device=backends.device_of(like))


def conv_backward_naive(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout (N, F, Ho, Wo) -> dx (N, C, H, W), dw (F, C, HH, WW), db (F,).

    Each output position adds dout[:, f, i, j] * w[f] into its input patch of
    dxpad (one slice update at a time: ``xpx.at``, in place where the array
    allows it) and sum_n dout[n, f, i, j] * patch[n] to dw[f]; db[f] = sum dout[:, f].
    """
    x, w, b, conv_param = cache
    xp = namespace(dout=dout, x=x, w=w)
    stride, pad, ho, wo = conv_geometry(x, w, b, conv_param, xp)
    check_conv_dout(dout, x, w, ho, wo)
    f, _, hh, ww = w.shape
    xpad = pad_input(x, pad, xp)
    dxpad = xp.zeros_like(xpad)
    dws = []
    for k in range(f):
        dwk = xp.zeros_like(w[k, ...])
        for i in range(ho):
            for j in range(wo):
                rows = slice(i * stride, i * stride + hh)
                cols = slice(j * stride, j * stride + ww)
                g = dout[:, k, i, j][:, None, None, None]  # (N, 1, 1, 1)
                dxpad = xpx.at(dxpad)[:, :, rows, cols].add(g * w[k, ...])
                dwk = dwk + xp.sum(g * xpad[:, :, rows, cols], axis=0)
        dws.append(dwk)
    db = xp.sum(dout, axis=(0, 2, 3))
    return unpad(dxpad, pad), _stack(dws, 0, tuple(w.shape), w, xp), db


# ----------------------------------------------------------------------- fast
#: Lowering of the fast layer: "flat" (flat windows over stride-phase
#: planes), "channels_last", "rows" (kernel rows, stride 1 with pad below the
#: kernel), "pointwise" (1x1 kernels without padding), or "auto", which asks
#: the work policy of x's adapter (``backends.WorkPolicy.conv_lowering``: a
#: rule with thresholds each adapter states, fitted to measurements over the
#: sweep of ``benchmarks/bench_conv.py``). A lowering named here that cannot
#: run the geometry falls back to flat windows. Read when a forward makes its plan.
LOWERING = "auto"
_LOWERINGS = ("auto", "flat", "channels_last", "rows", "pointwise")


def _tile(policy: backends.WorkPolicy, stride: int, c: int, wo: int) -> int:
    """Outputs per row of channels-last columns: 2 where ``policy.pairs`` allows them,
    else 1 (the policy picks pairs only for a conv fused with its pool; forced
    channels-last, any conv)."""
    return 2 if policy.pairs(stride, c, wo) else 1


def _lowering(
    policy: backends.WorkPolicy,
    stride: int,
    pad: int,
    c: int,
    f: int,
    kernel: tuple[int, int],
    out_hw: tuple[int, int],
    fused: bool = False,
) -> str:
    """The lowering the fast layer runs this geometry on (see LOWERING); ``fused``:
    the conv is followed by a pool it may be fused with."""
    if LOWERING not in _LOWERINGS:
        raise ValueError(
            f"xplayers.layers.conv.LOWERING must be one of {_LOWERINGS}, got {LOWERING!r}"
        )
    if LOWERING == "auto":
        name = policy.conv_lowering(stride, pad, c, f, kernel, out_hw, fused)
        return "channels_last" if name == "pairs" else name
    runs = {
        "rows": stride == 1 and pad < min(kernel),
        "pointwise": kernel == (1, 1) and pad == 0,
    }
    return LOWERING if runs.get(LOWERING, True) else "flat"


def fast_layout(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: int,
    pad: int,
    policy: backends.WorkPolicy | None = None,
    fused: bool = False,
) -> str:
    """The lowering ``conv_forward_fast`` uses for x (N, C, H, W) and w (F, C, HH, WW):
    "flat", "channels_last", "rows" or "pointwise" (see LOWERING); ``fused``:
    that of ``conv_relu_pool_forward`` instead.

    ``policy``: the work policy of the arrays the convolution runs on,
    ``backends.work_policy(x)``; None: that of an array made by
    ``backends.asarray`` (the default backend on its default device, NumPy
    unless CuPy answers or ``XPLAYERS_BACKEND`` names another).
    """
    if policy is None:
        policy = backends.work_policy(backends.asarray(0.0))
    kernel = (w_shape[2], w_shape[3])
    out_hw = tuple((x_shape[k] + 2 * pad - kernel[k - 2]) // stride + 1 for k in (2, 3))
    padded = (x_shape[2] + 2 * pad, x_shape[3] + 2 * pad)
    if _conv_bands.compacts(stride, kernel, padded):
        stride, pad = max(kernel), 0  # those of the compact convolution
    return _lowering(policy, stride, pad, x_shape[1], w_shape[0], kernel, out_hw, fused)


@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """How one fast convolution runs, decided once by the forward.

    ``lowering`` holds x's lowering (see LOWERING), its batch chunks and work arrays;
    ``transposed`` says the backward takes dx and dw from the columns of dout
    (stride 1, F <= C, flat windows), so it builds no columns of x. Where the
    stride passes the kernel and the input, ``bands`` made x compact (``_conv_bands``):
    the lowering then runs on that (its ``x``), with ``stride`` and ``pad``
    those of the compact convolution, and dx is scattered back.
    """

    stride: int
    pad: int
    out_hw: tuple[int, int]
    lowering: (
        _conv_flat.FlatWindows
        | _conv_channels_last.ChannelsLast
        | _conv_rows.RowWindows
        | _conv_pointwise.Pointwise
    )
    transposed: bool
    bands: _conv_bands.Bands | None = None


def _plan(x: Any, w: Any, b: Any, conv_param: dict, xp: Any, fused: bool = False) -> ConvPlan:
    stride, pad, ho, wo = conv_geometry(x, w, b, conv_param, xp)
    f, c, hh, ww = w.shape
    bands = None
    if _conv_bands.compacts(stride, (hh, ww), (x.shape[2] + 2 * pad, x.shape[3] + 2 * pad)):
        bands = _conv_bands.Bands(x, (hh, ww), stride, pad, (ho, wo), xp)
        x, stride, pad = bands.gather(x), bands.band, 0
    policy = backends.work_policy(x)  # the only time a conv call asks: passed down from here
    name = _lowering(policy, stride, pad, c, f, (hh, ww), (ho, wo), fused)
    key = (name, tuple(x.shape[1:]), tuple(w.shape), stride, pad)
    work = backends.workspace(xp, x, key, policy)
    transposed = False
    if name == "pointwise":
        low = _conv_pointwise.Pointwise(x, stride, (ho, wo), f, work, policy, xp)
    elif name == "rows":
        low = _conv_rows.RowWindows(x, (hh, ww), pad, f, work, policy, xp)
    elif name == "channels_last":
        low = _conv_channels_last.ChannelsLast(
            x, (hh, ww), stride, pad, (ho, wo), work, policy, xp, tile=_tile(policy, stride, c, wo)
        )
    else:
        low = _conv_flat.FlatWindows(x, (hh, ww), stride, (pad, pad), (ho, wo), work, policy, xp)
        transposed = stride == 1 and pad < hh and pad < ww and f <= c
    return ConvPlan(stride, pad, (ho, wo), low, transposed, bands)


def conv_forward_fast(x: Any, w: Any, b: Any, conv_param: dict) -> tuple[Any, tuple]:
    """Same result as ``conv_forward_naive``: out = w2 @ columns + b, chunk by chunk.

    w2 is w as (F, C*HH*WW); each batch chunk's columns are (C*HH*WW,
    nb*Ho*ws) flat windows of its phase planes, and the product is written
    into out[n0:n1]. Where channels-last columns win (see LOWERING) the
    product is instead columns (nb*Ho*Wo/t, HH*KW*C) @ wk.T, wk = w as (t*F,
    HH*KW*C), with t outputs a row (1, or 2 for pairs) and KW = WW + s*(t-1).
    No Python loop over channels or pixels, only over the kernel offsets and
    the batch chunks. Arrays that cannot be written (JAX) take the functional
    route instead (``_conv_functional``: one product over all the batch).
    """
    if not writable(x=x, w=w, b=b):
        return _functional_forward(x, w, b, conv_param)
    xp, w, b, plan = plan_fast(x, w, b, conv_param)
    return run_fast(x, w, b, conv_param, plan, xp)


def plan_fast(
    x: Any, w: Any, b: Any, conv_param: dict, fused: bool = False
) -> tuple[Any, Any, Any, ConvPlan]:
    """(namespace, checked w, checked b, plan) of a fast convolution: the first
    half of ``conv_forward_fast``, for layers that fuse what follows the conv
    (``fused``: the lowering is picked for that, see LOWERING)."""
    xp = namespace(x=x, w=w, b=b)
    w, b = conv_params(x, w, b, xp)
    return xp, w, b, _plan(x, w, b, conv_param, xp, fused)


def run_fast(
    x: Any, w: Any, b: Any, conv_param: dict, plan: ConvPlan, xp: Any
) -> tuple[Any, tuple]:
    """The rest of ``conv_forward_fast``: the convolution as ``plan`` says."""
    f, c, hh, ww = w.shape
    ho, wo = plan.out_hw
    out = xp.empty((x.shape[0], f, ho, wo), dtype=x.dtype, device=backends.device_of(x))
    low = plan.lowering
    if isinstance(low, _conv_channels_last.ChannelsLast):
        _conv_channels_last.forward(out, low, w, b)
    elif isinstance(low, _conv_rows.RowWindows):
        _conv_rows.forward(out, low, w, b)
    elif isinstance(low, _conv_pointwise.Pointwise):
        _conv_pointwise.forward(out, low, w, b)
    else:
        _conv_flat.forward(out, low, xp.reshape(w, (f, c * hh * ww)), b[:, None])
    return out, (x, w, b, conv_param, plan)


def conv_backward_fast(dout: Any, cache: tuple, need_dx: bool = True) -> tuple[Any, Any, Any]:
    """dout (N, F, Ho, Wo) -> dx, dw, db, chunk by chunk over the batch, as the plan says.

    Flat windows: dw.T = sum over chunks of cols @ dout2.T, dx = col2im(w2.T
    @ dout2), dout2 the chunk of dout as (F, nb*Ho*ws). For stride 1 with no
    more filters than channels, both come instead from the columns of dout:
    dx as the forward convolution of dout padded by (HH-1-pad, WW-1-pad) with
    the flipped kernel (C, F, HH, WW), dw as those columns times x.
    Channels-last: dx = col2im(dout2 @ wk) (for pairs, flat windows'
    col2im of w2.T @ dout2.T) and dw.T = cols.T @ dout2, dout2 the chunk
    as (nb*Ho*Wo/t, t*F). db = sum of dout over N, Ho, Wo.

    With ``need_dx=False`` (a first layer, whose input is the data) dx is
    None and its matmul and col2im are skipped: about a third of the work.
    """
    x, w, b, conv_param, plan = cache
    if not writable(dout=dout, x=x, w=w):
        return _functional_backward(dout, (x, w, b, conv_param), need_dx)
    xp = namespace(dout=dout, x=x, w=w)
    check_conv_dout(dout, x, w, *plan.out_hw)
    return backward_on_plan(dout, plan, w, need_dx, xp)


def backward_on_plan(
    dout: Any, plan: ConvPlan, w: Any, need_dx: bool, xp: Any, grid: Any = None
) -> tuple[Any, Any, Any]:
    """dx (None unless need_dx), dw, db as ``plan`` says, for a checked dout; ``grid``:
    dout's chunks positions-major, from a fused layer (see the lowerings' backward)."""
    low = plan.lowering
    if plan.transposed:
        dx, dw, db = _conv_flat.backward_transposed(dout, low, w, plan.pad, need_dx, xp)
    elif isinstance(low, _conv_channels_last.ChannelsLast):
        dx, dw, db = _conv_channels_last.backward(dout, low, w, need_dx, grid)
    elif isinstance(low, _conv_rows.RowWindows):
        dx, dw, db = _conv_rows.backward(dout, low, w, need_dx)
    elif isinstance(low, _conv_pointwise.Pointwise):
        dx, dw, db = _conv_pointwise.backward(dout, low, w, need_dx)
    else:
        dx, dw, db = _conv_flat.backward(dout, low, w, need_dx, grid)
    if dx is not None and plan.bands is not None:
        dx = plan.bands.scatter(dx)
    return dx, dw, db


def _functional_forward(x: Any, w: Any, b: Any, conv_param: dict) -> tuple[Any, tuple]:
    """``conv_forward_fast`` on arrays that cannot be written; its cache has no plan."""
    xp = namespace(x=x, w=w, b=b)
    w, b = conv_params(x, w, b, xp)
    stride, pad, ho, wo = conv_geometry(x, w, b, conv_param, xp)
    out = _conv_functional.forward(x, w, b, stride, pad, (ho, wo), xp)
    return out, (x, w, b, conv_param, None)


def _functional_backward(dout: Any, cache: tuple, need_dx: bool) -> tuple[Any, Any, Any]:
    """``conv_backward_fast`` on arrays that cannot be written; cache (x, w, b, conv_param)."""
    x, w, b, conv_param = cache
    xp = namespace(dout=dout, x=x, w=w)
    stride, pad, ho, wo = conv_geometry(x, w, b, conv_param, xp)
    check_conv_dout(dout, x, w, ho, wo)
    return _conv_functional.backward(dout, x, w, stride, pad, need_dx, xp)
