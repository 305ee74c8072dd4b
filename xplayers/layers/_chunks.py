"""Batch chunks for layers that work through a batch piece by piece.

On a CPU a chunk's passes stay in a core's cache and ``backends.map_chunks``
runs the chunks on all cores; on a GPU one chunk means fewer launches.
"""

from __future__ import annotations

from typing import Any

import backends


def split_batch(x: Any, most: int) -> list[tuple[int, int]]:
    """[n0, n1) ranges covering x's batch in near-equal chunks of at most ``most`` images.

    On a CPU the number of chunks is a multiple of the cores
    ``backends.map_chunks`` keeps busy, so no core idles at the end; on a
    GPU there is one chunk.
    """
    n = x.shape[0]
    if n == 0:
        return []
    if not backends.on_cpu(x):
        return [(0, n)]
    workers = backends.chunk_workers(x)
    count = -(-n // max(1, most))
    count = min(n, -(-count // workers) * workers)
    size = -(-n // count)
    return [(n0, min(n, n0 + size)) for n0 in range(0, n, size)]
