"""The kernel-row lowering of a stride-1 convolution ("rows").

Strips of x: S[(c, j), g, u] = xs[c, g, u + j], shape (C*WW, rows*Wo), xs
the chunk's images stacked row after row, each H + pad rows high (an
image's bottom padding is the next one's top padding), and u over the Wo
outputs: WW shifted copies of x, where flat windows copy it HH*WW times.
The kernel rows are applied by the product instead, and added up after it:

    Z = Wr @ S, Wr[(i, f), (c, j)] = w[f, c, i, j]      (HH*F, rows*Wo)
    out[n, f, y, u] = sum_i Z[(i, f), n*(H + pad) + y + i, u]   HH shifted adds

Grid rows y >= Ho of each image are junk (their windows reach into the next
image): HH-1-pad of every H + pad rows of the product, paid for copying and
adding back HH times less than flat windows do, and for a product of HH*F
rows instead of F (OpenBLAS runs the skinny products of few filters far
below its peak). It pays for few channels and filters and large kernels;
``conv`` picks it by the policy.

The backward takes dx and dw from the strips of dout, D (F*WW, rows*W),
dout padded by (HH-1-pad, WW-1-pad) and stacked the same way (Ho + HH-1-pad
rows an image, of which pad are junk). dx is the forward above applied to
dout with the flipped kernel (C, F, HH, WW). dw needs no strips of x, only
x's rows shifted onto D's grid, R[(c, i), g] = x[n, c, g + i - n*(Ho +
HH-1-pad) - (HH-1)] (zero outside x):

    dw[f, c, i, WW-1-j] = sum_g D[(f, j), g] * R[(c, i), g]   (F*WW, C*HH) = D @ R.T

D's padding and R's zero rows meet values of the other (0 * inf is NaN):
a chunk whose dw share is not finite takes it from flat windows instead.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends
from ..backends import Workspace
from . import _conv_flat
from ._chunks import all_finite, conv_chunks, product_over_positions, sum_grads


class Strips:
    """Strips of a (N, K, H, W) padded by (ph, pw), for a kernel (HH, WW) at stride 1,
    and the shifted sums of a product with them (``name`` prefixes the work arrays).

    The images of a chunk are stacked, each H + ph rows high: an image's
    bottom padding is the next one's top padding. Grid row g = n*(H + ph) + y
    is output row y of image n for y < Ho; the other HH-1-ph rows of each
    image are junk. The strips run over the chunk's rows plus HH-1 more,
    which the shifted sums read: (K*WW, (nb*(H + ph) + HH-1) * Wo).
    """

    def __init__(
        self,
        a: Any,
        kernel: tuple[int, int],
        pads: tuple[int, int],
        work: Workspace,
        name: str,
        xp: ModuleType,
    ) -> None:
        self.a, self.work, self.name, self.xp = a, work, name, xp
        _, self.k, self.h, self.w = a.shape
        self.hh, self.ww = kernel
        self.ph, self.pw = pads
        self.step = self.h + self.ph  # grid rows per image
        self.wp = self.w + 2 * self.pw
        self.ho, self.wo = self.h + 2 * self.ph - self.hh + 1, self.wp - self.ww + 1
        self.rows = self.k * self.ww

    def grid_rows(self, m: int) -> int:
        """Rows of the strips of m images: theirs and the HH-1 the shifts reach."""
        return m * self.step + self.hh - 1

    def strips(self, n0: int, n1: int) -> Any:
        """(K*WW, grid_rows(nb) * Wo) strips of a[n0:n1]; the padding stays zero
        from the first chunk on (spare images after the chunk hold the last one's
        bottom padding and the rows the shifts reach)."""
        xp, m, ph, pw = self.xp, n1 - n0, self.ph, self.pw
        spare = -(-(self.hh - 1) // self.step)
        planes = self.work.scratch(self.name + "-planes", (self.k, m + spare, self.step, self.wp))
        planes[:, :m, ph:, pw : pw + self.w] = xp.permute_dims(self.a[n0:n1, ...], (1, 0, 2, 3))
        rows = self.grid_rows(m)
        shape = (self.k, self.ww, rows, self.wo)
        strips = self.work.scratch(self.name + "-strips", shape)
        total = (m + spare) * self.step * self.wp
        view = backends.strided_view(planes, shape, (total, 1, self.wp, 1))
        if view is not None:
            strips[...] = view
        else:
            flat = xp.reshape(planes, (self.k, (m + spare) * self.step, self.wp))
            for j in range(self.ww):
                strips[:, j, ...] = flat[:, :rows, j : j + self.wo]
        return xp.reshape(strips, (self.rows, rows * self.wo))

    def shifted_sum(self, z: Any, m: int) -> Any:
        """sum_i z[(i, r), g + i] over the grid rows g of outputs: (R, nb, Ho, Wo)
        from z (HH*R, grid_rows(nb) * Wo)."""
        xp, r, step = self.xp, z.shape[0] // self.hh, self.step
        zz = xp.reshape(z, (self.hh, r, self.grid_rows(m), self.wo))
        acc = self.work.scratch(self.name + "-sum", (r, m, self.ho, self.wo))
        for i in range(self.hh):
            rows = xp.reshape(zz[i, :, i : i + m * step, :], (r, m, step, self.wo))
            if i:
                acc += rows[:, :, : self.ho, :]
            else:
                acc[...] = rows[:, :, : self.ho, :]
        return acc


class RowWindows:
    """The kernel-row lowering of one stride-1 convolution of x by an (HH, WW)
    kernel with padding ``pad`` (see the module's text), chunk by chunk."""

    def __init__(
        self,
        x: Any,
        kernel: tuple[int, int],
        pad: int,
        f: int,
        work: Workspace,
        policy: backends.WorkPolicy,
        xp: ModuleType,
    ) -> None:
        self.x, self.pad, self.work, self.policy, self.xp = x, pad, work, policy, xp
        self.hh, self.ww = kernel
        self.fwd = Strips(x, kernel, (pad, pad), work, "x", xp)
        self.ho, self.wo = self.fwd.ho, self.fwd.wo
        _, c, _, w = x.shape
        self.step = self.ho + self.hh - 1 - pad  # grid rows per image of dout's strips
        forward_elements = (c * self.ww + self.hh * f) * self.fwd.step * self.wo
        backward_elements = (f * self.ww + 2 * self.hh * c) * self.step * w
        self.chunks = conv_chunks(policy, x.shape[0], 1, max(forward_elements, backward_elements))

    def shifted_rows(self, n0: int, n1: int) -> Any:
        """R (C*HH, nb*step*W): x[n0:n1]'s rows on the grid of dout's strips, shifted
        by 0 ... HH-1: R[(c, i), g] = x[n, c, g + i - n*step - (HH-1)], zero outside.

        Image n's rows sit in slot n + 1 of a (C, nb + 2, step, W) grid, from its
        row ``pad``: the grid row HH-1-pad above where dout's image n starts is
        then Ho rows into the grid, which is where R reads from.
        """
        xp, m, step = self.xp, n1 - n0, self.step
        _, c, h, w = self.x.shape
        grid = self.work.scratch("x-grid", (c, m + 2, step, w))
        grid[:, 1 : m + 1, self.pad : self.pad + h, :] = xp.permute_dims(
            self.x[n0:n1, ...], (1, 0, 2, 3)
        )
        length, total = m * step * w, (m + 2) * step * w
        rows = self.work.scratch("x-rows", (c, self.hh, length))
        flat = xp.reshape(grid, (c, total))[:, self.ho * w :]
        view = backends.strided_view(flat, tuple(rows.shape), (total, w, 1))
        if view is not None:
            rows[...] = view
        else:
            for i in range(self.hh):
                rows[:, i, :] = flat[:, i * w : i * w + length]
        return xp.reshape(rows, (c * self.hh, length))

    def exact_share(self, dout: Any, n0: int, n1: int, w_shape: tuple) -> Any:
        """The dw share of x[n0:n1] from flat windows (no zeros the formula lacks),
        laid out as ``backward`` sums them: (F*WW, C*HH), j flipped."""
        xp = self.xp
        f, c, hh, ww = w_shape
        flat = _conv_flat.FlatWindows(
            self.x,
            (hh, ww),
            1,
            (self.pad, self.pad),
            (self.ho, self.wo),
            self.work,
            self.policy,
            xp,
        )
        d2 = _conv_flat.on_grid(self.work, "dout", dout, n0, n1, flat.grid_w, xp)
        share = product_over_positions(flat.columns(n0, n1), d2, self.policy, xp)
        share = xp.flip(xp.reshape(share, (c, hh, ww, f)), axis=2)
        return xp.reshape(xp.permute_dims(share, (3, 2, 0, 1)), (f * ww, c * hh))


def forward(out: Any, low: RowWindows, w: Any, b: Any) -> None:
    """out (N, F, Ho, Wo) = shifted sums of Wr @ strips + b, one product per batch chunk."""
    xp, strips = low.xp, low.fwd
    f, c, hh, ww = w.shape
    wr = xp.reshape(xp.permute_dims(w, (2, 0, 1, 3)), (hh * f, c * ww))
    bias = xp.reshape(b, (f, 1, 1, 1))

    def chunk(span: tuple[int, int]) -> None:
        n0, n1 = span
        s = strips.strips(n0, n1)
        z = backends.matmul_into(wr, s, low.work.scratch("prod", (hh * f, s.shape[1])))
        acc = strips.shifted_sum(z, n1 - n0)
        acc += bias
        out[n0:n1, ...] = xp.permute_dims(acc, (1, 0, 2, 3))

    backends.map_chunks(chunk, low.chunks, out)


def backward(dout: Any, low: RowWindows, w: Any, need_dx: bool) -> tuple[Any, Any, Any]:
    """dx (None unless need_dx), dw, db from the strips of dout, chunk by chunk
    (see the module's text)."""
    xp, x, work = low.xp, low.x, low.work
    f, c, hh, ww = w.shape
    d = Strips(dout, (hh, ww), (hh - 1 - low.pad, ww - 1 - low.pad), work, "dout", xp)
    # The flipped kernel (C, F, HH, WW) as rows (i, c), columns (f, j).
    wt = xp.reshape(xp.permute_dims(xp.flip(w, axis=(2, 3)), (2, 1, 0, 3)), (hh * c, f * ww))
    dx = xp.empty(tuple(x.shape), dtype=x.dtype, device=x.device) if need_dx else None

    def chunk(span: tuple[int, int]) -> Any:
        n0, n1 = span
        ds = d.strips(n0, n1)
        # dout's rows lie in the chunk's own grid rows; the HH-1 after them are zero.
        share = ds[:, : (n1 - n0) * low.step * x.shape[3]] @ xp.matrix_transpose(
            low.shifted_rows(n0, n1)
        )
        if not low.policy.probe_values or not all_finite(share, xp):
            share = low.exact_share(dout, n0, n1, tuple(w.shape))
        grads = share, xp.sum(dout[n0:n1, ...], axis=(0, 2, 3))
        if need_dx:
            z = backends.matmul_into(wt, ds, work.scratch("dprod", (hh * c, ds.shape[1])))
            dx[n0:n1, ...] = xp.permute_dims(d.shifted_sum(z, n1 - n0), (1, 0, 2, 3))
        return grads

    parts = backends.map_chunks(chunk, low.chunks, x)
    dwr, db = sum_grads(parts, (f * ww, c * hh), f, x, xp)
    dw = xp.permute_dims(xp.flip(xp.reshape(dwr, (f, ww, c, hh)), axis=1), (0, 2, 3, 1))
    return dx, xp.reshape(xp.reshape(dw, (-1,)), tuple(w.shape)), db  # dw: a C-ordered copy
