"""Convenience layers that chain common pairs, forward and backward side by side."""

from __future__ import annotations

from typing import Any

from .affine import affine_backward, affine_forward
from .relu import relu_backward, relu_forward


def affine_relu_forward(x: Any, w: Any, b: Any) -> tuple[Any, tuple]:
    """out = relu(x @ w + b); x: (N, D...), w: (D, M), b: (M,)."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout: (N, M) -> dx, dw, db."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)
