"""First-order update rules with the CS231n signature (w, dw, config) -> (next_w, config).

The state arrays (velocity, cache, m, v) live on w's backend, device and
dtype, and nothing is copied to the host; they belong to the optimizer and
are updated in place. Each rule is written once as an element-wise kernel on
(w, dw, state...); the parameter itself is never written: each rule returns
a new next_w. Where the backend's work policy says so (host memory), large
parameters are updated in row blocks that fit in cache, so the dozen
element-wise passes of Adam run from cache instead of from memory; the
blocks run one after another on the calling thread (a dozen short passes
per block hand the GIL back and forth too often to gain from a second
core: the README's performance section has the measurement). On a GPU the
kernel runs once over the whole array, and on CuPy SGD+momentum, RMSProp
and Adam are each one fused kernel (``backends.fused_update``) with the
same arithmetic as the generic chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import backends
from ._checks import check_shape, namespace

__all__ = ["adam", "decay_learning_rate", "get_update_rule", "rmsprop", "sgd", "sgd_momentum"]


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


def _apply(xp: Any, kernel: Callable[..., Any], w: Any, dw: Any, *state: Any) -> Any:
    """next_w = kernel(w, dw, *state), the kernel updating ``state`` in place.

    Where the work policy blocks, large parameters go through in cache-sized
    row blocks, one after another. A block
    of a state array is a view on libraries whose slices are views (numpy,
    torch, cupy), so the kernel's in-place update lands in the state array;
    elsewhere (the standard leaves it open) the block is written back.
    """
    rows = backends.work_policy(w).block_rows(tuple(w.shape))
    if w.ndim == 0 or rows is None or rows >= w.shape[0]:
        return kernel(w, dw, *state)
    write_back = not backends.slices_are_views(w)
    next_w = xp.empty_like(w)
    n = w.shape[0]

    for start in range(0, n, rows):
        block = (slice(start, min(start + rows, n)), ...)  # the standard has no past-end slices
        blocks = [s[block] for s in state]
        next_w[block] = kernel(w[block], dw[block], *blocks)
        if write_back:
            for s, b in zip(state, blocks, strict=True):
                s[block] = b
    return next_w


def _moving_average(avg: Any, delta: Any, keep: float) -> None:
    """avg <- keep * avg + (1 - keep) * x, in place, given delta = x - avg.

    ``delta`` is a scratch array the caller gives up (it is overwritten), so
    the update costs two passes beyond computing it and no other temporary.
    """
    delta *= 1 - keep
    avg += delta


def _squared_minus(dw: Any, avg: Any) -> Any:
    """dw^2 - avg as a fresh array (the delta of a moving average of dw^2)."""
    d = dw * dw
    d -= avg
    return d


def _normalized_step(xp: Any, w: Any, num: Any, sq_avg: Any, eps: float, lr: float) -> Any:
    """w - lr * num / (sqrt(sq_avg) + eps), the step RMSProp and Adam share."""
    d = xp.sqrt(sq_avg)
    d += eps
    d = num / d
    d *= lr
    return w - d


def sgd(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """w <- w - learning_rate * dw."""
    _, config = _prepare(w, dw, config, learning_rate=1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """v <- momentum * v - learning_rate * dw; w <- w + v."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, momentum=0.9)
    mu, lr = config["momentum"], config["learning_rate"]

    def kernel(w: Any, dw: Any, v: Any) -> Any:
        v *= mu
        v -= lr * dw
        return w + v

    v = config["velocity"] = _state(xp, config, "velocity", w)
    fused = backends.fused_update("sgd_momentum", w, dw, (v,), mu=mu, lr=lr)
    return (_apply(xp, kernel, w, dw, v) if fused is None else fused), config


def rmsprop(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """cache <- decay * cache + (1 - decay) * dw^2; w <- w - lr * dw / (sqrt(cache) + eps)."""
    xp, config = _prepare(w, dw, config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    decay, lr, eps = config["decay_rate"], config["learning_rate"], config["epsilon"]

    def kernel(w: Any, dw: Any, cache: Any) -> Any:
        _moving_average(cache, _squared_minus(dw, cache), decay)
        return _normalized_step(xp, w, dw, cache, eps, lr)

    cache = config["cache"] = _state(xp, config, "cache", w)
    fused = backends.fused_update("rmsprop", w, dw, (cache,), decay=decay, lr=lr, eps=eps)
    return (_apply(xp, kernel, w, dw, cache) if fused is None else fused), config


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

    def kernel(w: Any, dw: Any, m: Any, v: Any) -> Any:
        _moving_average(m, dw - m, b1)
        _moving_average(v, _squared_minus(dw, v), b2)
        return _normalized_step(xp, w, m, v, eps, step)

    m = config["m"] = _state(xp, config, "m", w)
    v = config["v"] = _state(xp, config, "v", w)
    next_w = backends.fused_update("adam", w, dw, (m, v), b1=b1, b2=b2, eps=eps, step=step)
    if next_w is None:
        next_w = _apply(xp, kernel, w, dw, m, v)
    config["t"] = t
    return next_w, config


_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}
#: The state arrays (shaped like w) each built-in rule keeps in its config; the
#: rest of a config is numbers (``t``, Adam's step count, an integer).
STATE_ARRAYS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "sgd_momentum": ("velocity",),
    "rmsprop": ("cache",),
    "adam": ("m", "v"),
}
#: Config numbers that must lie in [low, high) for the arithmetic to stay real and
#: finite: Adam divides by 1 - beta1**t and takes the root of 1 - beta2**t.
CONFIG_RANGES: dict[str, tuple[float, float]] = {"beta1": (0.0, 1.0), "beta2": (0.0, 1.0)}


def decay_learning_rate(configs: Iterable[dict], factor: float) -> None:
    """Multiply each config's ``learning_rate`` by ``factor`` (the Solver's ``lr_decay``
    after each epoch); a config without one (a callable rule's) is left alone."""
    for config in configs:
        # The built-in rules have stored their default rate by their first step.
        if "learning_rate" in config:
            config["learning_rate"] *= factor


def get_update_rule(rule: Any) -> Any:
    """An update rule by name ('sgd', 'sgd_momentum', 'rmsprop', 'adam') or a callable."""
    if callable(rule):
        return rule
    if rule not in _RULES:
        raise ValueError(
            f"unknown update_rule {rule!r}: expected one of {sorted(_RULES)} or a callable"
        )
    return _RULES[rule]
