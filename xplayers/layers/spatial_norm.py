"""Normalisation of image batches x: (N, C, H, W), NCHW.

* Spatial batch norm: per channel, statistics over (N, H, W), running
  statistics for test mode exactly as in ``batchnorm_forward``.
* Spatial group norm: per image and group of C/G consecutive channels,
  statistics over (C/G, H, W); the same in train and test mode.

Both compute their statistics on the NCHW array itself (axes (0, 2, 3), or
(2, 3, 4) of the free (N, G, C/G, H, W) reshape), never on a transposed copy.
"""

from __future__ import annotations

from typing import Any

from .._checks import (
    check_dout,
    check_floating,
    check_int,
    check_ndim,
    check_param,
    check_shape,
    describe,
    namespace,
)
from ._normalize import affine_params_backward, normalize, normalize_backward
from .batchnorm import batch_normalize, check_train_cache

_BATCH_AXES = (0, 2, 3)
_GROUP_AXES = (2, 3, 4)


def _check_image(x: Any, xp: Any) -> tuple[int, int, int, int]:
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_floating("x", x, xp)
    return tuple(x.shape)


def spatial_batchnorm_forward(x: Any, gamma: Any, beta: Any, bn_param: dict) -> tuple[Any, Any]:
    """x: (N, C, H, W), gamma/beta: (C,) -> out: (N, C, H, W).

    out = gamma_c * (x - mean_c) / sqrt(var_c + eps) + beta_c, mean_c and var_c
    over (N, H, W) in train mode (updating bn_param's running statistics) and
    the running statistics in test mode.
    """
    xp = namespace(x=x, gamma=gamma, beta=beta)
    _, c, _, _ = _check_image(x, xp)
    check_shape("gamma", gamma, (c,), f"to match x's C={c}")
    check_shape("beta", beta, (c,), f"to match x's C={c}")
    gamma, beta = check_param("gamma", gamma, x, xp), check_param("beta", beta, x, xp)
    xhat, _, inv_std, train = batch_normalize(xp, x, bn_param, _BATCH_AXES)
    # (C, 1, 1) broadcasts per channel against (N, C, H, W).
    gamma3 = xp.reshape(gamma, (c, 1, 1))
    out = gamma3 * xhat + xp.reshape(beta, (c, 1, 1))
    return out, ((xhat, inv_std, gamma3) if train else None)


def spatial_batchnorm_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout: (N, C, H, W) -> dx: (N, C, H, W), dgamma: (C,), dbeta: (C,).

    dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), means over (N, H, W).
    """
    xhat, inv_std, gamma3 = check_train_cache(cache, "spatial batchnorm")
    xp = namespace(dout=dout, xhat=xhat)
    check_dout(dout, tuple(xhat.shape), xhat.dtype, "(the shape of x)")
    dgamma, dbeta = affine_params_backward(xp, dout, xhat, _BATCH_AXES)
    dx = normalize_backward(xp, dout * gamma3, xhat, inv_std, _BATCH_AXES)
    return dx, dgamma, dbeta


def _check_groups(G: Any, c: int, x: Any) -> int:
    G = check_int("G (the number of groups)", G, 1)
    if c % G != 0:
        raise ValueError(
            f"G={G} groups must divide the {c} channels of x (x is a {describe(x)}); "
            f"divisors of {c}: {[g for g in range(1, c + 1) if c % g == 0]}"
        )
    return G


def spatial_groupnorm_forward(
    x: Any, gamma: Any, beta: Any, G: int, gn_param: dict
) -> tuple[Any, tuple]:
    """x: (N, C, H, W), gamma/beta: (1, C, 1, 1), G groups dividing C -> out: (N, C, H, W).

    out = gamma * (x - mean_ng) / sqrt(var_ng + eps) + beta, mean_ng and var_ng
    over the C/G channels of group g of image n and all their pixels.
    """
    xp = namespace(x=x, gamma=gamma, beta=beta)
    n, c, h, w = _check_image(x, xp)
    check_shape("gamma", gamma, (1, c, 1, 1), f"to match x's C={c}")
    check_shape("beta", beta, (1, c, 1, 1), f"to match x's C={c}")
    gamma, beta = check_param("gamma", gamma, x, xp), check_param("beta", beta, x, xp)
    G = _check_groups(G, c, x)
    grouped = xp.reshape(x, (n, G, c // G, h, w))
    xhat5, _, _, inv_std = normalize(xp, grouped, _GROUP_AXES, (gn_param or {}).get("eps", 1e-5))
    xhat = xp.reshape(xhat5, (n, c, h, w))
    return gamma * xhat + beta, (xhat5, inv_std, gamma)


def spatial_groupnorm_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout: (N, C, H, W) -> dx: (N, C, H, W), dgamma: (1, C, 1, 1), dbeta: (1, C, 1, 1).

    dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), means per image and group.
    """
    xhat5, inv_std, gamma = cache
    xp = namespace(dout=dout, xhat=xhat5)
    n, G, cg, h, w = xhat5.shape
    shape = (n, G * cg, h, w)
    check_dout(dout, shape, xhat5.dtype, "(the shape of x)")
    xhat = xp.reshape(xhat5, shape)
    dgamma, dbeta = affine_params_backward(xp, dout, xhat, _BATCH_AXES)
    dxhat5 = xp.reshape(dout * gamma, xhat5.shape)
    dx = xp.reshape(normalize_backward(xp, dxhat5, xhat5, inv_std, _GROUP_AXES), shape)
    param_shape = (1, G * cg, 1, 1)
    return dx, xp.reshape(dgamma, param_shape), xp.reshape(dbeta, param_shape)
