"""Fused element-wise optimizer updates for CuPy: one kernel per parameter.

The generic rules in ``xplayers.optim`` are chains of standard operations,
each a kernel launch and a pass over memory on a GPU (Adam: about a dozen).
These kernels do the same arithmetic in one pass, updating the state in
place and writing next_w; the formulas mirror the generic ones term for term
so results agree to rounding. Compiled on first use, once per dtype.
"""

from __future__ import annotations

import functools
from typing import Any

# rule -> (scalar names in call order, state names, kernel body)
_RULES = {
    "sgd_momentum": (
        ("mu", "lr"),
        ("v",),
        "v = mu * v - lr * dw; next_w = w + v;",
    ),
    "rmsprop": (
        ("decay", "lr", "eps"),
        ("cache",),
        "cache += (1 - decay) * (dw * dw - cache); next_w = w - lr * (dw / (sqrt(cache) + eps));",
    ),
    "adam": (
        ("b1", "b2", "eps", "step"),
        ("m", "v"),
        "m += (1 - b1) * (dw - m); v += (1 - b2) * (dw * dw - v);"
        " next_w = w - step * (m / (sqrt(v) + eps));",
    ),
}


@functools.cache
def _kernel(rule: str) -> Any:
    import cupy

    scalars, state, body = _RULES[rule]
    inputs = ", ".join(["T w", "T dw", *(f"T {s}" for s in scalars)])
    outputs = ", ".join([*(f"T {s}" for s in state), "T next_w"])
    return cupy.ElementwiseKernel(inputs, outputs, body, f"xplayers_{rule}")


def fused_update(rule: str, w: Any, dw: Any, state: tuple, scalars: dict[str, float]) -> Any:
    """next_w for ``rule``, the state arrays updated in place; None for an unknown rule."""
    if rule not in _RULES:
        return None
    import cupy

    names, _, _ = _RULES[rule]
    with w.device:
        next_w = cupy.empty_like(w)
        _kernel(rule)(w, dw, *(scalars[n] for n in names), *state, next_w)
    return next_w
