"""One forward and backward pass of each layer family, on inputs drawn on the host.

Each family is a function of a dict of backend arrays (the inputs below, plus
``dout`` shaped like the forward output) returning the arrays to compare: the
forward output and every gradient. Dropout is absent on purpose: its mask
comes from each device's own generator, so backends cannot agree on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import layers as L

_CONV = {"stride": 1, "pad": 1}
_POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _affine(a: dict) -> tuple:
    out, cache = L.affine_forward(a["x"], a["w"], a["b"])
    return (out, *L.affine_backward(a["dout"], cache))


def _relu(a: dict) -> tuple:
    out, cache = L.relu_forward(a["x"])
    return out, L.relu_backward(a["dout"], cache)


def _batchnorm(a: dict) -> tuple:
    out, cache = L.batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"})
    return (out, *L.batchnorm_backward(a["dout"], cache))


def _layernorm(a: dict) -> tuple:
    out, cache = L.layernorm_forward(a["x"], a["gamma"], a["beta"], {})
    return (out, *L.layernorm_backward(a["dout"], cache))


def _conv(a: dict) -> tuple:
    out, cache = L.conv_forward_fast(a["x"], a["w"], a["b"], _CONV)
    return (out, *L.conv_backward_fast(a["dout"], cache))


def _max_pool(a: dict) -> tuple:
    out, cache = L.max_pool_forward_fast(a["x"], _POOL)
    return out, L.max_pool_backward_fast(a["dout"], cache)


def _spatial_batchnorm(a: dict) -> tuple:
    bn = {"mode": "train"}
    out, cache = L.spatial_batchnorm_forward(a["x"], a["gamma"], a["beta"], bn)
    return (out, *L.spatial_batchnorm_backward(a["dout"], cache))


def _spatial_groupnorm(a: dict) -> tuple:
    out, cache = L.spatial_groupnorm_forward(a["x"], a["gamma"], a["beta"], 2, {})
    return (out, *L.spatial_groupnorm_backward(a["dout"], cache))


def _softmax(a: dict) -> tuple:
    return L.softmax_loss(a["x"], a["y"])


def _svm(a: dict) -> tuple:
    return L.svm_loss(a["x"], a["y"])


#: name -> (input shapes, dout shape or None for losses, the pass).
FAMILIES: dict[str, tuple[dict[str, tuple[int, ...]], tuple[int, ...] | None, Callable]] = {
    "affine": ({"x": (16, 20), "w": (20, 10), "b": (10,)}, (16, 10), _affine),
    "relu": ({"x": (16, 20)}, (16, 20), _relu),
    "batchnorm": ({"x": (16, 10), "gamma": (10,), "beta": (10,)}, (16, 10), _batchnorm),
    "layernorm": ({"x": (16, 10), "gamma": (10,), "beta": (10,)}, (16, 10), _layernorm),
    "conv": ({"x": (4, 3, 10, 10), "w": (6, 3, 3, 3), "b": (6,)}, (4, 6, 10, 10), _conv),
    "max_pool": ({"x": (4, 3, 8, 8)}, (4, 3, 4, 4), _max_pool),
    "spatial_batchnorm": (
        {"x": (4, 3, 6, 6), "gamma": (3,), "beta": (3,)},
        (4, 3, 6, 6),
        _spatial_batchnorm,
    ),
    "spatial_groupnorm": (
        {"x": (4, 6, 5, 5), "gamma": (1, 6, 1, 1), "beta": (1, 6, 1, 1)},
        (4, 6, 5, 5),
        _spatial_groupnorm,
    ),
    "softmax_loss": ({"x": (16, 10)}, None, _softmax),
    "svm_loss": ({"x": (16, 10)}, None, _svm),
}


def family_inputs(name: str, seed: int) -> dict[str, np.ndarray]:
    """The host inputs of family ``name`` (float64; labels ``y`` for the losses)."""
    shapes, dout, _ = FAMILIES[name]
    rng = np.random.default_rng([seed, *name.encode()])
    inputs = {k: rng.standard_normal(shape) for k, shape in shapes.items()}
    if dout is None:
        inputs["y"] = rng.integers(0, shapes["x"][1], shapes["x"][0])
    else:
        inputs["dout"] = rng.standard_normal(dout)
    return inputs


def run_family(name: str, arrays: dict[str, Any]) -> tuple:
    """Family ``name``'s forward output and gradients, from arrays on one backend."""
    return FAMILIES[name][2](arrays)
