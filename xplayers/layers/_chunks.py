"""Batch chunks for the layers that work through a batch piece by piece, the
in-order sums of what the chunks return, and the chunks' reductions over
their positions.

How big a chunk is, how many run at once and how a reduction runs is the
backend's answer (``backends.work_policy``); here it is turned into image
counts and products.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends


def conv_chunks(
    policy: backends.WorkPolicy, n: int, rows: int, cols_per_image: int, scale: float = 1.0
) -> list[tuple[int, int]]:
    """[n0, n1) chunks of a batch of ``n`` whose column matrices are (rows, cols_per_image)
    per image: at most ``scale * policy.chunk_elements`` elements (``policy.chunk_images``
    images, or more when they are small, up to ``scale * policy.min_chunk_elements``)."""
    if policy.chunk_elements is None:
        return policy.split_batch(n, n)
    per_image = max(1, rows * cols_per_image)
    cap = max(policy.chunk_images, int(scale * policy.min_chunk_elements) // per_image)
    return policy.split_batch(n, min(cap, int(scale * policy.chunk_elements) // per_image))


def all_finite(a: Any, xp: ModuleType) -> bool:
    """True when ``a`` holds no NaN and no infinity (one reduction, one read-back).

    The fast convolutions multiply some values by zeros the formula does not
    have (the junk and padding of their layouts), and 0 * inf and 0 * NaN
    are NaN: a chunk where this says False takes a path without such zeros.
    Called on small arrays (a chunk's weight-gradient share, whose sum any
    non-finite term makes non-finite) or on the chunk's input.
    """
    return bool(xp.all(xp.isfinite(a)))


def sum_in_order(parts: list, shape: tuple[int, ...], like: Any, xp: ModuleType) -> Any:
    """parts[0] + parts[1] + ..., always in this order (same bits on every run);
    zeros of ``shape`` when there are no parts (an empty batch)."""
    if not parts:
        return xp.zeros(shape, dtype=like.dtype, device=backends.device_of(like))
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


def sum_along(a: Any, axis: int, policy: backends.WorkPolicy, xp: ModuleType) -> Any:
    """2-d ``a`` summed along ``axis`` (0 or 1): sum_i a[i, :] or sum_j a[:, j].

    The bias gradients of the conv chunks sum (positions, F) arrays, or their
    transposes, over the positions. Where ``policy.sum_by_product`` says so
    (NumPy's reduction runs one short inner loop per position there, several
    times slower than the BLAS's matrix-vector product) it is the product
    with a vector of ones, else the library's reduction.
    """
    if not policy.sum_by_product:
        return xp.sum(a, axis=axis)
    ones = xp.ones((a.shape[axis],), dtype=a.dtype, device=backends.device_of(a))
    return a @ ones if axis == 1 else ones @ a


def product_over_positions(a: Any, b: Any, policy: backends.WorkPolicy, xp: ModuleType) -> Any:
    """a (A, P) @ b.T (P, B) -> (A, B), P the long positions axis (a weight gradient).

    ``policy.dw_columns_left``: as written, else as (b @ a.T).T; the BLAS may
    run one orientation of this skinny product faster than the other.
    """
    if policy.dw_columns_left:
        return a @ xp.matrix_transpose(b)
    return xp.matrix_transpose(b @ xp.matrix_transpose(a))


def sum_grads(
    parts: list, dw_shape: tuple[int, int], f: int, like: Any, xp: ModuleType
) -> tuple[Any, Any]:
    """The chunks' (dw share of ``dw_shape``, db share (F,)) pairs summed in chunk order.

    db from the chunks' dout, already in cache, rather than one more pass over
    all of dout after them, which no other core would share.
    """
    dw = sum_in_order([p[0] for p in parts], dw_shape, like, xp)
    return dw, sum_in_order([p[1] for p in parts], (f,), like, xp)
