"""Convenience layers that chain common pairs, forward and backward side by side."""

from __future__ import annotations

from typing import Any

from .._checks import writable
from . import _conv_pool
from .affine import affine_backward, affine_forward
from .conv import conv_backward_fast, conv_forward_fast, plan_fast, run_fast
from .pool import max_pool_backward_fast, max_pool_forward_fast
from .relu import relu_backward, relu_forward


def affine_relu_forward(x: Any, w: Any, b: Any) -> tuple[Any, tuple]:
    """out = relu(x @ w + b); x: (N, D...), w: (D, M), b: (M,)."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: Any, cache: tuple) -> tuple[Any, Any, Any]:
    """dout: (N, M) -> dx, dw, db."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def conv_relu_forward(x: Any, w: Any, b: Any, conv_param: dict) -> tuple[Any, tuple]:
    """out = relu(conv(x, w) + b); x: (N, C, H, W), w: (F, C, HH, WW), b: (F,)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: Any, cache: tuple, need_dx: bool = True) -> tuple[Any, Any, Any]:
    """dout: (N, F, Ho, Wo) -> dx (None unless need_dx), dw, db."""
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache, need_dx)


def conv_relu_pool_forward(
    x: Any, w: Any, b: Any, conv_param: dict, pool_param: dict
) -> tuple[Any, tuple]:
    """out = max_pool(relu(conv(x, w) + b)); shapes as in conv and max pool.

    Computed as relu(max_pool(a)) with a = conv(x, w) + b: max commutes with
    the monotone relu, so the relu runs on the pooled output, a quarter of
    the conv output for 2x2 pools, and the full-size relu pass is saved.
    Where the pool tiles the conv output (stride = pool size, dividing Ho
    and Wo), all three run on each batch chunk at once on flat windows or
    channels-last columns (``_conv_pool``): same result, no full-size conv
    output. The exceptions run the unfused chain: a conv whose backward takes
    dw from columns of dout (stride 1, F <= C, flat windows), the kernel-row
    and pointwise lowerings, and arrays that cannot be written (JAX), whose
    conv and pool take their functional routes.
    """
    if writable(x=x, w=w, b=b):
        xp, w, b, plan = plan_fast(x, w, b, conv_param, fused=True)
        pool = _conv_pool.tiling_pool(plan, pool_param)
        if pool is not None:
            return _conv_pool.forward(x, w, b, plan, pool, xp)
        a, conv_cache = run_fast(x, w, b, conv_param, plan, xp)
    else:
        a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    pooled, pool_cache = max_pool_forward_fast(a, pool_param)
    out, relu_cache = relu_forward(pooled)
    return out, (conv_cache, pool_cache, relu_cache)


def conv_relu_pool_backward(dout: Any, cache: tuple, need_dx: bool = True) -> tuple[Any, Any, Any]:
    """dout: pooled (N, F, Hp, Wp) -> dx (None unless need_dx), dw, db.

    The same gradient as relu_backward(max_pool_backward(dout)): a window
    whose max is positive has its first maximum at the same place in a and
    in relu(a), where relu passes the gradient; a window whose max is not
    positive gets none. So the relu mask applies to the pooled dout, before
    the routing, and no full-size pass is left for it.
    """
    if isinstance(cache, _conv_pool.ConvPoolCache):
        return _conv_pool.backward(dout, cache, need_dx)
    conv_cache, pool_cache, relu_cache = cache
    dconv = max_pool_backward_fast(relu_backward(dout, relu_cache), pool_cache)
    return conv_backward_fast(dconv, conv_cache, need_dx)
