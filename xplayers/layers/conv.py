"""Convolution layer (NCHW, weights (F, C, HH, WW), zero padding, CS231n semantics).

out[n, f, i, j] = b[f] + sum_{c, di, dj} xpad[n, c, i*s + di, j*s + dj] * w[f, c, di, dj]

Two implementations share the validation and the padding helper:

* ``conv_forward_naive`` / ``conv_backward_naive``: the readable reference,
  one Python iteration per output position.
* ``conv_forward_fast`` / ``conv_backward_fast``: no Python loop over the
  batch, channels or pixels; only over the HH*WW kernel offsets.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .._checks import check_floating, check_ndim, check_shape, describe, namespace


# ----------------------------------------------------------------- validation
def _conv_geometry(x: Any, w: Any, b: Any, conv_param: dict, xp: ModuleType) -> tuple[int, ...]:
    """Check the arguments; return (stride, pad, Ho, Wo)."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(F, C, HH, WW)")
    for name, a in (("x", x), ("w", w), ("b", b)):
        check_floating(name, a, xp)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"w has {w.shape[1]} input channels but x has {x.shape[1]}: "
            f"x is a {describe(x)}, w is a {describe(w)} (expected w of shape "
            f"(F, {x.shape[1]}, HH, WW))"
        )
    check_shape("b", b, (w.shape[0],), f"to match w's {w.shape[0]} filters")
    if w.dtype != x.dtype or b.dtype != x.dtype:
        raise TypeError(
            f"x, w and b must share one dtype: x is a {describe(x)}, w is a {describe(w)}, "
            f"b is a {describe(b)}"
        )
    if not isinstance(conv_param, dict) or "stride" not in conv_param or "pad" not in conv_param:
        raise ValueError(f"conv_param must be a dict with 'stride' and 'pad', got {conv_param!r}")
    stride, pad = conv_param["stride"], conv_param["pad"]
    if isinstance(stride, bool) or not isinstance(stride, int) or stride <= 0:
        raise ValueError(f"conv_param['stride'] must be a positive int, got {stride!r}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"conv_param['pad'] must be a non-negative int, got {pad!r}")
    _, _, h, wd = x.shape
    _, _, hh, ww = w.shape
    sizes = []
    for axis, size, k in (("height", h, hh), ("width", wd, ww)):
        span = size + 2 * pad - k
        if span < 0:
            raise ValueError(
                f"the {k}-wide filter is larger than the padded input {axis} {size + 2 * pad} "
                f"(x is a {describe(x)}, w is a {describe(w)}, pad={pad})"
            )
        sizes.append(span // stride + 1)
    return stride, pad, sizes[0], sizes[1]


def _check_dout(dout: Any, x: Any, w: Any, ho: int, wo: int) -> None:
    check_shape("dout", dout, (x.shape[0], w.shape[0], ho, wo), "(N, F, Ho, Wo) of the output")


# -------------------------------------------------------------------- helpers
def _pad(x: Any, pad: int, xp: ModuleType, axes: tuple[int, int, int, int] = (0, 1, 2, 3)) -> Any:
    """Zero-padded copy of 4-d ``x`` (last two axes padded), axes permuted to ``axes``.

    Permuting inside the one copy the padding needs anyway costs nothing extra.
    """
    xt = xp.permute_dims(x, axes) if axes != (0, 1, 2, 3) else x
    a, c, h, w = xt.shape
    out = xp.zeros((a, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=x.device)
    out[:, :, pad : pad + h, pad : pad + w] = xt
    return out


def _unpad(xpad: Any, pad: int) -> Any:
    _, _, hp, wp = xpad.shape
    return xpad[:, :, pad : hp - pad, pad : wp - pad]


def _window(xpad: Any, i: int, j: int, stride: int, ho: int, wo: int) -> Any:
    """Strided view of the input pixels that kernel offset (i, j) meets: (..., Ho, Wo)."""
    return xpad[..., i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]


# ---------------------------------------------------------------------- naive
def conv_forward_naive(x: Any, w: Any, b: Any, conv_param: dict) -> tuple[Any, tuple]:
    """x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, Ho, Wo), Ho = 1 + (H + 2p - HH) // s.

    out[:, f, i, j] = b[f] + sum(xpad[:, :, i*s : i*s+HH, j*s : j*s+WW] * w[f]), one
    filter and output position at a time (vectorised over the batch only).
    """
    xp = namespace(x=x, w=w, b=b)
    stride, pad, ho, wo = _conv_geometry(x, w, b, conv_param, xp)
    n, _, _, _ = x.shape
    f, _, hh, ww = w.shape
    xpad = _pad(x, pad, xp)
    out = xp.zeros((n, f, ho, wo), dtype=x.dtype, device=x.device)
    for k in range(f):
        for i in range(ho):
            for j in range(wo):
                patch = xpad[:, :, i * stride : i * stride + hh, j * stride : j * stride + ww]
                out[:, k, i, j] = xp.sum(patch * w[k, ...], axis=(1, 2, 3)) + b[k]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout (N, F, Ho, Wo) -> dx (N, C, H, W), dw (F, C, HH, WW), db (F,).

    Each output position scatters dout[:, f, i, j] * w[f] into its input patch
    and adds sum_n dout[n, f, i, j] * patch[n] to dw[f]; db[f] = sum dout[:, f].
    """
    x, w, b, conv_param = cache
    xp = namespace(dout=dout, x=x, w=w)
    stride, pad, ho, wo = _conv_geometry(x, w, b, conv_param, xp)
    _check_dout(dout, x, w, ho, wo)
    f, _, hh, ww = w.shape
    xpad = _pad(x, pad, xp)
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    for k in range(f):
        for i in range(ho):
            for j in range(wo):
                rows = slice(i * stride, i * stride + hh)
                cols = slice(j * stride, j * stride + ww)
                g = dout[:, k, i, j][:, None, None, None]  # (N, 1, 1, 1)
                dxpad[:, :, rows, cols] += g * w[k, ...]
                dw[k, ...] += xp.sum(g * xpad[:, :, rows, cols], axis=0)
    db = xp.sum(dout, axis=(0, 2, 3))
    return _unpad(dxpad, pad), dw, db


# ----------------------------------------------------------------------- fast
def _phase_span(phase: int, stride: int, pad: int, size: int, count: int) -> tuple[int, int, int]:
    """Where input axis positions s*t + phase - pad (t < count) fall inside [0, size).

    Returns (first t, first input index, how many); how many may be 0.
    """
    t0 = max(0, -((phase - pad) // stride))
    i0 = stride * t0 + phase - pad
    if i0 >= size or t0 >= count:
        return t0, i0, 0
    return t0, i0, min(count - t0, (size - i0 + stride - 1) // stride)


def _phase_planes(x: Any, stride: int, pad: int, hs: int, ws: int, xp: ModuleType) -> Any:
    """x (N, C, H, W) -> zero-padded phase planes (s, s, C, N, hs, ws).

    planes[a, b, c, n, t, u] = xpad[n, c, s*t + a, s*u + b]. Every kernel offset
    (i, j) then reads a plain slice of one plane: a stride-s convolution becomes
    s*s stride-1 ones, whose windows copy as contiguous rows.
    """
    n, c, h, w = x.shape
    xt = xp.permute_dims(x, (1, 0, 2, 3))
    planes = xp.zeros((stride, stride, c, n, hs, ws), dtype=x.dtype, device=x.device)
    for a in range(stride):
        t0, r0, nr = _phase_span(a, stride, pad, h, hs)
        for b in range(stride):
            u0, c0, nc = _phase_span(b, stride, pad, w, ws)
            if nr and nc:
                planes[a, b, :, :, t0 : t0 + nr, u0 : u0 + nc] = xt[
                    :,
                    :,
                    r0 : r0 + stride * (nr - 1) + 1 : stride,
                    c0 : c0 + stride * (nc - 1) + 1 : stride,
                ]
    return planes


def _unphase(dplanes: Any, shape: tuple[int, ...], stride: int, pad: int, xp: ModuleType) -> Any:
    """Adjoint of ``_phase_planes``: (s, s, C, N, hs, ws) gradient -> dx (N, C, H, W)."""
    _, _, h, w = shape
    hs, ws = dplanes.shape[4], dplanes.shape[5]
    if stride == 1 and hs == h + 2 * pad and ws == w + 2 * pad:
        # One plane covering all of xpad: dx is a view, no copy.
        return xp.permute_dims(dplanes[0, 0, :, :, pad : pad + h, pad : pad + w], (1, 0, 2, 3))
    dx = xp.zeros(shape, dtype=dplanes.dtype, device=dplanes.device)
    for a in range(stride):
        t0, r0, nr = _phase_span(a, stride, pad, h, hs)
        for b in range(stride):
            u0, c0, nc = _phase_span(b, stride, pad, w, ws)
            if nr and nc:
                dx[
                    :,
                    :,
                    r0 : r0 + stride * (nr - 1) + 1 : stride,
                    c0 : c0 + stride * (nc - 1) + 1 : stride,
                ] = xp.permute_dims(dplanes[a, b, :, :, t0 : t0 + nr, u0 : u0 + nc], (1, 0, 2, 3))
    return dx


def _offset_window(planes: Any, i: int, j: int, stride: int, ho: int, wo: int) -> Any:
    """The (C, N, ho, wo) input pixels kernel offset (i, j) meets, as a slice of one plane."""
    ti, tj = i // stride, j // stride
    return planes[i % stride, j % stride, :, :, ti : ti + ho, tj : tj + wo]


def _columns(planes: Any, hh: int, ww: int, stride: int, ho: int, wo: int, xp: ModuleType) -> Any:
    """Phase planes -> columns (C*HH*WW, N*Ho*Wo), rows ordered like w flattens.

    Stacking on axis 1 makes the (C, HH*WW, N, Ho, Wo) result contiguous in
    that order, so the reshape is free.
    """
    c, n = planes.shape[2], planes.shape[3]
    wins = [_offset_window(planes, i, j, stride, ho, wo) for i in range(hh) for j in range(ww)]
    return xp.reshape(xp.stack(wins, axis=1), (c * hh * ww, n * ho * wo))


def _col2im(
    dcols: Any,
    planes_shape: tuple[int, ...],
    hh: int,
    ww: int,
    stride: int,
    ho: int,
    wo: int,
    xp: ModuleType,
) -> Any:
    """Adjoint of ``_columns``: (C*HH*WW, N*Ho*Wo) -> phase-plane gradient.

    One slice-add per kernel offset; overlapping windows accumulate because
    each ``+=`` reads back what earlier offsets wrote.
    """
    c, n = planes_shape[2], planes_shape[3]
    d = xp.reshape(dcols, (c, hh * ww, n, ho, wo))
    dplanes = xp.zeros(planes_shape, dtype=dcols.dtype, device=dcols.device)
    for i in range(hh):
        for j in range(ww):
            ti, tj = i // stride, j // stride
            dplanes[i % stride, j % stride, :, :, ti : ti + ho, tj : tj + wo] += d[
                :, i * ww + j, ...
            ]
    return dplanes


def conv_forward_fast(x: Any, w: Any, b: Any, conv_param: dict) -> tuple[Any, tuple]:
    """Same result as ``conv_forward_naive``: out = w2 @ columns + b in one matmul.

    w2 is w as (F, C*HH*WW), columns are (C*HH*WW, N*Ho*Wo); the output is an
    (N, F, Ho, Wo) view of the (F, N, Ho, Wo) product. No Python loop over
    images, channels or pixels, only over the HH*WW kernel offsets.
    """
    xp = namespace(x=x, w=w, b=b)
    stride, pad, ho, wo = _conv_geometry(x, w, b, conv_param, xp)
    n = x.shape[0]
    f, c, hh, ww = w.shape
    planes = _phase_planes(x, stride, pad, ho + (hh - 1) // stride, wo + (ww - 1) // stride, xp)
    cols = _columns(planes, hh, ww, stride, ho, wo, xp)
    out2 = xp.reshape(w, (f, c * hh * ww)) @ cols
    out2 += b[:, None]
    out = xp.permute_dims(xp.reshape(out2, (f, n, ho, wo)), (1, 0, 2, 3))
    return out, (x, w, b, conv_param, (cols, tuple(planes.shape)))


def conv_backward_fast(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout (N, F, Ho, Wo) -> dx, dw, db: dw = dout2 @ cols.T, dx = col2im(w2.T @ dout2).

    dout2 is dout as (F, N*Ho*Wo); db = sum of dout over N, Ho, Wo.
    """
    x, w, b, conv_param, (cols, planes_shape) = cache
    xp = namespace(dout=dout, x=x, w=w)
    stride, pad, ho, wo = _conv_geometry(x, w, b, conv_param, xp)
    _check_dout(dout, x, w, ho, wo)
    n = x.shape[0]
    f, c, hh, ww = w.shape
    dout2 = xp.reshape(xp.permute_dims(dout, (1, 0, 2, 3)), (f, n * ho * wo))
    db = xp.sum(dout2, axis=1)
    dw = xp.reshape(dout2 @ xp.matrix_transpose(cols), w.shape)
    dcols = xp.matrix_transpose(xp.reshape(w, (f, c * hh * ww))) @ dout2
    dplanes = _col2im(dcols, planes_shape, hh, ww, stride, ho, wo, xp)
    return _unphase(dplanes, tuple(x.shape), stride, pad, xp), dw, db
