"""Shared statistics for every normalisation layer (batch, layer, spatial, group).

Each layer reshapes its input so the statistics run over some axes, then
calls these two functions; the backward is the compact closed form
dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def normalize(
    xp: ModuleType, x: Any, axes: tuple[int, ...], eps: float
) -> tuple[Any, Any, Any, Any]:
    """xhat = (x - mean) / sqrt(var + eps) over ``axes``; var is biased.

    Returns (xhat, mean, var, inv_std), the statistics keeping reduced axes.
    """
    mean = xp.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=axes, keepdims=True)
    # eps inside the root keeps a constant feature finite: xhat is 0 there.
    inv_std = 1.0 / xp.sqrt(var + eps)
    return centered * inv_std, mean, var, inv_std


def normalize_backward(
    xp: ModuleType, dxhat: Any, xhat: Any, inv_std: Any, axes: tuple[int, ...]
) -> Any:
    """Gradient through xhat = (x - mean) * inv_std, statistics over ``axes``."""
    if 0 in dxhat.shape:  # an empty batch: no mean to take (NumPy would warn)
        return dxhat * inv_std
    mean_dxhat = xp.mean(dxhat, axis=axes, keepdims=True)
    mean_dxhat_xhat = xp.mean(dxhat * xhat, axis=axes, keepdims=True)
    return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def affine_params_backward(
    xp: ModuleType, dout: Any, xhat: Any, axes: tuple[int, ...]
) -> tuple[Any, Any]:
    """dgamma = sum(dout * xhat), dbeta = sum(dout) over the ``axes`` gamma is shared by."""
    return xp.sum(dout * xhat, axis=axes), xp.sum(dout, axis=axes)
