"""Rectified linear unit: out = max(x, 0)."""

from __future__ import annotations

from typing import Any

from .. import backends
from .._checks import check_dout, check_floating, namespace
from ._mask import mask_product


def relu_forward(x: Any) -> tuple[Any, Any]:
    """x: any shape -> out = max(x, 0), same shape."""
    xp = namespace(x=x)
    check_floating("x", x, xp)
    return xp.maximum(x, xp.zeros((), dtype=x.dtype, device=backends.device_of(x))), x


def relu_backward(dout: Any, cache: Any) -> Any:
    """dx = dout where x > 0, else 0 (the subgradient at 0 is 0, as in CS231n)."""
    x = cache
    xp = namespace(dout=dout, x=x)
    check_dout(dout, tuple(x.shape), x.dtype, "(the shape of x)")
    # A 0/1 mask times dout (0 * inf = NaN, under jax.jit too): one fast pass
    # on NumPy, whose where() with a 0-d zero falls off its fast loop.
    return mask_product(x > 0, dout, xp)
