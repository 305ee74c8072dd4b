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
    """The state array ``config[key]``, zeros of w's shape, dtype and device at first."""
    value = config.get(key)
    if value is None:
        value = xp.zeros(w.shape, dtype=w.dtype, device=w.device)
        config[key] = value
    else:
        namespace(w=w, **{key: value})
    return value


# The state arrays belong to the optimizer, so they are updated in place with
# the standard's augmented assignments: fewer temporaries, the same numbers.
# Parameters are never written: each rule returns a new next_w.


def sgd(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """w <- w - learning_rate * dw."""
    _, config = _prepare(w, dw, config, learning_rate=1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """v <- momentum * v - learning_rate * dw; w <- w + v."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, momentum=0.9)
    v = _state(xp, config, "velocity", w)
    v *= config["momentum"]
    v -= config["learning_rate"] * dw
    return w + v, config


def rmsprop(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """cache <- decay * cache + (1 - decay) * dw^2; w <- w - lr * dw / (sqrt(cache) + eps)."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    decay = config["decay_rate"]
    cache = _state(xp, config, "cache", w)
    cache *= decay
    cache += (1 - decay) * (dw * dw)
    denom = xp.sqrt(cache)
    denom += config["epsilon"]
    return w - config["learning_rate"] * dw / denom, config


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
    m = _state(xp, config, "m", w)
    v = _state(xp, config, "v", w)
    m *= b1
    m += (1 - b1) * dw
    v *= b2
    v += (1 - b2) * (dw * dw)
    # The bias corrections are Python floats: no device scalar per step, and
    # sqrt(v / c) = sqrt(v) / sqrt(c) folds the correction into one scaling.
    denom = xp.sqrt(v)
    denom *= 1.0 / (1 - b2**t) ** 0.5
    denom += config["epsilon"]
    update = m / denom
    update *= config["learning_rate"] / (1 - b1**t)
    config["t"] = t
    return w - update, config


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
