"""A table of layers under test, so one generic test checks every layer the
same way: numerical gradients, parity with numpy, dtype preservation.

A case draws host inputs, runs forward on backend arrays and backward on the
cache; ``grads`` names the inputs that backward returns gradients for, in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from xplayers import layers as L


@dataclasses.dataclass(frozen=True)
class LayerCase:
    name: str
    inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    forward: Callable[[dict[str, Any]], tuple[Any, Any]]
    backward: Callable[[Any, Any], tuple[Any, ...]]
    grads: tuple[str, ...]
    tol: float = 1e-7  # float64 relative error allowed against numerical gradients

    def __repr__(self) -> str:
        return self.name


def _normal(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.standard_normal(shape)


def _inputs(**makers: Callable[[np.random.Generator], np.ndarray]) -> Callable:
    return lambda rng: {k: make(rng) for k, make in makers.items()}


def _as_tuple(fn: Callable) -> Callable:
    def wrapped(dout: Any, cache: Any) -> tuple:
        result = fn(dout, cache)
        return result if isinstance(result, tuple) else (result,)

    return wrapped


def _scaled(shift: float, scale: float, *shape: int) -> Callable:
    return lambda rng: shift + scale * rng.standard_normal(shape)


CASES = [
    LayerCase(
        "affine",
        _inputs(x=_normal(4, 2, 3), w=_normal(6, 5), b=_normal(5)),
        lambda a: L.affine_forward(a["x"], a["w"], a["b"]),
        L.affine_backward,
        ("x", "w", "b"),
    ),
    LayerCase(
        "relu",
        # Keep inputs away from the kink at 0 where the numerical gradient is wrong.
        _inputs(x=lambda rng: rng.choice([-1.0, 1.0], (5, 7)) * rng.uniform(0.1, 2.0, (5, 7))),
        lambda a: L.relu_forward(a["x"]),
        _as_tuple(L.relu_backward),
        ("x",),
    ),
    LayerCase(
        "affine_relu",
        _inputs(x=_normal(4, 6), w=_normal(6, 5), b=_normal(5)),
        lambda a: L.affine_relu_forward(a["x"], a["w"], a["b"]),
        L.affine_relu_backward,
        ("x", "w", "b"),
    ),
    LayerCase(
        "batchnorm",
        _inputs(x=_scaled(3.0, 2.0, 8, 5), gamma=_normal(5), beta=_normal(5)),
        lambda a: L.batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"}),
        L.batchnorm_backward,
        ("x", "gamma", "beta"),
        tol=1e-5,
    ),
    LayerCase(
        "batchnorm_alt",
        _inputs(x=_scaled(3.0, 2.0, 8, 5), gamma=_normal(5), beta=_normal(5)),
        lambda a: L.batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"}),
        L.batchnorm_backward_alt,
        ("x", "gamma", "beta"),
        tol=1e-5,
    ),
    LayerCase(
        "layernorm",
        _inputs(x=_scaled(-2.0, 3.0, 6, 7), gamma=_normal(7), beta=_normal(7)),
        lambda a: L.layernorm_forward(a["x"], a["gamma"], a["beta"], {}),
        L.layernorm_backward,
        ("x", "gamma", "beta"),
        tol=1e-5,
    ),
    LayerCase(
        "dropout",
        _inputs(x=_normal(10, 12)),
        lambda a: L.dropout_forward(a["x"], {"mode": "train", "p": 0.6, "seed": 123}),
        _as_tuple(L.dropout_backward),
        ("x",),
    ),
]

LOSSES = [L.softmax_loss, L.svm_loss]
