"""Fully connected networks with explicit backprop (CS231n assignment 2).

``FullyConnectedNet`` stacks ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1)``
and a final affine layer into a softmax loss; ``TwoLayerNet`` is its
one-hidden-layer case. Both keep their weights in ``params`` (W1, b1, ...,
gamma1, beta1, ...) on one backend and compute in the dtype of those params.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..layers import (
    affine_backward,
    affine_forward,
    affine_param_grads,
    batchnorm_backward_alt,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from ._base import Model, Shape, StateShapes, float_dtype, number_arg, size_arg

__all__ = ["FullyConnectedNet", "TwoLayerNet"]

# normalization name -> (forward, backward); the closed-form batchnorm
# backward is the cheaper of the two equivalent ones.
_NORMALIZATIONS = {
    "batchnorm": (batchnorm_forward, batchnorm_backward_alt),
    "layernorm": (layernorm_forward, layernorm_backward),
}


def _check_options(normalization: Any, dropout: Any) -> None:
    if normalization is not None and normalization not in _NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r:.60}: expected None, "
            + " or ".join(repr(k) for k in _NORMALIZATIONS)
        )
    if not 0.0 < number_arg("dropout", dropout) <= 1.0:
        raise ValueError(
            f"dropout is the probability of keeping a unit, in (0, 1]; got {dropout!r}"
        )


def _layer_sizes(input_dim: Any, hidden_dims: Any, num_classes: Any) -> Iterator[int]:
    """input_dim, each hidden size, num_classes: checked one by one, as they are reached."""
    if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Iterable):
        raise TypeError(f"hidden_dims must be a sequence of sizes, got {hidden_dims!r:.60}")
    yield size_arg("input_dim", input_dim)
    for i, h in enumerate(hidden_dims):
        yield size_arg(f"hidden_dims[{i}]", h)
    yield size_arg("num_classes", num_classes)


def _but_last(items: Iterator[int]) -> Iterator[int]:
    previous = next(items, None)
    for item in items:
        yield previous
        previous = item


def _param_shapes(sizes: Iterator[int], normalized: bool) -> Iterator[tuple[str, Shape]]:
    """W{i}: (fan_in, fan_out), b{i}: (fan_out,) per layer, and gamma{i}, beta{i} for
    each hidden layer when ``normalized``; lazily, from the layer sizes."""
    fan_in, fan_out = next(sizes), next(sizes)
    i = 1
    for following in sizes:  # layer i is a hidden one: another follows it
        yield from ((f"W{i}", (fan_in, fan_out)), (f"b{i}", (fan_out,)))
        if normalized:
            yield from ((f"gamma{i}", (fan_out,)), (f"beta{i}", (fan_out,)))
        fan_in, fan_out, i = fan_out, following, i + 1
    yield from ((f"W{i}", (fan_in, fan_out)), (f"b{i}", (fan_out,)))


class FullyConnectedNet(Model):
    """A fully connected ReLU network of any depth with a softmax loss.

    Architecture: ``{affine - [norm] - relu - [dropout]} x (L - 1) - affine - softmax``.

    Parameters (CS231n names): ``W{i}`` of shape (fan_in, fan_out) drawn as
    ``weight_scale * N(0, 1)``, ``b{i}`` zeros; with a normalization,
    ``gamma{i}`` ones and ``beta{i}`` zeros for each hidden layer. ``dropout``
    is the probability of KEEPING a unit (1 disables dropout); with a ``seed``
    (``dropout_param['seed']``) each dropout layer of each training step
    draws from its own stream, the entropy (seed, step, layer, *stream_key)
    (``Model.stream_entropy``: a SeedSequence over it on the host libraries,
    a ``jax.random`` key folding it in on JAX, where the step may be traced),
    so no two layers share a mask and every call within a step
    draws the same masks (as in CS231n, which makes the model
    gradient-checkable). Without a seed each call draws fresh masks from the
    backend's generator. Masks are drawn on the device of the activations.

    ``norm_params`` (alias ``bn_params``) holds one dict per hidden layer:
    batch norm's mode and running statistics, or layer norm's settings.
    """

    def __init__(
        self,
        hidden_dims: Sequence[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout: float = 1,
        normalization: str | None = None,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype: Any = "float32",
        seed: int | None = None,
        backend: str | None = None,
        device: Any = None,
    ) -> None:
        _check_options(normalization, dropout)
        dims = list(_layer_sizes(input_dim, hidden_dims, num_classes))
        super().__init__(backend=backend, dtype=dtype, seed=seed, device=device)
        self.normalization = normalization
        self.use_dropout = dropout != 1
        self.reg = reg
        self.num_layers = len(dims) - 1

        host: dict[str, np.ndarray] = {}
        for name, shape in _param_shapes(iter(dims), normalization is not None):
            if name.startswith("W"):
                host[name] = self.normal(weight_scale, shape)
            else:  # biases and betas start at 0, gammas at 1
                host[name] = (np.ones if name.startswith("gamma") else np.zeros)(shape)
        self._set_params(host)

        self.dropout_param: dict = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout}
            if seed is not None:
                self.dropout_param["seed"] = seed
        if normalization == "batchnorm":
            self.norm_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        elif normalization == "layernorm":
            self.norm_params = [{} for _ in range(self.num_layers - 1)]

    @classmethod
    def _state_shapes(cls, args: dict[str, Any]) -> StateShapes:
        _check_options(args["normalization"], args["dropout"])
        number_arg("reg", args["reg"])
        number_arg("weight_scale", args["weight_scale"])
        sizes = (args["input_dim"], args["hidden_dims"], args["num_classes"])
        hidden = itertools.islice(_layer_sizes(*sizes), 1, None)
        norm: Iterator[dict] = iter(())
        if args["normalization"] is not None:  # one dict per hidden layer; layer norm's stay empty
            keep = ("running_mean", "running_var") if args["normalization"] == "batchnorm" else ()
            norm = ({k: (d,) for k in keep} for d in _but_last(hidden))
        return StateShapes(
            _param_shapes(_layer_sizes(*sizes), args["normalization"] is not None),
            norm,
            float_dtype(args["dtype"]),
        )

    def _layer_dropout_param(self, layer: int) -> dict:
        """The dropout_param of hidden layer ``layer``: its own stream when seeded."""
        seed = self.dropout_param.get("seed")
        if seed is None:
            return self.dropout_param
        return {**self.dropout_param, "seed": self.stream_entropy(seed, layer)}

    @property
    def bn_params(self) -> list[dict]:
        """CS231n's name for the per-layer normalization dicts (= ``norm_params``)."""
        return self.norm_params

    def loss(self, X: Any, y: Any = None, label_range: tuple[int, int] | None = None) -> Any:
        """Scores, or the loss and its gradients.

        X: (N, d_1, ..., d_k) with prod(d_i) = input_dim; y: (N,) integer labels.
        Returns scores (N, C) when ``y`` is None (test mode: batch norm uses its
        running statistics, dropout is off), else ``(loss, grads)`` in train
        mode, with ``loss`` a 0-d array and ``grads`` keyed like ``params``.
        ``label_range``: see ``Model.loss``.
        """
        X, y = self.prepare_input(X, y)
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.norm_params:
                bn_param["mode"] = mode
        norm_forward, norm_backward = _NORMALIZATIONS.get(self.normalization, (None, None))

        p = self.params
        h = X
        caches = []
        for i in range(1, self.num_layers):
            h, fc_cache = affine_forward(h, p[f"W{i}"], p[f"b{i}"])
            norm_cache = drop_cache = None
            if norm_forward is not None:
                h, norm_cache = norm_forward(
                    h, p[f"gamma{i}"], p[f"beta{i}"], self.norm_params[i - 1]
                )
            h, relu_cache = relu_forward(h)
            if self.use_dropout:
                h, drop_cache = dropout_forward(h, self._layer_dropout_param(i))
            caches.append((fc_cache, norm_cache, relu_cache, drop_cache))
        last = self.num_layers
        scores, last_cache = affine_forward(h, p[f"W{last}"], p[f"b{last}"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y, label_range)
        grads: dict[str, Any] = {}
        if last == 1:  # no hidden layer: the data is the only input
            grads["W1"], grads["b1"] = affine_param_grads(dscores, last_cache)
        else:
            dh, grads[f"W{last}"], grads[f"b{last}"] = affine_backward(dscores, last_cache)
        for i in range(last - 1, 0, -1):
            fc_cache, norm_cache, relu_cache, drop_cache = caches[i - 1]
            if drop_cache is not None:
                dh = dropout_backward(dh, drop_cache)
            dh = relu_backward(dh, relu_cache)
            if norm_backward is not None:
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = norm_backward(dh, norm_cache)
            if i == 1:
                grads["W1"], grads["b1"] = affine_param_grads(dh, fc_cache)
            else:
                dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dh, fc_cache)

        weights = [f"W{i}" for i in range(1, last + 1)]
        loss = self._add_l2(loss, grads, weights)
        return loss, {k: grads[k] for k in p}


class TwoLayerNet(FullyConnectedNet):
    """affine - relu - affine - softmax, the one-hidden-layer FullyConnectedNet.

    Parameters W1: (input_dim, hidden_dim), b1, W2: (hidden_dim, num_classes),
    b2; weights drawn as ``weight_scale * N(0, 1)`` from ``seed`` on the host.
    ``dtype`` (default float32) is an extra keyword beyond the CS231n signature.
    """

    def __init__(
        self,
        input_dim: int = 3 * 32 * 32,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: Any = "float32",
        backend: str | None = None,
        seed: int | None = None,
        device: Any = None,
    ) -> None:
        fc = _as_fully_connected(input_dim, hidden_dim, num_classes, weight_scale, reg, dtype, seed)
        super().__init__(**fc, backend=backend, device=device)
        self.hidden_dim = hidden_dim

    @classmethod
    def _state_shapes(cls, args: dict[str, Any]) -> StateShapes:
        return FullyConnectedNet._state_shapes(_as_fully_connected(**args))


def _as_fully_connected(
    input_dim: Any,
    hidden_dim: Any,
    num_classes: Any,
    weight_scale: Any,
    reg: Any,
    dtype: Any,
    seed: Any,
) -> dict[str, Any]:
    """A TwoLayerNet's arguments as those of the FullyConnectedNet it is."""
    return dict(
        hidden_dims=[hidden_dim],
        input_dim=input_dim,
        num_classes=num_classes,
        dropout=1,
        normalization=None,
        reg=reg,
        weight_scale=weight_scale,
        dtype=dtype,
        seed=seed,
    )
