"""The fast convolution on arrays that cannot be written (JAX), as pure functions.

out = w2 @ cols + b, with w2 = w as (F, C*HH*WW) and cols (N, C*HH*WW, Ho*Wo)
the stacked strided slices of the padded input, one per kernel offset:

    cols[n, (c, di, dj), (i, j)] = xpad[n, c, di + s*i, dj + s*j]

Backward: db = sum of dout over (N, Ho, Wo); dw = sum_n dout2[n] @ cols[n].T;
dx = col2im(w2.T @ dout2), each offset's (N, C, Ho, Wo) slab added into the
strided slice of dxpad it was read from: one update per offset, with no index
repeated within an update, so every library sums it exactly. Rows and columns
that no window reaches (``truncate``) get a zero gradient.

The only Python loop runs over the HH*WW kernel offsets, never over the batch,
the channels or the pixels. Nothing is written in place, no value is read
back and no traced array is asked for its device: the functions trace under
``jax.jit``. The conv layer's entry points route here when
``backends.writes_in_place`` says its arrays cannot be written.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import array_api_extra as xpx

from ._conv_geometry import pad_input, unpad


def _offset_slices(
    kernel: tuple[int, int], stride: int, out_hw: tuple[int, int]
) -> Iterator[tuple[slice, ...]]:
    """Per kernel offset (di, dj), row-major: the index of the (N, C, Ho, Wo) strided
    slice of xpad that the offset multiplies in every window."""
    (hh, ww), (ho, wo) = kernel, out_hw
    for di in range(hh):
        for dj in range(ww):
            rows = slice(di, di + stride * (ho - 1) + 1, stride)
            cols = slice(dj, dj + stride * (wo - 1) + 1, stride)
            yield (slice(None), slice(None), rows, cols)


def _columns(
    xpad: Any, kernel: tuple[int, int], stride: int, out_hw: tuple[int, int], xp: ModuleType
) -> Any:
    """cols (N, C*HH*WW, Ho*Wo) of the padded input, rows ordered (c, di, dj) like w's."""
    n, c = xpad.shape[:2]
    views = [xpad[index] for index in _offset_slices(kernel, stride, out_hw)]
    cols = xp.stack(views, axis=2)  # (N, C, HH*WW, Ho, Wo)
    return xp.reshape(cols, (n, c * kernel[0] * kernel[1], out_hw[0] * out_hw[1]))


def forward(
    x: Any, w: Any, b: Any, stride: int, pad: int, out_hw: tuple[int, int], xp: ModuleType
) -> Any:
    """out (N, F, Ho, Wo) = w2 @ cols + b for checked x (N, C, H, W), w (F, C, HH, WW), b (F,)."""
    f, c, hh, ww = w.shape
    cols = _columns(pad_input(x, pad, xp), (hh, ww), stride, out_hw, xp)
    out = xp.matmul(xp.reshape(w, (f, c * hh * ww)), cols) + b[:, None]
    return xp.reshape(out, (x.shape[0], f, *out_hw))


def backward(
    dout: Any, x: Any, w: Any, stride: int, pad: int, need_dx: bool, xp: ModuleType
) -> tuple[Any, Any, Any]:
    """dout (N, F, Ho, Wo) checked -> dx (N, C, H, W) (None unless need_dx), dw, db."""
    n, f, ho, wo = dout.shape
    _, c, hh, ww = w.shape
    xpad = pad_input(x, pad, xp)
    cols = _columns(xpad, (hh, ww), stride, (ho, wo), xp)
    dout2 = xp.reshape(dout, (n, f, ho * wo))
    db = xp.sum(dout, axis=(0, 2, 3))
    dw = xp.reshape(xp.tensordot(dout2, cols, axes=([0, 2], [0, 2])), tuple(w.shape))
    if not need_dx:
        return None, dw, db
    w2t = xp.matrix_transpose(xp.reshape(w, (f, c * hh * ww)))
    dcols = xp.reshape(xp.matmul(w2t, dout2), (n, c, hh * ww, ho, wo))
    dxpad = xp.zeros_like(xpad)
    for k, index in enumerate(_offset_slices((hh, ww), stride, (ho, wo))):
        dxpad = xpx.at(dxpad)[index].add(dcols[:, :, k, ...])
    return unpad(dxpad, pad), dw, db
