"""The flat-window lowering of the fast convolution.

Phase planes: planes[a, b, c, n, t, u] = xpad[n, c, s*t + a, s*u + b], shape
(s, s, C, N, hs, ws). Kernel offset (i, j) meets plane (i % s, j % s) at
rows i//s + t and columns j//s + u for output (t, u): a stride-s convolution
becomes s*s stride-1 ones. Flattening each plane's (hs, ws) then makes the
window of offset (i, j) ONE contiguous run of Ho*ws values starting at
(i//s)*ws + j//s: the output is computed on a (Ho, ws) grid whose last
ws - Wo columns are junk (they wrap into the next row) and are dropped when
the output is written. Copies then run over long contiguous stretches
instead of Wo-long rows. A spare row at the end of each plane keeps the
last offset's run inside its plane (stride 1 keeps it too, unused).

Stride 1 has one plane and needs no runs: its windows are read straight
off the padded plane as (Ho, Wo) blocks (one copy of an overlapping
strided view where the library has one), so its grid is (Ho, Wo) with no
junk columns. The junk is (WW - 1) / ws of every product and copy (for
7x7 filters on 32-wide images a sixth; docs/performance.md has what dropping it
gained).

The batch goes through in chunks (``backends.work_policy``) whose work
arrays are reused by every chunk. The chunks are independent (each writes
only its own images of the output and returns its share of dw), so
``backends.map_chunks`` may run them at once.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends
from ..backends import Workspace
from ._chunks import all_finite, conv_chunks, product_over_positions, sum_along, sum_grads


def _phase_span(phase: int, stride: int, pad: int, size: int, count: int) -> tuple[int, int, int]:
    """Where input axis positions s*t + phase - pad (t < count) fall inside [0, size).

    Returns (first t, first input index, how many); how many may be 0.
    """
    t0 = max(0, -((phase - pad) // stride))
    i0 = stride * t0 + phase - pad
    if i0 >= size or t0 >= count:
        return t0, i0, 0
    return t0, i0, min(count - t0, (size - i0 + stride - 1) // stride)


def _plane_size(hh: int, ww: int, stride: int, ho: int, wo: int) -> tuple[int, int]:
    """(hs, ws) of the phase planes: every window's rows plus one spare row."""
    return ho + (hh - 1) // stride + 1, wo + (ww - 1) // stride


def _phase_slices(stride: int, ph: int, pw: int, h: int, w: int, hs: int, ws: int) -> list:
    """(a, b, plane rows, plane cols, input rows, input cols) of every non-empty phase."""
    out = []
    for a in range(stride):
        t0, r0, nr = _phase_span(a, stride, ph, h, hs)
        for b in range(stride):
            u0, c0, nc = _phase_span(b, stride, pw, w, ws)
            if nr and nc:
                out.append(
                    (
                        a,
                        b,
                        slice(t0, t0 + nr),
                        slice(u0, u0 + nc),
                        slice(r0, r0 + stride * (nr - 1) + 1, stride),
                        slice(c0, c0 + stride * (nc - 1) + 1, stride),
                    )
                )
    return out


def _covers_input(stride: int, pad: int, size: int, count: int) -> bool:
    """True when the phase planes along one axis hold every input pixel."""
    return sum(_phase_span(a, stride, pad, size, count)[2] for a in range(stride)) == size


def _offsets(hh: int, ww: int, stride: int, ws: int) -> list[tuple[int, int, int, int]]:
    """(row of w2 within a channel, plane a, plane b, flat window start) per kernel offset."""
    return [
        (i * ww + j, i % stride, j % stride, (i // stride) * ws + j // stride)
        for i in range(hh)
        for j in range(ww)
    ]


class FlatWindows:
    """Phase planes and flat-window columns of one convolution, chunk by chunk.

    ``chunks`` are the batch chunks its work goes through (from ``policy``,
    kept as ``policy`` for the backward).
    """

    def __init__(
        self,
        x: Any,
        kernel: tuple[int, int],
        stride: int,
        pads: tuple[int, int],
        out_hw: tuple[int, int],
        work: Workspace,
        policy: backends.WorkPolicy,
        xp: ModuleType,
    ) -> None:
        self.x, self.stride, self.pads, self.work, self.xp = x, stride, pads, work, xp
        self.policy = policy
        self.hh, self.ww = kernel
        self.ho, self.wo = out_hw
        self.hs, self.ws = _plane_size(self.hh, self.ww, stride, self.ho, self.wo)
        #: Width of the grid the products live on: Wo at stride 1, else ws
        #: (its last ws - Wo columns junk).
        self.grid_w = self.wo if stride == 1 else self.ws
        self.length = self.ho * self.grid_w
        self.c = x.shape[1]
        self.rows = self.c * self.hh * self.ww
        self.phases = _phase_slices(
            stride, pads[0], pads[1], x.shape[2], x.shape[3], self.hs, self.ws
        )
        self.offsets = _offsets(self.hh, self.ww, stride, self.ws)
        self.chunks = conv_chunks(policy, x.shape[0], self.rows, self.length)

    def planes(self, n0: int, n1: int) -> Any:
        """Phase planes of x[n0:n1]; the padding stays zero from the first chunk on."""
        s, xp = self.stride, self.xp
        planes = self.work.scratch("planes", (s, s, self.c, n1 - n0, self.hs, self.ws))
        xt = xp.permute_dims(self.x[n0:n1, ...], (1, 0, 2, 3))
        for a, b, pr, pc, xr, xc in self.phases:
            planes[a, b, :, :, pr, pc] = xt[:, :, xr, xc]
        return planes

    def columns(self, n0: int, n1: int) -> Any:
        """Columns (C*HH*WW, nb*Ho*grid_w) of x[n0:n1], rows ordered like w flattens.

        At stride 1 the windows of all offsets are one overlapping strided view
        of the plane: one copy where the library has such views, else one
        block copy per kernel offset.
        """
        s, xp, m, length = self.stride, self.xp, n1 - n0, self.length
        planes, area = self.planes(n0, n1), self.hs * self.ws
        if s == 1:
            # Written in this shape, reshaped only to be read: the standard
            # leaves open whether a reshape is a view.
            shape = (self.c, self.hh, self.ww, m, self.ho, self.wo)
            blocks = self.work.scratch("cols", shape)
            view = backends.strided_view(planes, shape, (m * area, self.ws, 1, area, self.ws, 1))
            if view is not None:
                blocks[...] = view
            else:
                for i in range(self.hh):
                    for j in range(self.ww):
                        blocks[:, i, j, ...] = planes[0, 0, :, :, i : i + self.ho, j : j + self.wo]
            return xp.reshape(blocks, (self.rows, m * length))
        cols = self.work.scratch("cols", (self.c, self.hh * self.ww, m, length))
        flat = xp.reshape(planes, (s, s, self.c, m, area))
        for k, a, b, start in self.offsets:
            cols[:, k, ...] = flat[a, b, :, :, start : start + length]
        return xp.reshape(cols, (self.rows, m * length))

    def junk_free(self, cols: Any) -> Any:
        """``columns`` with the junk columns zero (a copy).

        The junk holds pixels of other windows, met by dout's zero junk in dw's
        product: where such a pixel is NaN or infinite, 0 * it is NaN in entries
        of dw that no window links to it. For chunks whose dw share is not finite.
        """
        xp = self.xp
        grid = xp.reshape(cols, (self.rows, cols.shape[1] // self.length, self.ho, self.grid_w))
        real = xp.arange(self.grid_w, device=cols.device) < self.wo
        zero = xp.zeros((), dtype=cols.dtype, device=cols.device)
        return xp.reshape(xp.where(real, grid, zero), tuple(cols.shape))

    def col2im(self, dcols: Any, m: int) -> Any:
        """Adjoint of ``columns``: (C*HH*WW, nb*Ho*grid_w) -> plane gradient (s, s, C, nb, hs, ws).

        One slice-add per kernel offset; overlapping windows accumulate because
        each ``+=`` reads back what earlier offsets wrote. The first offset of
        each plane is assigned instead, and only the rest of that plane zeroed
        (its window starts at the plane's origin): no pass to clear the planes.
        """
        s, xp, length = self.stride, self.xp, self.length
        if s == 1:
            ho, wo = self.ho, self.wo
            d = xp.reshape(dcols, (self.c, self.hh, self.ww, m, ho, wo))
            dpl = self.work.scratch("dplanes", (1, 1, self.c, m, self.hs, self.ws))
            dpl[0, 0, :, :, :ho, :wo] = d[:, 0, 0, ...]
            dpl[0, 0, :, :, :ho, wo:] = 0
            dpl[0, 0, :, :, ho:, :] = 0
            for i in range(self.hh):
                for j in range(self.ww):
                    if i or j:
                        dpl[0, 0, :, :, i : i + ho, j : j + wo] += d[:, i, j, ...]
            return dpl
        d = xp.reshape(dcols, (self.c, self.hh * self.ww, m, length))
        dflat = self.work.scratch("dplanes", (s, s, self.c, m, self.hs * self.ws))
        started = set()
        for k, a, b, start in self.offsets:
            if (a, b) in started:
                dflat[a, b, :, :, start : start + length] += d[:, k, ...]
            else:
                started.add((a, b))
                dflat[a, b, :, :, :start] = 0
                dflat[a, b, :, :, start : start + length] = d[:, k, ...]
                dflat[a, b, :, :, start + length :] = 0
        return xp.reshape(dflat, (s, s, self.c, m, self.hs, self.ws))

    def unphase_into(self, dx: Any, n0: int, dplanes: Any) -> None:
        """Adjoint of ``planes``: write a chunk's plane gradient into dx[n0:n0+nb].

        Pixels no plane holds (those a truncated stride skips) are left as they
        are, so ``dx`` must start as zeros unless every pixel is covered.
        """
        n1 = n0 + dplanes.shape[3]
        for a, b, pr, pc, xr, xc in self.phases:
            dx[n0:n1, :, xr, xc] = self.xp.permute_dims(dplanes[a, b, :, :, pr, pc], (1, 0, 2, 3))

    def dx_into(self, dx: Any, n0: int, w2t: Any, d2: Any) -> None:
        """dx[n0:n0+nb] = col2im(w2t @ d2) for a chunk's dout d2 (F, nb*Ho*grid_w) and
        w2t (C*HH*WW, F), w as (F, C*HH*WW) transposed (see ``unphase_into`` on clearing)."""
        dcols = self.work.scratch("dcols", (self.rows, d2.shape[1]))
        backends.matmul_into(w2t, d2, dcols)
        self.unphase_into(dx, n0, self.col2im(dcols, d2.shape[1] // self.length))


def on_grid(work: Workspace, name: str, a: Any, n0: int, n1: int, ws: int, xp: ModuleType) -> Any:
    """a[n0:n1] (nb, K, h, w) as (K, nb*h*ws) on a grid ws >= w wide, junk columns zero.

    The junk columns of the reused work array are never written, so they stay zero.
    """
    k, h, w = a.shape[1:]
    grid = work.scratch(name, (k, n1 - n0, h, ws))
    grid[..., :w] = xp.permute_dims(a[n0:n1, ...], (1, 0, 2, 3))
    return xp.reshape(grid, (k, (n1 - n0) * h * ws))


def write_grid(out: Any, n0: int, prod: Any, ws: int, xp: ModuleType) -> None:
    """out[n0:n0+nb] = a chunk's product (F, nb*Ho*ws) on a grid ws wide, junk columns dropped."""
    _, f, ho, wo = out.shape
    m = prod.shape[1] // (ho * ws)
    grid = xp.reshape(prod, (f, m, ho, ws))[..., :wo]
    out[n0 : n0 + m, ...] = xp.permute_dims(grid, (1, 0, 2, 3))


def forward(out: Any, low: FlatWindows, w2: Any, bias: Any, emit: Any = None) -> None:
    """out (N, F, Ho, Wo) = w2 (F, C*HH*WW) @ columns + bias (F, 1), one matmul per batch chunk.

    ``emit(n0, prod)``, when given, takes each chunk's product instead of it
    being written into ``out`` (a fused layer consumes it while it is in
    cache; ``out`` then only names the array's backend), and the product is
    positions-major, (nb*Ho*grid_w, F) = columns.T @ w2.T + bias.T: BLAS runs
    this orientation of the skinny product faster, and a window offset of
    the grid is then a view whose runs are F values long, not one.
    """
    xp, f = low.xp, w2.shape[0]

    def chunk(span: tuple[int, int]) -> None:
        cols = low.columns(*span)
        if emit is None:
            prod = low.work.scratch("prod", (f, cols.shape[1]))
            backends.matmul_into(w2, cols, prod)
            if bias is not None:
                prod += bias
            write_grid(out, span[0], prod, low.grid_w, xp)
        else:
            prod = low.work.scratch("prod-t", (cols.shape[1], f))
            backends.matmul_into(xp.matrix_transpose(cols), xp.matrix_transpose(w2), prod)
            if bias is not None:
                prod += xp.matrix_transpose(bias)
            emit(span[0], prod)

    backends.map_chunks(chunk, low.chunks, out)


def backward(
    dout: Any, low: FlatWindows, w: Any, need_dx: bool, grid: Any = None
) -> tuple[Any, Any, Any]:
    """dw.T = sum over chunks of cols @ dout2.T, dx = col2im(w2.T @ dout2), db.

    Each chunk's columns are rebuilt from x (cheaper than keeping a large
    matrix alive) and dout2 is the chunk of dout as (F, nb*Ho*grid_w), zero
    in the junk columns: the transpose of ``grid(n0, n1)``, positions-major
    (nb*Ho*grid_w, F), when given (a fused layer builds it from its own
    cache; ``dout`` is then unused), else from ``dout``.
    """
    xp, x, stride, (ph, pw) = low.xp, low.x, low.stride, low.pads
    _, _, h, wd = x.shape
    f, c, hh, ww = w.shape
    work = low.work
    w2 = xp.reshape(w, (f, c * hh * ww))
    if need_dx:
        covered = _covers_input(stride, ph, h, low.hs) and _covers_input(stride, pw, wd, low.ws)
        dx = (xp.empty if covered else xp.zeros)(tuple(x.shape), dtype=x.dtype, device=x.device)
    else:
        dx = None
    w2t = xp.matrix_transpose(w2)

    def chunk(span: tuple[int, int]) -> Any:
        n0, n1 = span
        cols = low.columns(n0, n1)
        if grid is None:
            d2 = on_grid(work, "dout", dout, n0, n1, low.grid_w, xp)
        else:
            d2 = xp.matrix_transpose(grid(n0, n1))
        # dw2.T (C*HH*WW, F) = cols @ d2.T, in the orientation the policy says.
        # It goes first, while the columns are in cache. d2's junk columns
        # are zero, so they add nothing to db.
        dw_cols = cols
        if low.grid_w > low.wo and not low.policy.probe_values:
            dw_cols = low.junk_free(cols)  # nothing is read back: the exact columns always
        grads = (
            product_over_positions(dw_cols, d2, low.policy, xp),
            sum_along(d2, 1, low.policy, xp),
        )
        if dw_cols is cols and low.grid_w > low.wo and not all_finite(grads[0], xp):
            grads = product_over_positions(low.junk_free(cols), d2, low.policy, xp), grads[1]
        if need_dx:
            low.dx_into(dx, n0, w2t, d2)
        return grads

    parts = backends.map_chunks(chunk, low.chunks, x)
    dw2t, db = sum_grads(parts, (low.rows, f), f, x, xp)
    return dx, xp.reshape(xp.matrix_transpose(dw2t), w.shape), db


def backward_transposed(
    dout: Any, fwd: FlatWindows, w: Any, pad: int, need_dx: bool, xp: ModuleType
) -> tuple[Any, Any, Any]:
    """dx, dw and db of a stride-1 convolution; dx and dw from the columns of dout.

    dx is the forward convolution of dout padded by (HH-1-pad, WW-1-pad) with
    the flipped kernel wt (C, F, HH, WW): dx = wt2 @ colsd, colsd the
    (F*HH*WW, nb*H*ws) columns of dout. The same columns give dw, as
    colsd[(f, HH-1-i, WW-1-j), (n, y, u)] = dout[n, f, y+pad-i, u+pad-j]:
    dw[f, c, i, j] = sum over n, y, u of x[n, c, y, u] times that, i.e.
    dwt (F*HH*WW, C) = colsd @ xg.T with xg x on the (H, ws) grid (zero in
    the junk columns). No columns of x are rebuilt in the backward, except
    for a chunk whose dw share is not finite (a NaN or an infinity in its x
    or dout): colsd's zero padding then meets x where the formula has no
    term (0 * inf is NaN), so that share comes from ``fwd``, the forward's
    flat windows of x, as in ``backward``.
    """
    x, policy = fwd.x, fwd.policy
    _, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    work = backends.workspace(xp, x, ("dout", tuple(x.shape[1:]), tuple(w.shape), 1, pad), policy)
    low = FlatWindows(dout, (hh, ww), 1, (hh - 1 - pad, ww - 1 - pad), (h, wd), work, policy, xp)
    wt2 = xp.reshape(xp.permute_dims(xp.flip(w, axis=(2, 3)), (1, 0, 2, 3)), (c, low.rows))
    dx = xp.empty(tuple(x.shape), dtype=x.dtype, device=x.device) if need_dx else None

    def chunk(span: tuple[int, int]) -> Any:
        n0, n1 = span
        cols = low.columns(n0, n1)
        if policy.probe_values:
            xg = on_grid(work, "xgrid", x, n0, n1, low.grid_w, xp)
            dw_share = product_over_positions(cols, xg, policy, xp)
            if not all_finite(dw_share, xp):
                dw_share = _flipped_share(fwd, dout, n0, n1, w.shape, xp)
        else:  # nothing is read back: the share from x's columns always
            dw_share = _flipped_share(fwd, dout, n0, n1, w.shape, xp)
        grads = dw_share, xp.sum(dout[n0:n1, ...], axis=(0, 2, 3))
        if need_dx:
            prod = work.scratch("prod", (c, cols.shape[1]))
            write_grid(dx, n0, backends.matmul_into(wt2, cols, prod), low.grid_w, xp)
        return grads

    parts = backends.map_chunks(chunk, low.chunks, x)
    dwt, db = sum_grads(parts, (low.rows, c), f, x, xp)
    dw = xp.permute_dims(xp.flip(xp.reshape(dwt, (f, hh, ww, c)), axis=(1, 2)), (0, 3, 1, 2))
    return dx, xp.reshape(xp.reshape(dw, (-1,)), tuple(w.shape)), db  # dw: a C-ordered copy


def _flipped_share(
    fwd: FlatWindows, dout: Any, n0: int, n1: int, w_shape: tuple, xp: ModuleType
) -> Any:
    """The dw share of x[n0:n1] from x's columns, cols @ dout2.T (C*HH*WW, F), laid out
    as ``backward_transposed`` sums them: (F*HH*WW, C), kernel flipped."""
    f, c, hh, ww = w_shape
    d2 = on_grid(fwd.work, "dout", dout, n0, n1, fwd.grid_w, xp)
    share = xp.reshape(
        product_over_positions(fwd.columns(n0, n1), d2, fwd.policy, xp), (c, hh, ww, f)
    )
    flipped = xp.flip(xp.permute_dims(share, (3, 1, 2, 0)), axis=(1, 2))
    return xp.reshape(flipped, (f * hh * ww, c))
