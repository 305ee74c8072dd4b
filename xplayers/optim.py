"""First-order update rules with the CS231n signature (w, dw, config) -> (next_w, config).

The state arrays (velocity, cache, m, v) live on w's backend, device and
dtype, and nothing is copied to the host. Each rule is written once as a
pure element-wise kernel on (w, dw, state...). On a CPU, large parameters
are updated in row blocks that fit in cache: the dozen element-wise passes
of Adam then run from cache instead of from fresh memory, which measured
2-3x faster for a (3072, 100) float32 weight here. On a GPU the kernel runs
once over the whole array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import backends

from ._checks import check_shape, namespace

__all__ = ["adam", "get_update_rule", "rmsprop", "sgd", "sgd_momentum"]

# Elements per block: 32768 float32 values are 128 KiB per array, so the
# handful of arrays one kernel touches stays in a core's L2 cache.
_BLOCK_ELEMENTS = 1 << 15


def _prepare(w: Any, dw: Any, config: dict | None, **defaults: Any) -> tuple[Any, dict]:
    xp = namespace(w=w, dw=dw)
    check_shape("dw", dw, tuple(w.shape), "(the shape of w)")
    config = {} if config is None else config
    for key, value in defaults.items():
        config.setdefault(key, value)
    return xp, config


def _state(xp: Any, config: dict, key: str, w: Any) -> Any:
    """The state array ``config[key]``; zeros of w's shape, dtype and device at first.

    The update may write into it: it belongs to the optimizer, not the caller.
    """
    value = config.get(key)
    if value is None:
        return xp.zeros(w.shape, dtype=w.dtype, device=w.device)
    namespace(w=w, **{key: value})
    check_shape(f"config[{key!r}]", value, tuple(w.shape), "(the shape of w)")
    return value


def _apply(xp: Any, kernel: Callable[..., tuple], w: Any, dw: Any, *state: Any) -> tuple:
    """kernel(w, dw, *state) -> (next_w, *next_state), over cache-sized row blocks on a CPU.

    Blocked, the new state is written back into the state arrays (they belong
    to the optimizer), so only next_w is a fresh array.
    """
    rows = backends.cache_block_rows(w, _BLOCK_ELEMENTS)
    if w.ndim == 0 or rows is None or rows >= w.shape[0]:
        return kernel(w, dw, *state)
    next_w = xp.empty_like(w)
    n = w.shape[0]
    for start in range(0, n, rows):
        block = (slice(start, min(start + rows, n)), ...)  # the standard has no past-end slices
        results = kernel(w[block], dw[block], *(s[block] for s in state))
        for out, result in zip((next_w, *state), results, strict=True):
            out[block] = result
    return (next_w, *state)


def sgd(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """w <- w - learning_rate * dw."""
    _, config = _prepare(w, dw, config, learning_rate=1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """v <- momentum * v - learning_rate * dw; w <- w + v."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, momentum=0.9)
    mu, lr = config["momentum"], config["learning_rate"]

    def kernel(w: Any, dw: Any, v: Any) -> tuple[Any, Any]:
        v = mu * v - lr * dw
        return w + v, v

    next_w, config["velocity"] = _apply(xp, kernel, w, dw, _state(xp, config, "velocity", w))
    return next_w, config


def rmsprop(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """cache <- decay * cache + (1 - decay) * dw^2; w <- w - lr * dw / (sqrt(cache) + eps)."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    decay, lr, eps = config["decay_rate"], config["learning_rate"], config["epsilon"]

    def kernel(w: Any, dw: Any, cache: Any) -> tuple[Any, Any]:
        cache = decay * cache + (1 - decay) * (dw * dw)
        return w - lr * dw / (xp.sqrt(cache) + eps), cache

    next_w, config["cache"] = _apply(xp, kernel, w, dw, _state(xp, config, "cache", w))
    return next_w, config


def adam(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """Adam with bias correction; t is incremented before it is used.

    m <- b1 m + (1 - b1) dw; v <- b2 v + (1 - b2) dw^2;
    w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """
    xp, config = _prepare(
        w, dw, config, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0
    )
    b1, b2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    # Python floats, so no device scalar per step; with c = sqrt(1 - b2^t),
    # lr_t * m / (sqrt(v) / c + eps) = (lr_t * c) * m / (sqrt(v) + eps * c).
    c = (1 - b2**t) ** 0.5
    step = config["learning_rate"] / (1 - b1**t) * c
    eps = config["epsilon"] * c

    def kernel(w: Any, dw: Any, m: Any, v: Any) -> tuple[Any, Any, Any]:
        m = b1 * m + (1 - b1) * dw
        v = b2 * v + (1 - b2) * (dw * dw)
        return w - step * m / (xp.sqrt(v) + eps), m, v

    m, v = _state(xp, config, "m", w), _state(xp, config, "v", w)
    next_w, config["m"], config["v"] = _apply(xp, kernel, w, dw, m, v)
    config["t"] = t
    return next_w, config


_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}


def get_update_rule(rule: Any) -> Any:
    """An update rule by name ('sgd', 'sgd_momentum', 'rmsprop', 'adam') or a callable."""
    if callable(rule):
        return rule
    if rule not in _RULES:
        raise ValueError(
            f"unknown update_rule {rule!r}: expected one of {sorted(_RULES)} or a callable"
        )
    return _RULES[rule]
