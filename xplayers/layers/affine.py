"""Fully connected (affine) layer: out = x.reshape(N, D) @ w + b.

An empty batch (N = 0) gives an empty (0, M) output, and zero dw and db.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backends
from .._checks import check_dout, check_floating, check_param, check_shape, describe, namespace


def affine_forward(x: Any, w: Any, b: Any) -> tuple[Any, tuple]:
    """x: (N, d_1, ..., d_k) flattened to (N, D); w: (D, M); b: (M,) -> out: (N, M)."""
    xp = namespace(x=x, w=w, b=b)
    if x.ndim == 0:
        raise ValueError(f"x must be (N, d_1, ..., d_k) samples, got a {describe(x)}")
    check_floating("x", x, xp)
    w, b = check_param("w", w, x, xp), check_param("b", b, x, xp)
    if w.ndim != 2:
        raise ValueError(f"w must be 2-d (D, M), got a {describe(w)}")
    x2 = _flat(x, xp)
    if x2.shape[1] != w.shape[0]:
        raise ValueError(
            f"x flattens to {tuple(x2.shape)} but w expects D={w.shape[0]} features: "
            f"x is a {describe(x)}, w is a {describe(w)}"
        )
    check_shape("b", b, (w.shape[1],), f"to match w's {w.shape[1]} outputs")
    out = backends.matmul(x2, w) + b
    return out, (x, w, b)


def _flat(x: Any, xp: Any) -> Any:
    """x (N, d_1, ..., d_k) as (N, D), D = d_1 * ... * d_k (also for N = 0, where
    a -1 in the shape would be ambiguous)."""
    return xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))


def affine_param_grads(dout: Any, cache: tuple) -> tuple[Any, Any]:
    """dw = x2.T @ dout, db = sum_n dout: affine_backward without dx.

    For a first layer, whose input (the data) needs no gradient: its dx is
    an (N, D) matmul as large as dw's, a large share of a CIFAR-sized FC step.
    """
    x, w, _ = cache
    xp = namespace(dout=dout, x=x)
    n = x.shape[0]
    check_dout(dout, (n, w.shape[1]), x.dtype, "(N, M) of the forward output")
    return backends.matmul(_flat(x, xp).T, dout), xp.sum(dout, axis=0)


def affine_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout: (N, M) -> dx (shape of x) = dout @ w.T, dw = x2.T @ dout, db = sum_n dout."""
    x, w, _ = cache
    dw, db = affine_param_grads(dout, cache)
    xp = namespace(dout=dout)
    dx = xp.reshape(backends.matmul(dout, w.T), x.shape)
    return dx, dw, db
