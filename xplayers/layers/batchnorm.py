"""Batch normalisation over the batch axis of x: (N, D).

Train: out = gamma * (x - mean_batch) / sqrt(var_batch + eps) + beta, and the
running statistics move as running = momentum * running + (1 - momentum) * batch.
Test: the running statistics replace the batch ones.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backends
from .._checks import (
    check_dout,
    check_floating,
    check_mode,
    check_ndim,
    check_param,
    check_shape,
    describe,
    namespace,
)
from ._normalize import affine_params_backward, normalize, normalize_backward


def _running_stat(xp: Any, bn_param: dict, key: str, x: Any) -> Any:
    stat = bn_param.get(key)
    d = x.shape[1]
    if stat is None:
        return xp.zeros((d,), dtype=x.dtype, device=backends.device_of(x))
    namespace(x=x, **{key: stat})
    if tuple(stat.shape) != (d,):
        raise ValueError(f"bn_param[{key!r}] must have shape ({d},), got a {describe(stat)}")
    return stat


def batch_normalize(
    xp: Any, x: Any, bn_param: dict, axes: tuple[int, ...]
) -> tuple[Any, Any, Any, bool]:
    """xhat of x, per feature on axis 1, with the statistics over ``axes``.

    Train mode uses the batch statistics and moves bn_param's running ones
    (shape (x.shape[1],), zeros on first use) towards them (an empty batch
    leaves them untouched); test mode uses the
    running statistics. Returns (xhat, mean, inv_std, train), the statistics
    shaped to broadcast against x. Shared by batch norm and spatial batch norm.
    """
    mode = check_mode("bn_param", bn_param)
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = _running_stat(xp, bn_param, "running_mean", x)
    running_var = _running_stat(xp, bn_param, "running_var", x)
    # An empty batch has no statistics (its mean would be NaN): it is normalised
    # with the running ones, which stay as they were; its cache is a train cache.
    empty = math.prod(x.shape[a] for a in axes) == 0
    if mode == "train" and not empty:
        xhat, mean, var, inv_std = normalize(xp, x, axes, eps)
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * xp.reshape(mean, (d,))
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * xp.reshape(var, (d,))
        return xhat, mean, inv_std, True
    stat_shape = tuple(d if axis == 1 else 1 for axis in range(x.ndim))
    mean = xp.reshape(running_mean, stat_shape)
    inv_std = 1.0 / xp.sqrt(xp.reshape(running_var, stat_shape) + eps)
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return (x - mean) * inv_std, mean, inv_std, mode == "train"


def batchnorm_forward(x: Any, gamma: Any, beta: Any, bn_param: dict) -> tuple[Any, Any]:
    """x: (N, D), gamma/beta: (D,) -> out: (N, D); updates bn_param's running stats."""
    xp = namespace(x=x, gamma=gamma, beta=beta)
    check_mode("bn_param", bn_param)
    check_ndim("x", x, 2, "(N, D)")
    check_floating("x", x, xp)
    d = x.shape[1]
    check_shape("gamma", gamma, (d,), f"to match x's D={d}")
    check_shape("beta", beta, (d,), f"to match x's D={d}")
    gamma, beta = check_param("gamma", gamma, x, xp), check_param("beta", beta, x, xp)
    xhat, mean, inv_std, train = batch_normalize(xp, x, bn_param, (0,))
    cache = (x, xhat, mean, inv_std, gamma) if train else None
    return gamma * xhat + beta, cache


def check_train_cache(cache: Any, layer: str = "batchnorm") -> tuple:
    if cache is None:
        raise ValueError(f"{layer} backward needs a cache from a forward pass in 'train' mode")
    return cache


def batchnorm_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """Backprop through the computation graph step by step (mean, var, sqrt, divide).

    dout: (N, D) -> dx: (N, D), dgamma: (D,), dbeta: (D,).
    """
    x, xhat, mean, inv_std, gamma = check_train_cache(cache)
    xp = namespace(dout=dout, x=x)
    check_dout(dout, tuple(x.shape), x.dtype, "(the shape of x)")
    n = x.shape[0]
    dgamma, dbeta = affine_params_backward(xp, dout, xhat, (0,))
    centered = x - mean
    dxhat = dout * gamma
    # xhat = centered * inv_std, inv_std = (var + eps) ** -0.5, var = mean(centered ** 2)
    dinv_std = xp.sum(dxhat * centered, axis=0, keepdims=True)
    dvar = -0.5 * inv_std**3 * dinv_std
    dcentered = dxhat * inv_std + (2.0 / n) * centered * dvar
    dmean = -xp.sum(dcentered, axis=0, keepdims=True)
    dx = dcentered + dmean / n
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """Closed form: dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))."""
    x, xhat, _, inv_std, gamma = check_train_cache(cache)
    xp = namespace(dout=dout, x=x)
    check_dout(dout, tuple(x.shape), x.dtype, "(the shape of x)")
    dgamma, dbeta = affine_params_backward(xp, dout, xhat, (0,))
    dx = normalize_backward(xp, dout * gamma, xhat, inv_std, (0,))
    return dx, dgamma, dbeta
