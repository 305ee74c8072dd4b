"""First-order update rules with the CS231n signature (w, dw, config) -> (next_w, config).

The state arrays (velocity, cache, m, v) are created on w's backend, device
and dtype, and every update is a handful of element-wise ops: nothing is
copied to the host.
"""

from __future__ import annotations

from typing import Any

from ._checks import check_shape, namespace

__all__ = ["adam", "get_update_rule", "rmsprop", "sgd", "sgd_momentum"]


def _prepare(w: Any, dw: Any, config: dict | None, **defaults: Any) -> tuple[Any, dict]:
    xp = namespace(w=w, dw=dw)
    check_shape("dw", dw, tuple(w.shape), "(the shape of w)")
    config = {} if config is None else config
    for key, value in defaults.items():
        config.setdefault(key, value)
    return xp, config


def _state(xp: Any, config: dict, key: str, w: Any) -> Any:
    value = config.get(key)
    if value is None:
        return xp.zeros(w.shape, dtype=w.dtype, device=w.device)
    namespace(w=w, **{key: value})
    return value


def sgd(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """w <- w - learning_rate * dw."""
    _, config = _prepare(w, dw, config, learning_rate=1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """v <- momentum * v - learning_rate * dw; w <- w + v."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, momentum=0.9)
    v = config["momentum"] * _state(xp, config, "velocity", w) - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """cache <- decay * cache + (1 - decay) * dw^2; w <- w - lr * dw / (sqrt(cache) + eps)."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    decay = config["decay_rate"]
    cache = decay * _state(xp, config, "cache", w) + (1 - decay) * (dw * dw)
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


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
    m = b1 * _state(xp, config, "m", w) + (1 - b1) * dw
    v = b2 * _state(xp, config, "v", w) + (1 - b2) * (dw * dw)
    # The bias corrections are Python floats: no device scalar per step.
    step = config["learning_rate"] / (1 - b1**t)
    v_scale = 1.0 / (1 - b2**t)
    next_w = w - step * m / (xp.sqrt(v * v_scale) + config["epsilon"])
    config.update(m=m, v=v, t=t)
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
