"""Counting the rows a model classifies right, with one read-back of the count."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backends
from ._batches import Split


def count_correct(
    model: Any,
    split: Split,
    rows: tuple[int, int],
    batch_size: int,
    place: tuple[str, np.dtype, Any],
) -> int:
    """How many of ``split``'s rows ``[lo, hi)`` have their highest score at their label.

    Scores are ``model.loss(X)`` (test mode) on batches of ``batch_size`` rows moved
    to ``place`` = (backend, dtype, device); the count stays there until the one
    read-back at the end.
    """
    correct = None
    lo, hi = rows
    for start in range(lo, hi, batch_size):
        X_batch, y_batch = split.rows(start, min(start + batch_size, hi), *place)
        with backends.on_device_of(X_batch):  # CuPy launches on its current device
            scores = model.loss(X_batch)
            xp = backends.get_namespace(scores=scores, y=y_batch)
            # The default integer dtype: int64 is not on every device (JAX without x64).
            hits = xp.count_nonzero(xp.argmax(scores, axis=1) == y_batch)
        correct = hits if correct is None else correct + hits
    return 0 if correct is None else int(correct)
