"""Batch normalisation over the batch axis of x: (N, D).

Train: out = gamma * (x - mean_batch) / sqrt(var_batch + eps) + beta, and the
running statistics move as running = momentum * running + (1 - momentum) * batch.
Test: the running statistics replace the batch ones.
"""

from __future__ import annotations

from typing import Any

from .._checks import check_mode, check_ndim, check_shape, describe, namespace
from ._normalize import affine_params_backward, normalize, normalize_backward


def _running_stat(xp: Any, bn_param: dict, key: str, x: Any) -> Any:
    stat = bn_param.get(key)
    d = x.shape[1]
    if stat is None:
        return xp.zeros((d,), dtype=x.dtype, device=x.device)
    namespace(x=x, **{key: stat})
    if tuple(stat.shape) != (d,):
        raise ValueError(f"bn_param[{key!r}] must have shape ({d},), got a {describe(stat)}")
    return stat


def batchnorm_forward(x: Any, gamma: Any, beta: Any, bn_param: dict) -> tuple[Any, Any]:
    """x: (N, D), gamma/beta: (D,) -> out: (N, D); updates bn_param's running stats."""
    xp = namespace(x=x, gamma=gamma, beta=beta)
    mode = check_mode("bn_param", bn_param)
    check_ndim("x", x, 2, "(N, D)")
    d = x.shape[1]
    check_shape("gamma", gamma, (d,), f"to match x's D={d}")
    check_shape("beta", beta, (d,), f"to match x's D={d}")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    running_mean = _running_stat(xp, bn_param, "running_mean", x)
    running_var = _running_stat(xp, bn_param, "running_var", x)

    if mode == "train":
        xhat, mean, var, inv_std = normalize(xp, x, (0,), eps)
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean[0, ...]
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var[0, ...]
        cache = (x, xhat, mean, inv_std, gamma)
    else:
        inv_std = 1.0 / xp.sqrt(running_var + eps)
        xhat = (x - running_mean) * inv_std
        bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
        cache = None
    return gamma * xhat + beta, cache


def _check_train_cache(cache: Any) -> tuple:
    if cache is None:
        raise ValueError("batchnorm backward needs a cache from a forward pass in 'train' mode")
    return cache


def batchnorm_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """Backprop through the computation graph step by step (mean, var, sqrt, divide).

    dout: (N, D) -> dx: (N, D), dgamma: (D,), dbeta: (D,).
    """
    x, xhat, mean, inv_std, gamma = _check_train_cache(cache)
    xp = namespace(dout=dout, x=x)
    check_shape("dout", dout, tuple(x.shape), "(the shape of x)")
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
    x, xhat, _, inv_std, gamma = _check_train_cache(cache)
    xp = namespace(dout=dout, x=x)
    check_shape("dout", dout, tuple(x.shape), "(the shape of x)")
    dgamma, dbeta = affine_params_backward(xp, dout, xhat, (0,))
    dx = normalize_backward(xp, dout * gamma, xhat, inv_std, (0,))
    return dx, dgamma, dbeta
