"""The pointwise lowering: 1x1 kernels without padding, any stride.

A 1x1 convolution is a product over the channels, image by image, with no
columns to build: out[n] = w2 @ x[n] + b, w2 = w as (F, C) and x[n] as (C,
Ho*Wo) (the pixels the stride keeps, copied into a work array only when
the stride is above 1). The products stack over the images of a batch
chunk, already in the (N, F, Ho, Wo) layout of the output; the backward is
dx[n] = w2.T @ dout[n] (scattered back to the kept pixels, zero elsewhere)
and dw = sum_n dout[n] @ x[n].T. Every term is one of the formula's: no
zeros meet the data, so non-finite values land where the naive layer puts
them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends
from ..backends import Workspace
from ._chunks import conv_chunks, sum_in_order


class Pointwise:
    """One 1x1 convolution of x (N, C, H, W) with stride ``stride``, chunk by chunk."""

    def __init__(
        self,
        x: Any,
        stride: int,
        out_hw: tuple[int, int],
        f: int,
        work: Workspace,
        policy: backends.WorkPolicy,
        xp: ModuleType,
    ) -> None:
        self.x, self.stride, self.work, self.policy, self.xp = x, stride, work, policy, xp
        self.ho, self.wo = out_hw
        self.c = x.shape[1]
        self.area = self.ho * self.wo
        # The kept pixels of the input and dx's rows and columns.
        self.rows = slice(0, stride * (self.ho - 1) + 1, stride)
        self.cols = slice(0, stride * (self.wo - 1) + 1, stride)
        self.chunks = conv_chunks(policy, x.shape[0], self.c + f, self.area)

    def pixels(self, n0: int, n1: int) -> Any:
        """x[n0:n1]'s kept pixels as (nb, C, Ho*Wo)."""
        xp, m = self.xp, n1 - n0
        if self.stride == 1:
            return xp.reshape(self.x[n0:n1, ...], (m, self.c, self.area))
        kept = self.work.scratch("kept", (m, self.c, self.ho, self.wo))
        kept[...] = self.x[n0:n1, :, self.rows, self.cols]
        return xp.reshape(kept, (m, self.c, self.area))


def forward(out: Any, low: Pointwise, w: Any, b: Any) -> None:
    """out[n] (F, Ho*Wo) = w2 @ x[n] + b, the images of a chunk as one stacked product."""
    xp = low.xp
    f = w.shape[0]
    w2 = xp.reshape(w, (f, low.c))
    bias = xp.reshape(b, (f, 1))

    def chunk(span: tuple[int, int]) -> None:
        n0, n1 = span
        prod = low.work.scratch("prod", (n1 - n0, f, low.area))
        backends.matmul_into(w2, low.pixels(n0, n1), prod)
        prod += bias
        out[n0:n1, ...] = xp.reshape(prod, (n1 - n0, f, low.ho, low.wo))

    backends.map_chunks(chunk, low.chunks, out)


def backward(dout: Any, low: Pointwise, w: Any, need_dx: bool) -> tuple[Any, Any, Any]:
    """dx[n] = w2.T @ dout[n] on the kept pixels, dw = sum_n dout[n] @ x[n].T, db."""
    xp, x = low.xp, low.x
    f = w.shape[0]
    w2t = xp.matrix_transpose(xp.reshape(w, (f, low.c)))
    dx = None
    if need_dx:
        every = low.stride == 1 or (x.shape[2] == 1 and x.shape[3] == 1)
        dx = (xp.empty if every else xp.zeros)(tuple(x.shape), dtype=x.dtype, device=x.device)

    def chunk(span: tuple[int, int]) -> Any:
        n0, n1 = span
        m = n1 - n0
        d = xp.reshape(dout[n0:n1, ...], (m, f, low.area))
        # The images' shares summed in order: the same bits on every run.
        share = xp.sum(d @ xp.matrix_transpose(low.pixels(n0, n1)), axis=0)
        grads = share, xp.sum(d, axis=(0, 2))
        if need_dx:
            g = backends.matmul_into(w2t, d, low.work.scratch("dprod", (m, low.c, low.area)))
            dx[n0:n1, :, low.rows, low.cols] = xp.reshape(g, (m, low.c, low.ho, low.wo))
        return grads

    parts = backends.map_chunks(chunk, low.chunks, x)
    dw = sum_in_order([p[0] for p in parts], (f, low.c), x, xp)
    db = sum_in_order([p[1] for p in parts], (f,), x, xp)
    return dx, xp.reshape(dw, tuple(w.shape)), db
