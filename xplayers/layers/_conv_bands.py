"""Convolutions whose stride passes the input, made compact for the fast layer.

With s > K = max(HH, WW) (possible with ``truncate``), output row i reads
only the K padded rows s*i ... s*i + K - 1 and skips the s - K after them;
the columns likewise. ``Bands`` gathers the rows and columns the windows
read into x' (N, C, Ho*K, Wo*K), band i of x' holding those of output i:

    x'[n, c, K*i + q, K*j + r] = xpad[n, c, s*i + q, s*j + r]

so the convolution is the one of x' with stride K and no padding, and its
dx' scatters back the same way (the skipped pixels get zero). The fast
layer does this where the stride also exceeds the padded input's shorter
side (``compacts``): the flat windows' s*s stride-phase planes of about
(Ho+1)*Wo pixels each, and the channels-last rows s*t wide, would then grow
with the stride, not with the input or the output (a stride of 10**9 on an
8x8 image). Below that both stay within a few times the padded input, and
the layouts keep the strides they were tuned for.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends


def compacts(stride: int, kernel: tuple[int, int], padded_hw: tuple[int, int]) -> bool:
    """True when the fast layer makes the convolution compact (see the module's text):
    the stride exceeds the kernel and the padded input's shorter side."""
    return stride > max(kernel) and stride > min(padded_hw)


class Bands:
    """The rows and columns of x (N, C, H, W) that strided windows read, and back.

    ``stride`` and ``pad`` are the convolution's; ``kernel`` is (HH, WW) and
    ``out_hw`` its (Ho, Wo). The compact convolution has stride ``band`` = K.
    """

    def __init__(
        self,
        x: Any,
        kernel: tuple[int, int],
        stride: int,
        pad: int,
        out_hw: tuple[int, int],
        xp: ModuleType,
    ) -> None:
        self.xp, self.shape = xp, tuple(x.shape)
        self.band = k = max(kernel)
        self.compact_hw = (out_hw[0] * k, out_hw[1] * k)
        axes = list(zip(out_hw, self.shape[2:], strict=True))
        # (index, valid) per axis: row K*i + q of x' is padded row s*i + q, input
        # row s*i + q - pad; and back from the input's rows to x''s.
        dev = backends.device_of(x)
        self.gathers = [self._source(n * k, k, stride, pad, size, dev) for n, size in axes]
        self.scatters = [self._back(size, k, stride, pad, n, dev) for n, size in axes]

    def _source(self, count: int, k: int, stride: int, pad: int, size: int, dev: Any) -> tuple:
        """(input index per compact index, clipped into range; whether it is in range)."""
        xp = self.xp
        at = xp.arange(count, device=dev)
        src = (at // k) * stride + at % k - pad
        inside = xp.logical_and(src >= 0, src < size)
        return xp.where(inside, src, 0), inside

    def _back(self, size: int, k: int, stride: int, pad: int, count: int, dev: Any) -> tuple:
        """(compact index per input index, clipped; whether x' holds the input index).

        Input row r lies in band (r + pad) // s at offset (r + pad) % s: x' holds
        it where the offset is under K and the band is one of the ``count`` outputs'.
        """
        xp = self.xp
        shifted = xp.arange(size, device=dev) + pad
        band, offset = shifted // stride, shifted % stride
        held = xp.logical_and(offset < k, band < count)
        return xp.where(held, band * k + offset, 0), held

    def gather(self, x: Any) -> Any:
        """x' (N, C, Ho*K, Wo*K): the rows and columns of the padded x the windows read."""
        return self._move(x, self.gathers, *self.compact_hw)

    def scatter(self, dxc: Any) -> Any:
        """dx (N, C, H, W) from dx' (N, C, Ho*K, Wo*K); zero where no window reads."""
        return self._move(dxc, self.scatters, *self.shape[2:])

    def _move(self, a: Any, index: list, h: int, w: int) -> Any:
        """a's rows, then columns, taken at ``index`` ((where, valid) per axis), zero where
        not valid; (N, C, h, w). A selection, not a product: non-finite values stay put."""
        xp = self.xp
        if 0 in a.shape[2:]:  # nothing to take from (an empty padded axis)
            return xp.zeros((*a.shape[:2], h, w), dtype=a.dtype, device=backends.device_of(a))
        zero = xp.zeros((), dtype=a.dtype, device=backends.device_of(a))
        (rows, row_ok), (cols, col_ok) = index
        a = xp.where(row_ok[:, None], xp.take(a, rows, axis=2), zero)
        return xp.where(col_ok, xp.take(a, cols, axis=3), zero)
