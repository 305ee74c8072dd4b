"""Layer normalisation over the feature axis of x: (N, D).

out = gamma * (x - mean_features) / sqrt(var_features + eps) + beta; the same
in train and test mode, with no running statistics.
"""

from __future__ import annotations

from typing import Any

from .._checks import (
    check_dout,
    check_floating,
    check_ndim,
    check_param,
    check_param_dict,
    check_shape,
    namespace,
)
from ._normalize import affine_params_backward, normalize, normalize_backward


def layernorm_forward(x: Any, gamma: Any, beta: Any, ln_param: dict) -> tuple[Any, tuple]:
    """x: (N, D), gamma/beta: (D,) -> out: (N, D)."""
    xp = namespace(x=x, gamma=gamma, beta=beta)
    check_param_dict("ln_param", ln_param)
    check_ndim("x", x, 2, "(N, D)")
    check_floating("x", x, xp)
    d = x.shape[1]
    check_shape("gamma", gamma, (d,), f"to match x's D={d}")
    check_shape("beta", beta, (d,), f"to match x's D={d}")
    gamma, beta = check_param("gamma", gamma, x, xp), check_param("beta", beta, x, xp)
    xhat, _, _, inv_std = normalize(xp, x, (1,), ln_param.get("eps", 1e-5))
    return gamma * xhat + beta, (xhat, inv_std, gamma)


def layernorm_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout: (N, D) -> dx: (N, D), dgamma: (D,), dbeta: (D,)."""
    xhat, inv_std, gamma = cache
    xp = namespace(dout=dout, xhat=xhat)
    check_dout(dout, tuple(xhat.shape), xhat.dtype, "(the shape of x)")
    dgamma, dbeta = affine_params_backward(xp, dout, xhat, (0,))
    dx = normalize_backward(xp, dout * gamma, xhat, inv_std, (1,))
    return dx, dgamma, dbeta
