"""How work on one kind of array is cut into chunks, run, buffered and lowered.

Layers ask ``backends.work_policy(x)`` instead of asking which library or
device x lives on; the adapter answers (``Backend.work_policy``, stated by
every adapter in its ``*_backend.py``). Host memory wants cache-sized
chunks, run on every core, with work arrays kept between calls (fresh memory
costs a page fault per 4 KiB); a GPU wants one chunk (fewer launches) and
the library's own memory pool. The policy also carries the tuning that
picks between equivalent formulations of the same math (which column layout
a convolution is lowered to, how a sum over a long axis runs, which
orientation of a skinny product): the layers keep the math, the numbers
that choose are the adapter's.
"""

from __future__ import annotations

import dataclasses
import functools
from itertools import pairwise


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkPolicy:
    """The answers for one kind of array (see ``Backend.work_policy``). Every
    field is required: a policy states all of its answers, none is inherited.

    Chunks and threads:

    - ``chunk_elements``: work-array elements per batch chunk (None: the
      whole batch is one chunk); convolutions hold at most ``chunk_images``
      images per chunk unless that leaves a chunk under ``min_chunk_elements``.
    - ``channels_last_chunk_scale``: channels-last conv chunks hold this
      fraction of the two element counts above.
    - ``pool_chunk_elements``: input elements per batch chunk of the max
      pool (None: one chunk).
    - ``workers``: chunks ``map_chunks`` runs at once.
    - ``keep_workspace``: work arrays outlive the call that made them, per
      thread, within ``backends.workspace_limit()``.
    - ``block_elements``: elements per cache-sized block of an element-wise
      chain (the optimizers' updates); None: one pass over the whole array.

    Formulations (same math, different speed):

    - Conv lowering (``conv.LOWERING`` "auto"; ``conv_lowering`` states the
      rule, fitted to ``bench_conv.py --sweep --lowerings``): pointwise
      products for 1x1 kernels without padding whose output has at least
      ``pointwise_min_area`` pixels (None: never); for a conv fused with its
      pool, channels-last pairs (two outputs a row of columns) at stride 1
      with at most ``pairs_max_c`` channels (0: never) and an even Wo;
      channels-last columns with at least ``channels_last_min_c`` channels
      (None: never) and outputs at most ``channels_last_max_wo`` wide; kernel
      rows at stride 1 with more than ``pairs_max_c`` channels, at most
      ``rows_max_f`` filters (0: never) and junk rows at most
      ``rows_max_junk`` of the products; flat windows otherwise.
    - ``sum_by_product``: a sum over the long axis of a 2-d array (the conv
      chunks' bias gradients) is its product with a vector of ones, not the
      library's reduction.
    - ``dw_columns_left``: flat windows' weight gradient, a skinny product
      over the positions, is columns @ dout.T (True) or (dout @ columns.T).T.
    - ``probe_values``: a layer may read a value back to choose its path
      (whether a conv chunk holds a NaN or an infinity, so that only such a
      chunk takes its lowering's slower zero-free twin). On the host that is
      one reduction; on a GPU it would wait for the device inside a training
      step, so there (False) the zero-free twins run always.
    """

    chunk_elements: int | None
    chunk_images: int
    min_chunk_elements: int
    channels_last_chunk_scale: float
    pool_chunk_elements: int | None
    workers: int
    keep_workspace: bool
    block_elements: int | None
    channels_last_min_c: int | None
    channels_last_max_wo: int
    pairs_max_c: int
    pointwise_min_area: int | None
    rows_max_f: int
    rows_max_junk: float
    sum_by_product: bool
    dw_columns_left: bool
    probe_values: bool

    def conv_lowering(
        self,
        stride: int,
        pad: int,
        c: int,
        f: int,
        kernel: tuple[int, int],
        out_hw: tuple[int, int],
        fused: bool = False,
    ) -> str:
        """The lowering of a convolution with these (post-``_conv_bands``) numbers
        (``fused``: followed by a pool it may be fused with): "pointwise",
        "pairs", "channels_last", "rows" or "flat" (see the fields)."""
        hh, ww = kernel
        ho, wo = out_hw
        area = self.pointwise_min_area
        if hh == ww == 1 and pad == 0 and area is not None and ho * wo >= area:
            return "pointwise"
        if fused and self.pairs(stride, c, wo):
            return "pairs"
        min_c = self.channels_last_min_c
        if min_c is not None and c >= min_c and wo <= self.channels_last_max_wo:
            return "channels_last"
        rows = stride == 1 and c > self.pairs_max_c and f <= self.rows_max_f
        if rows and pad < min(hh, ww) and (hh, ww) != (1, 1):
            # Junk rows per image, HH-1-pad in the forward's grid and pad in dx's,
            # both H + pad rows an image (x is H = Ho + HH-1 - 2*pad high).
            junk = max(hh - 1 - pad, pad) / (ho + hh - 1 - pad)
            if junk <= self.rows_max_junk:
                return "rows"
        return "flat"

    def pairs(self, stride: int, c: int, wo: int) -> bool:
        """Whether channels-last columns may hold two outputs a row: stride 1, at most
        ``pairs_max_c`` channels and an even Wo (``conv_lowering`` picks them only
        for a conv fused with its pool)."""
        return stride == 1 and c <= self.pairs_max_c and wo % 2 == 0

    def split_batch(self, n: int, most: int) -> list[tuple[int, int]]:
        """[n0, n1) ranges covering a batch of ``n`` in chunks of at most ``most`` images.

        Chunked, the chunks are near-equal and as many as a multiple of the
        workers, so none idles at the end; with W > 1 workers and at least
        two chunks each, the first W - 1 chunks are cut to 1/W, 2/W, ... of a
        chunk (the rest shift, the last takes what is left). The workers,
        which take their first chunks at once, then run a fraction of a chunk
        apart: one core's copies overlap another's matrix products instead of
        competing with them for memory. Unchunked: one chunk.
        """
        if n == 0:
            return []
        if self.chunk_elements is None:
            return [(0, n)]
        workers = self.workers
        count = -(-n // max(1, most))
        count = min(n, -(-count // workers) * workers)
        size = -(-n // count)
        cuts = [0]
        if workers > 1 and count >= 2 * workers and size >= workers:
            for k in range(1, workers):
                cuts.append(cuts[-1] + size * k // workers)
        cuts += range(cuts[-1] + size, n, size)
        cuts.append(n)
        return list(pairwise(cuts))

    def with_workers(self, workers: int) -> WorkPolicy:
        """This policy with ``workers`` chunk workers (one instance per count:
        layers ask for the policy on every call)."""
        return self if workers == self.workers else _with_workers(self, workers)

    def block_rows(self, shape: tuple[int, ...]) -> int | None:
        """Rows of an array of ``shape`` per block of about ``block_elements`` values
        (None: no blocking, one pass)."""
        if self.block_elements is None or not shape:
            return None
        row = 1
        for d in shape[1:]:
            row *= d
        return max(1, self.block_elements // max(row, 1))


@functools.cache
def _with_workers(policy: WorkPolicy, workers: int) -> WorkPolicy:
    return dataclasses.replace(policy, workers=workers)


#: Host memory, measured with NumPy and OpenBLAS on 2-core AVX-512 machines
#: (docs/performance.md has what was measured):
#: - 8 MiB float32 chunks of flat-window columns, at least 4 MiB for many
#:   small images, half that for channels-last columns (their rows are
#:   shorter, smaller chunks stay in cache); pool chunks of 1 MiB float32,
#:   where the few masks and products a pass keeps alive stay in a core's L2;
#: - 128 KiB blocks keep the handful of arrays of an optimizer update in L2;
#: - the lowering thresholds are where channels-last columns beat flat
#:   windows: small outputs are where flat windows waste most (a junk column
#:   per (WW-1)//s of every Wo, planes padded by whole rows), few channels
#:   are where copying columns costs most for the products they feed;
#: - NumPy's reduction over the positions of a (positions, F) array runs one
#:   short inner loop per position, several times slower than the BLAS's
#:   matrix-vector product; OpenBLAS runs cols @ dout.T faster than the
#:   other orientation.
#: Adapters on host memory pick it (NumPy with its chunk workers).
HOST = WorkPolicy(
    chunk_elements=1 << 21,
    chunk_images=16,
    min_chunk_elements=1 << 20,
    channels_last_chunk_scale=0.5,
    pool_chunk_elements=1 << 18,
    workers=1,
    keep_workspace=True,
    block_elements=1 << 15,
    channels_last_min_c=16,
    channels_last_max_wo=12,
    pairs_max_c=4,
    pointwise_min_area=32,
    rows_max_f=128,
    rows_max_junk=0.25,
    sum_by_product=True,
    dw_columns_left=True,
    probe_values=True,
)
#: A GPU: one chunk, one pass, the library's memory pool. The formulation
#: answers are the host's, not measured on a GPU: each there is one kernel
#: either way, and no measurement yet says another rule wins. Nothing is read
#: back to choose a path: a training step never waits for the device.
DEVICE = WorkPolicy(
    chunk_elements=None,
    chunk_images=16,
    min_chunk_elements=0,
    channels_last_chunk_scale=1.0,
    pool_chunk_elements=None,
    workers=1,
    keep_workspace=False,
    block_elements=None,
    channels_last_min_c=16,
    channels_last_max_wo=12,
    pairs_max_c=4,
    pointwise_min_area=32,
    rows_max_f=0,
    rows_max_junk=0.0,
    sum_by_product=True,
    dw_columns_left=True,
    probe_values=False,
)
