"""Classification losses on scores x: (N, C) with integer labels y: (N,).

Both return (loss, dx): loss a 0-d array averaged over the batch, dx the
gradient of that loss with respect to x. Both check that y's labels lie in
[0, C), reading y back to do so unless given ``label_range``: the (min, max)
the caller knows them to lie within (a Solver knows its training labels').
"""

from __future__ import annotations

from typing import Any

from .. import backends
from .._checks import check_floating, check_labels, check_ndim, namespace


def _scores_and_labels(x: Any, y: Any, label_range: tuple[int, int] | None) -> tuple[Any, Any]:
    xp = namespace(x=x, y=y)
    check_ndim("x", x, 2, "scores (N, C)")
    check_floating("x", x, xp)
    y = check_labels("y", y, x.shape[0], x.shape[1], xp, label_range)
    return xp, xp.reshape(y, (-1, 1))


def softmax_loss(x: Any, y: Any, label_range: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """loss = -mean_n log softmax(x_n)[y_n]; dx = (softmax(x) - onehot(y)) / N.

    Shifting by the row maximum keeps exp finite for logits of any size.
    """
    xp, yc = _scores_and_labels(x, y, label_range)
    n = x.shape[0]
    shifted = x - xp.max(x, axis=1, keepdims=True)
    log_z = xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    log_probs = shifted - log_z
    loss = -xp.sum(xp.take_along_axis(log_probs, yc, axis=1)) / n
    classes = xp.arange(x.shape[1], device=backends.device_of(x))
    onehot = xp.astype(classes == yc, x.dtype)
    dx = (xp.exp(log_probs) - onehot) / n
    return loss, dx


def svm_loss(x: Any, y: Any, label_range: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """Multiclass hinge: loss = mean_n sum_{j != y_n} max(0, x_nj - x_ny + 1)."""
    xp, yc = _scores_and_labels(x, y, label_range)
    n = x.shape[0]
    correct = xp.take_along_axis(x, yc, axis=1)
    classes = xp.arange(x.shape[1], device=backends.device_of(x))
    is_label = classes == yc
    zero = xp.zeros((), dtype=x.dtype, device=backends.device_of(x))
    margins = xp.where(is_label, zero, xp.maximum(zero, x - correct + 1.0))
    loss = xp.sum(margins) / n
    positive = xp.astype(margins > 0, x.dtype)
    # The label column collects -1 for each violated margin in its row.
    dx = positive - xp.astype(is_label, x.dtype) * xp.sum(positive, axis=1, keepdims=True)
    return loss, dx / n
