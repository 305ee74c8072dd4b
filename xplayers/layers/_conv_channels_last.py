"""The channels-last lowering of the fast convolution: rows of columns copied
from a channels-last padded chunk, one row per output position, or per
``tile`` horizontally neighbouring positions. No stride-phase planes and no
junk columns (see ``conv.LOWERING`` for where it wins over flat windows).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends
from ..backends import Workspace
from . import _conv_flat
from ._chunks import all_finite, conv_chunks, sum_along, sum_grads


class ChannelsLast:
    """Channels-last columns of one convolution, chunk by chunk.

    With tile t, one row of columns serves the t outputs (y, t*u ... t*u+t-1)
    at once: it holds the (HH, KW) window of KW = s*(t-1) + WW columns they
    share, cols[(n, y, u), (i, j, c)] = xpad[n, c, s*y + i, s*t*u + j],
    shape (nb*Ho*Wo/t, HH*KW*C), and is multiplied by t shifted copies of the
    weights, (t*F, HH*KW*C), zero outside each copy's WW columns. The product
    (nb*Ho*Wo/t, t*F) is then positions-major (nb*Ho*Wo, F) in memory. A tile
    of 2 halves the rows for 1/WW more products: it pays where the columns
    are long to copy for few products (few channels). t = 1 is the plain
    layout, one row per output position.

    The chunk is first copied into a channels-last padded array (nb, Hp, g*Wq,
    C), g = s*t, and read as (nb, Hp, Wq, g*C), each group of g neighbouring
    columns one row of g*C values: window columns j = g*q + b that share q
    then come from ONE contiguous run (over b and c), so each (kernel row, q)
    is one strided slice copy; where the library has overlapping strided
    views (``backends.strided_view``) all windows are one copy. Unlike flat
    windows this needs no stride-phase planes (gathers 1/s dense) and
    computes no junk columns; but the runs are only a few C long (see
    LOWERING for where each layout wins).

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
        tile: int = 1,
    ) -> None:
        self.x, self.stride, self.pad, self.work, self.xp = x, stride, pad, work, xp
        self.policy = policy
        self.hh, self.ww = kernel
        self.ho, self.wo = out_hw
        if tile < 1 or self.wo % tile:
            raise ValueError(f"tile must be a positive divisor of Wo={self.wo}, got {tile}")
        self.tile = tile
        _, self.c, self.h, self.wd = x.shape
        self.group = stride * tile  # input columns between neighbouring rows of columns
        self.kw = stride * (tile - 1) + self.ww  # window width of a row of columns
        self.wt = self.wo // tile  # rows of columns per output row
        #: Width of the positions-major grid of the product: no junk columns.
        self.grid_w = self.wo
        self.hp = self.h + 2 * pad
        # Column groups of the padded width, and enough for the last window's
        # reads in the portable copy.
        groups = -(-self.kw // self.group)
        self.wq = max(-(-(self.wd + 2 * pad) // self.group), groups - 1 + self.wt)
        self.rows = self.c * self.hh * self.kw
        self.positions = self.ho * self.wo
        self.chunks = conv_chunks(
            policy,
            x.shape[0],
            self.rows,
            self.positions // tile,
            scale=policy.channels_last_chunk_scale,
        )

    def _windows(self) -> list[tuple[int, int, int, slice]]:
        """(kernel row i, column group q, window columns in it, padded rows) per window,
        in (i, q) order; the window's columns are j = g*q ... g*q + count - 1."""
        s, g, ho = self.stride, self.group, self.ho
        return [
            (i, q, min(g, self.kw - g * q), slice(i, i + s * (ho - 1) + 1, s))
            for i in range(self.hh)
            for q in range(-(-self.kw // g))
        ]

    def columns(self, n0: int, n1: int) -> Any:
        """(nb*Ho*Wo/t, HH*KW*C) columns of x[n0:n1].

        The padding of the work array stays zero from the first chunk on.
        """
        xp, p, m, c, s, g, wt = self.xp, self.pad, n1 - n0, self.c, self.stride, self.group, self.wt
        xpad = self.work.scratch("xpad", (m, self.hp, g * self.wq, c))
        xpad[:, p : p + self.h, p : p + self.wd, :] = xp.permute_dims(
            self.x[n0:n1, ...], (0, 2, 3, 1)
        )
        cols = self.work.scratch("cols", (m, self.ho, wt, self.hh, self.kw * c))
        # Where the library has overlapping strided views, all windows are ONE
        # copy with runs of KW*C.
        row = g * self.wq * c
        windows = backends.strided_view(
            xpad, tuple(cols.shape), (self.hp * row, s * row, g * c, row, 1)
        )
        if windows is not None:
            cols[...] = windows
        else:
            grouped = xp.reshape(xpad, (m, self.hp, self.wq, g * c))
            for i, q, count, rows in self._windows():
                j0 = g * q * c
                cols[:, :, :, i, j0 : j0 + count * c] = grouped[:, rows, q : q + wt, : count * c]
        return xp.reshape(cols, (m * self.ho * wt, self.rows))

    def col2im_into(self, dx: Any, n0: int, dcols: Any) -> None:
        """Adjoint of ``columns``: add each window's share of dcols back, write dx[n0:n0+nb].

        When the strides are at most the window, the windows of kernel rows
        i < s and column group 0 tile [0, s*Ho) x [0, g*Wo/t) exactly once and
        come before every window that overlaps them, so they are assigned and
        only the rest of the padded array is cleared; the other windows add.
        """
        xp, s, g, p, c, wt = self.xp, self.stride, self.group, self.pad, self.c, self.wt
        m = dcols.shape[0] // (self.ho * wt)
        d = xp.reshape(dcols, (m, self.ho, wt, self.hh, self.kw * c))
        grouped = self.work.scratch("dxpad", (m, self.hp, self.wq, g * c))
        tiled = s <= self.hh and g <= self.kw
        if tiled:
            grouped[:, s * self.ho :, ...] = 0
            grouped[:, : s * self.ho, wt:, :] = 0
        else:
            grouped[...] = 0
        for i, q, count, rows in self._windows():
            j0 = g * q * c
            part = d[:, :, :, i, j0 : j0 + count * c]
            if tiled and i < s and q == 0:
                grouped[:, rows, :wt, : count * c] = part
            else:
                grouped[:, rows, q : q + wt, : count * c] += part
        dpad = xp.reshape(grouped, (m, self.hp, g * self.wq, c))
        inner = dpad[:, p : p + self.h, p : p + self.wd, :]
        dx[n0 : n0 + m, ...] = xp.permute_dims(inner, (0, 3, 1, 2))

    def flat_twin(self) -> Any:
        """Flat windows of the same stride-1 convolution, whose col2im adds dx's
        windows for a tile: a tile's own col2im adds runs of t*C values, flat
        windows' run Wo long (docs/performance.md has the times). At stride 1 both
        grids are the (Ho, Wo) positions, so a chunk's dout serves either."""
        return _conv_flat.FlatWindows(
            self.x,
            (self.hh, self.ww),
            1,
            (self.pad, self.pad),
            (self.ho, self.wo),
            self.work,
            self.policy,
            self.xp,
        )

    def weights(self, w: Any) -> Any:
        """w (F, C, HH, WW) as (t*F, HH*KW*C): copy k of the filters shifted by s*k
        columns, zero elsewhere, columns ordered like the rows of ``columns``."""
        xp, s, t = self.xp, self.stride, self.tile
        f, c, hh, ww = w.shape
        if t == 1:
            return _filters_last(w, xp)
        last = xp.permute_dims(w, (0, 2, 3, 1))
        shifted = xp.zeros((t, f, hh, self.kw, c), dtype=w.dtype, device=w.device)
        for k in range(t):
            shifted[k, :, :, s * k : s * k + ww, :] = last
        return xp.reshape(shifted, (t * f, self.rows))

    def copy_products(self, cols: Any, w: Any, prod: Any) -> None:
        """prod (rows, t*F) = columns @ wk.T without wk's zeros: copy k of the filters
        meets only its own WW columns of each row, one product per copy.

        For a tile's chunk whose x holds a NaN or an infinity: in the one product
        the zeros that shift the copies would meet it, and 0 * inf is NaN, in
        outputs whose windows do not hold it.
        """
        xp, s, c, ww, m = self.xp, self.stride, self.c, self.ww, cols.shape[0]
        f = w.shape[0]
        filters_t = xp.matrix_transpose(_filters_last(w, xp))
        rows = xp.reshape(cols, (m, self.hh, self.kw * c))
        part = self.work.scratch("cols-copy", (m, self.hh, ww * c))
        for k in range(self.tile):
            part[...] = rows[:, :, s * k * c : (s * k + ww) * c]
            prod[:, k * f : (k + 1) * f] = xp.reshape(part, (m, self.hh * ww * c)) @ filters_t

    def copy_dcols(self, d2: Any, w: Any) -> Any:
        """d2 (rows, t*F) @ wk without wk's zeros, one product per copy added into its
        own WW columns: for a tile's chunk whose dout holds a NaN or an infinity (see
        ``copy_products``)."""
        xp, s, c, ww, m = self.xp, self.stride, self.c, self.ww, d2.shape[0]
        f = w.shape[0]
        filters = _filters_last(w, xp)
        dcols = xp.zeros((m, self.hh, self.kw * c), dtype=d2.dtype, device=d2.device)
        for k in range(self.tile):
            part = xp.reshape(d2[:, k * f : (k + 1) * f] @ filters, (m, self.hh, ww * c))
            dcols[:, :, s * k * c : (s * k + ww) * c] += part
        return xp.reshape(dcols, (m, self.rows))

    def fold(self, dwk: Any, db: Any) -> tuple[Any, Any]:
        """Adjoint of ``weights`` for dwk.T (HH*KW*C, t*F), and db (t*F,) summed over
        the tile: dw (F, C, HH, WW), C-ordered, and db (F,)."""
        xp, s, t, ww, f = self.xp, self.stride, self.tile, self.ww, db.shape[0] // self.tile
        parts = xp.reshape(dwk, (self.hh, self.kw, self.c, t, f))
        dw = parts[:, :ww, :, 0, :]
        for k in range(1, t):
            dw = dw + parts[:, s * k : s * k + ww, :, k, :]
        dw = xp.permute_dims(dw, (3, 2, 0, 1))
        # A C-ordered copy of the permuted view.
        dw = xp.reshape(xp.reshape(dw, (-1,)), (f, self.c, self.hh, ww))
        return dw, xp.sum(xp.reshape(db, (t, f)), axis=0)


def forward(out: Any, low: ChannelsLast, w: Any, b: Any, emit: Any = None) -> None:
    """out (N, F, Ho, Wo) = columns @ wk.T + b, one matmul per batch chunk.

    ``emit(n0, prod)``, when given, takes each chunk's positions-major product
    (nb*Ho*Wo, F) instead of it being written into ``out`` (a fused layer
    consumes it while it is in cache; ``out`` then only names the backend).
    """
    xp, f, t = low.xp, out.shape[1], low.tile
    wkt = xp.matrix_transpose(low.weights(w))
    bias = b if t == 1 else xp.concat([b] * t)

    def chunk(span: tuple[int, int]) -> None:
        n0, n1 = span
        cols = low.columns(n0, n1)
        prod = low.work.scratch("prod", (cols.shape[0], t * f))
        if t > 1 and (not low.policy.probe_values or not all_finite(low.x[n0:n1, ...], xp)):
            low.copy_products(cols, w, prod)
        else:
            backends.matmul_into(cols, wkt, prod)
        prod += bias
        if emit is not None:
            emit(n0, xp.reshape(prod, (cols.shape[0] * t, f)))
            return
        grid = xp.reshape(prod, (n1 - n0, low.ho, low.wo, f))
        out[n0:n1, ...] = xp.permute_dims(grid, (0, 3, 1, 2))

    backends.map_chunks(chunk, low.chunks, out)


def backward(
    dout: Any, low: ChannelsLast, w: Any, need_dx: bool, grid: Any = None
) -> tuple[Any, Any, Any]:
    """dx = col2im(dout2 @ wk), dw.T = columns.T @ dout2, db, chunk by chunk.

    For tiles at stride 1, dx is instead flat windows' col2im of w2.T @
    dout2.T (see ``flat_twin``). dout2 is a chunk of dout positions-major,
    (nb*Ho*Wo, F), read as (nb*Ho*Wo/t, t*F): ``grid(n0, n1)`` when given (a
    fused layer builds it from its own cache; ``dout`` is then unused), else
    from ``dout``. The
    columns are rebuilt from x: writing the forward's to memory and reading
    them back costs more than rebuilding each chunk in cache (see
    docs/performance.md). dw's product runs first, while the columns
    are still in cache.
    """
    xp, x, t = low.xp, low.x, low.tile
    f = w.shape[0]
    wk = low.weights(w)
    # Either col2im writes every pixel of dx (at stride 1 the flat planes hold them all).
    dx = xp.empty(tuple(x.shape), dtype=x.dtype, device=x.device) if need_dx else None
    flat = low.flat_twin() if need_dx and t > 1 and low.stride == 1 else None
    w2t = None if flat is None else xp.matrix_transpose(xp.reshape(w, (f, flat.rows)))

    def chunk(span: tuple[int, int]) -> Any:
        n0, n1 = span
        cols = low.columns(n0, n1)
        if grid is None:
            g = low.work.scratch("dout", (n1 - n0, low.ho, low.wo, f))
            g[...] = xp.permute_dims(dout[n0:n1, ...], (0, 2, 3, 1))
            g = xp.reshape(g, (cols.shape[0] * t, f))
        else:
            g = grid(n0, n1)
        d2 = xp.reshape(g, (cols.shape[0], t * f))
        grads = xp.matrix_transpose(cols) @ d2, sum_along(d2, 0, low.policy, xp)
        if flat is not None:
            flat.dx_into(dx, n0, w2t, xp.matrix_transpose(g))
        elif need_dx:
            # dw's share is not finite where dout (or x) is not: wk's zeros then stay
            # out of the product (always, where the policy reads nothing back).
            if t > 1 and (not low.policy.probe_values or not all_finite(grads[0], xp)):
                dcols = low.copy_dcols(d2, w)
            else:
                dcols = backends.matmul_into(d2, wk, low.work.scratch("dcols", tuple(cols.shape)))
            low.col2im_into(dx, n0, dcols)
        return grads

    parts = backends.map_chunks(chunk, low.chunks, x)
    dwkt, db = sum_grads(parts, (low.rows, t * f), t * f, x, xp)
    dw, db = low.fold(dwkt, db)
    return dx, dw, db


def _filters_last(w: Any, xp: ModuleType) -> Any:
    """w (F, C, HH, WW) as (F, HH*WW*C), channels last like the rows of columns."""
    f, c, hh, ww = w.shape
    return xp.reshape(xp.permute_dims(w, (0, 2, 3, 1)), (f, hh * ww * c))
