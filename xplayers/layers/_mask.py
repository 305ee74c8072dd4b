"""The product of a 0/1 mask and values, as the layers' gradients route them.

mask_product(mask, v) = v where mask, else 0 * v: an infinite or NaN value
outside the mask gives NaN (0 * inf, 0 * NaN), the rule the pool and relu
gradients document. Arrays that can be written (NumPy, torch, ...) take the
product with the mask as 0/1 numbers, on NumPy much faster than ``where``
with a random mask. The others (JAX) take the ``where`` form: under
``jax.jit`` XLA rewrites a bool mask's product into a select, which drops
the NaN of 0 * inf; ``where(mask, v, 0 * v)`` keeps it, bit for bit the product.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import backends


def mask_product(mask: Any, values: Any, xp: ModuleType) -> Any:
    """values * mask for a bool ``mask`` broadcasting against ``values``, 0 * inf = NaN kept."""
    if backends.writes_in_place(values):
        return xp.astype(mask, values.dtype) * values
    return xp.where(mask, values, 0.0 * values)
