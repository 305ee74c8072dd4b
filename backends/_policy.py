"""How work on one kind of array is cut into chunks, run and buffered.

Layers ask ``backends.work_policy(x)`` instead of asking which library or
device x lives on; the adapter answers (``Backend.work_policy``). Host
memory wants cache-sized chunks, run on every core, with work arrays kept
between calls (fresh memory costs a page fault per 4 KiB); a GPU wants one
chunk (fewer launches) and the library's own memory pool.
"""

from __future__ import annotations

import dataclasses
import functools
from itertools import pairwise


@dataclasses.dataclass(frozen=True)
class WorkPolicy:
    """The answers for one kind of array (see ``Backend.work_policy``).

    - ``chunk_elements``: work-array elements per batch chunk (None: the
      whole batch is one chunk); convolutions hold at most ``chunk_images``
      images per chunk unless that leaves a chunk under ``min_chunk_elements``.
    - ``workers``: chunks ``map_chunks`` runs at once.
    - ``keep_workspace``: work arrays outlive the call that made them, per
      thread, within ``backends.workspace_limit()``.
    - ``block_elements``: elements per cache-sized block of an element-wise
      chain (the optimizers' updates); None: one pass over the whole array.
    """

    chunk_elements: int | None = None
    chunk_images: int = 16
    min_chunk_elements: int = 0
    workers: int = 1
    keep_workspace: bool = False
    block_elements: int | None = None

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


#: Host memory (tuned on 2-core AVX-512 machines: 8 MiB float32 chunks of
#: columns, at least 4 MiB for many small images; 128 KiB blocks keep the
#: handful of arrays of an optimizer update in a core's L2 cache).
HOST = WorkPolicy(
    chunk_elements=1 << 21,
    chunk_images=16,
    min_chunk_elements=1 << 20,
    keep_workspace=True,
    block_elements=1 << 15,
)
#: A GPU: one chunk, one pass, the library's memory pool.
DEVICE = WorkPolicy()
