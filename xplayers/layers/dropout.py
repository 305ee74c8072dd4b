"""Inverted dropout: keep each unit with probability p and scale kept ones by 1/p.

The mask comes from the input's own backend (on its device); a seed in
dropout_param gives the same mask at every call, so a seeded model can be
gradient-checked. In test mode the layer is the identity.
"""

from __future__ import annotations

import numbers
from typing import Any

from .. import backends
from .._checks import check_dout, check_floating, check_mode, namespace


def dropout_forward(x: Any, dropout_param: dict) -> tuple[Any, tuple]:
    """x: any shape -> out = x * mask, mask = (u < p) / p with u ~ U[0, 1).

    The cache is (dropout_param, mask or None in test mode, an array with x's
    shape, dtype, backend and device: the mask, or x itself in test mode).
    """
    xp = namespace(x=x)
    mode = check_mode("dropout_param", dropout_param)
    check_floating("x", x, xp)
    p = dropout_param.get("p", 0.5)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"dropout_param['p'] is the keep probability, in (0, 1]; got {p!r}")
    if mode == "train":
        u = backends.uniform_like(x, seed=dropout_param.get("seed"))
        mask = xp.astype(u < p, x.dtype) / p
        return x * mask, (dropout_param, mask, mask)
    return x, (dropout_param, None, x)


def dropout_backward(dout: Any, cache: tuple) -> Any:
    """dx = dout * mask in train mode, dout in test mode."""
    _, mask, like = cache
    namespace(dout=dout, x=like)
    check_dout(dout, tuple(like.shape), like.dtype, "(the shape of x)")
    return dout if mask is None else dout * mask
