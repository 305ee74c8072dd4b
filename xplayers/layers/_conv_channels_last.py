"""The channels-last lowering of the fast convolution: one row of columns per
output position, (nb*Ho*Wo, HH*WW*C), copied from a channels-last padded
chunk. No stride-phase planes and no junk columns (see ``conv.LOWERING`` for
where it wins over flat windows).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends
from ..backends import Workspace
from ._chunks import conv_chunks, sum_along, sum_grads


class ChannelsLast:
    """Channels-last columns of one convolution, chunk by chunk.

    cols[(n, t, u), (i, j, c)] = xpad[n, c, s*t + i, s*u + j]: one row per
    output position, (nb*Ho*Wo, HH*WW*C). The chunk is first copied into a
    channels-last padded array (nb, Hp, s*Wq, C) and read as (nb, Hp, Wq,
    s*C), each group of s neighbouring columns one row of s*C values: kernel
    columns j = s*q + b that share q then come from ONE contiguous run (over
    b and c), so each (kernel row, q) is one strided slice copy; where the
    library has overlapping strided views (``backends.strided_view``) all
    windows are one copy. Unlike flat windows this needs no stride-phase
    planes (gathers 1/s dense) and computes no junk columns; but the runs
    are only a few C long (see LOWERING for where each layout wins).

    Arrays are written before they are reshaped for reading, never through
    a reshape: the standard leaves open whether reshape copies.
    """

    def __init__(
        self,
        x: Any,
        kernel: tuple[int, int],
        stride: int,
        pad: int,
        out_hw: tuple[int, int],
        work: Workspace,
        policy: backends.WorkPolicy,
        xp: ModuleType,
    ) -> None:
        self.x, self.stride, self.pad, self.work, self.xp = x, stride, pad, work, xp
        self.hh, self.ww = kernel
        self.ho, self.wo = out_hw
        _, self.c, self.h, self.wd = x.shape
        self.hp = self.h + 2 * pad
        self.wq = -(-(self.wd + 2 * pad) // stride)  # column groups of the padded width
        self.rows = self.c * self.hh * self.ww
        self.positions = self.ho * self.wo
        # Half the flat layout's chunk: the rows of channels-last columns are
        # shorter, and smaller chunks stay in cache.
        self.chunks = conv_chunks(policy, x.shape[0], self.rows, self.positions, scale=0.5)

    def _windows(self) -> list[tuple[int, int, int, slice]]:
        """(kernel row i, column group q, kernel columns in it, padded rows) per window,
        in (i, q) order; the window's kernel columns are j = s*q ... s*q + count - 1."""
        s, ho = self.stride, self.ho
        return [
            (i, q, min(s, self.ww - s * q), slice(i, i + s * (ho - 1) + 1, s))
            for i in range(self.hh)
            for q in range(-(-self.ww // s))
        ]

    def columns(self, n0: int, n1: int) -> Any:
        """(nb*Ho*Wo, HH*WW*C) columns of x[n0:n1].

        The padding of the work array stays zero from the first chunk on.
        """
        xp, p, m, c, s, wo = self.xp, self.pad, n1 - n0, self.c, self.stride, self.wo
        xpad = self.work.zeros("xpad", (m, self.hp, s * self.wq, c))
        xpad[:, p : p + self.h, p : p + self.wd, :] = xp.permute_dims(
            self.x[n0:n1, ...], (0, 2, 3, 1)
        )
        cols = self.work.zeros("cols", (m, self.ho, wo, self.hh, self.ww * c))
        # Where the library has overlapping strided views, all windows are ONE
        # copy with runs of WW*C.
        row = s * self.wq * c
        windows = backends.strided_view(
            xpad, tuple(cols.shape), (self.hp * row, s * row, s * c, row, 1)
        )
        if windows is not None:
            cols[...] = windows
        else:
            grouped = xp.reshape(xpad, (m, self.hp, self.wq, s * c))
            for i, q, count, rows in self._windows():
                j0 = s * q * c
                cols[:, :, :, i, j0 : j0 + count * c] = grouped[:, rows, q : q + wo, : count * c]
        return xp.reshape(cols, (m * self.positions, self.rows))

    def col2im_into(self, dx: Any, n0: int, dcols: Any) -> None:
        """Adjoint of ``columns``: add each window's share of dcols back, write dx[n0:n0+nb].

        When the stride is at most the kernel, the windows of kernel rows i <
        s and column group 0 tile [0, s*Ho) x [0, s*Wo) exactly once and come
        before every window that overlaps them, so they are assigned and only
        the rest of the padded array is cleared; the other windows add.
        """
        xp, s, p, c, wo = self.xp, self.stride, self.pad, self.c, self.wo
        m = dcols.shape[0] // self.positions
        d = xp.reshape(dcols, (m, self.ho, wo, self.hh, self.ww * c))
        grouped = self.work.zeros("dxpad", (m, self.hp, self.wq, s * c))
        tiled = s <= self.hh and s <= self.ww
        if tiled:
            grouped[:, s * self.ho :, ...] = 0
            grouped[:, : s * self.ho, wo:, :] = 0
        else:
            grouped[...] = 0
        for i, q, count, rows in self._windows():
            j0 = s * q * c
            part = d[:, :, :, i, j0 : j0 + count * c]
            if tiled and i < s and q == 0:
                grouped[:, rows, :wo, : count * c] = part
            else:
                grouped[:, rows, q : q + wo, : count * c] += part
        dpad = xp.reshape(grouped, (m, self.hp, s * self.wq, c))
        inner = dpad[:, p : p + self.h, p : p + self.wd, :]
        dx[n0 : n0 + m, ...] = xp.permute_dims(inner, (0, 3, 1, 2))


def _channels_last_weights(w: Any, xp: ModuleType) -> Any:
    """w (F, C, HH, WW) as (F, HH*WW*C), columns ordered like channels-last rows."""
    f, c, hh, ww = w.shape
    return xp.reshape(xp.permute_dims(w, (0, 2, 3, 1)), (f, hh * ww * c))


def forward(out: Any, low: ChannelsLast, w: Any, b: Any) -> None:
    """out (N, F, Ho, Wo) = columns @ wk.T + b, one matmul per batch chunk."""
    xp, f = low.xp, out.shape[1]
    wkt = xp.matrix_transpose(_channels_last_weights(w, xp))

    def chunk(span: tuple[int, int]) -> None:
        n0, n1 = span
        cols = low.columns(n0, n1)
        prod = low.work.zeros("prod", (cols.shape[0], f))
        backends.matmul_into(cols, wkt, prod)
        prod += b
        grid = xp.reshape(prod, (n1 - n0, low.ho, low.wo, f))
        out[n0:n1, ...] = xp.permute_dims(grid, (0, 3, 1, 2))

    backends.map_chunks(chunk, low.chunks, out)


def backward(dout: Any, low: ChannelsLast, w: Any, need_dx: bool) -> tuple[Any, Any, Any]:
    """dx = col2im(dout2 @ wk), dw.T = columns.T @ dout2, db, chunk by chunk.

    dout2 is a chunk of dout as (nb*Ho*Wo, F). The columns are rebuilt from
    x: writing the forward's to memory and reading them back costs more than
    rebuilding each chunk in cache (see the README's performance notes).
    dw's product runs first, while the columns are still in cache.
    """
    xp, x = low.xp, low.x
    f = w.shape[0]
    wk = _channels_last_weights(w, xp)
    dx = xp.empty(tuple(x.shape), dtype=x.dtype, device=x.device) if need_dx else None

    def chunk(span: tuple[int, int]) -> Any:
        n0, n1 = span
        cols = low.columns(n0, n1)
        grid = low.work.zeros("dout", (n1 - n0, low.ho, low.wo, f))
        grid[...] = xp.permute_dims(dout[n0:n1, ...], (0, 2, 3, 1))
        d2 = xp.reshape(grid, (cols.shape[0], f))
        grads = xp.matrix_transpose(cols) @ d2, sum_along(d2, 0, xp)
        if need_dx:
            dcols = low.work.zeros("dcols", tuple(cols.shape))
            low.col2im_into(dx, n0, backends.matmul_into(d2, wk, dcols))
        return grads

    parts = backends.map_chunks(chunk, low.chunks, x)
    dwkt, db = sum_grads(parts, (low.rows, f), f, x, xp)
    dw = xp.permute_dims(xp.reshape(dwkt, (low.hh, low.ww, low.c, f)), (3, 2, 0, 1))
    return dx, xp.reshape(xp.reshape(dw, (-1,)), tuple(w.shape)), db  # dw: a C-ordered copy
