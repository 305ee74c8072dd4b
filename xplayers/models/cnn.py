"""A three-layer convolutional network (CS231n assignment 2).

conv - relu - 2x2 max pool - affine - relu - affine - softmax, on NCHW images.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..layers import (
    affine_backward,
    affine_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
    softmax_loss,
)
from ._base import Model, Shape, StateShapes, float_dtype, number_arg, size_arg

__all__ = ["ThreeLayerConvNet"]

_POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _param_shapes(
    input_dim: Any, num_filters: Any, filter_size: Any, hidden_dim: Any, num_classes: Any
) -> tuple[dict[str, Shape], int]:
    """The params' shapes (W1, b1, W2, b2, W3, b3, in drawing order) and the conv's pad,
    the arguments checked."""
    if isinstance(input_dim, (str, bytes, dict)) or not isinstance(input_dim, Iterable):
        raise TypeError(f"input_dim must be (C, H, W), got {input_dim!r:.60}")
    dims = list(itertools.islice(input_dim, 4))
    if len(dims) != 3:
        raise ValueError(f"input_dim must be (C, H, W), got {input_dim!r:.60}")
    c, h, w = (size_arg(f"input_dim[{i}]", d) for i, d in enumerate(dims))
    f, fs, hidden, classes = (
        size_arg(name, value)
        for name, value in (
            ("num_filters", num_filters),
            ("filter_size", filter_size),
            ("hidden_dim", hidden_dim),
            ("num_classes", num_classes),
        )
    )
    pad = (fs - 1) // 2
    # The conv keeps H x W for odd filters; the 2x2 pool then needs even sizes.
    conv_h, conv_w = h + 2 * pad - fs + 1, w + 2 * pad - fs + 1
    if conv_h <= 0 or conv_w <= 0 or conv_h % 2 or conv_w % 2:
        raise ValueError(
            f"the conv output ({conv_h}x{conv_w} for input_dim={(c, h, w)}, "
            f"filter_size={fs}, pad={pad}) must have positive even height and "
            f"width for the 2x2 stride-2 max pool"
        )
    pooled = f * (conv_h // 2) * (conv_w // 2)
    shapes = {
        "W1": (f, c, fs, fs),
        "b1": (f,),
        "W2": (pooled, hidden),
        "b2": (hidden,),
        "W3": (hidden, classes),
        "b3": (classes,),
    }
    return shapes, pad


class ThreeLayerConvNet(Model):
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax.

    Parameters (CS231n names), weights drawn as ``weight_scale * N(0, 1)`` from
    ``seed`` on the host, biases zero:
    W1 (F, C, fs, fs), b1 (F,): the conv, pad (fs - 1) // 2, stride 1, which
    keeps H x W for odd fs; W2 (F * H/2 * W/2, hidden_dim), b2; W3 (hidden_dim,
    num_classes), b3. The L2 penalty 0.5 * reg * sum(W**2) covers W1..W3.
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: Any = "float32",
        backend: str | None = None,
        seed: int | None = None,
        device: Any = None,
    ) -> None:
        shapes, pad = _param_shapes(input_dim, num_filters, filter_size, hidden_dim, num_classes)
        super().__init__(backend=backend, dtype=dtype, seed=seed, device=device)
        self.reg = reg
        self.conv_param = {"stride": 1, "pad": pad}
        self.pool_param = dict(_POOL_PARAM)
        draw, zeros = self.normal, np.zeros
        self._set_params(
            {k: draw(weight_scale, v) if k[0] == "W" else zeros(v) for k, v in shapes.items()}
        )

    @classmethod
    def _state_shapes(cls, args: dict[str, Any]) -> StateShapes:
        number_arg("reg", args["reg"])
        number_arg("weight_scale", args["weight_scale"])
        sizes = ("input_dim", "num_filters", "filter_size", "hidden_dim", "num_classes")
        shapes, _ = _param_shapes(*(args[k] for k in sizes))
        return StateShapes(iter(shapes.items()), iter(()), float_dtype(args["dtype"]))

    def loss(self, X: Any, y: Any = None, label_range: tuple[int, int] | None = None) -> Any:
        """Scores (N, num_classes) when ``y`` is None, else ``(loss, grads)``.

        X: (N, C, H, W) images, y: (N,) integer labels; ``loss`` is a 0-d
        array, ``grads`` is keyed like ``params``. ``label_range``: see ``Model.loss``.
        """
        X, y = self.prepare_input(X, y)
        p = self.params
        h1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param, self.pool_param)
        h2, cache2 = affine_relu_forward(h1, p["W2"], p["b2"])
        scores, cache3 = affine_forward(h2, p["W3"], p["b3"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y, label_range)
        grads: dict[str, Any] = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dh1, grads["W2"], grads["b2"] = affine_relu_backward(dh2, cache2)
        # The data needs no gradient: skipping dx saves a third of the conv backward.
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dh1, cache1, need_dx=False)
        loss = self._add_l2(loss, grads, ["W1", "W2", "W3"])
        return loss, {k: grads[k] for k in p}
