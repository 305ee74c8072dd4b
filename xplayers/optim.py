"""First-order update rules with the CS231n signature (w, dw, config) -> (next_w, config).

The state arrays (velocity, cache, m, v) live on w's backend, device and
dtype, and nothing is copied to the host. Each rule is defined once, as a
``backends.UpdateFormula`` in ``FORMULAS`` (its typed scalars, its state, one
statement per array it writes), and runs one of three ways, by what w's
library can do:

- CuPy: that formula compiled into one fused kernel (``backends.fused_update``);
- arrays that cannot be written (JAX): the formula's statements evaluated with
  the namespace (``UpdateFormula.evaluate``); the state is returned in a new
  config and the caller's config is left as it was. The config's numbers
  (learning rate, ``t``, betas) may be 0-d arrays, traced ones inside
  ``jax.jit``: nothing here reads them back to the host;
- elsewhere: a generic chain of in-place standard operations with the same
  arithmetic (the tests check it against the formula), which updates the
  state arrays in place (they belong to the optimizer).

The parameter itself is never written: each rule returns a new next_w. Where
the backend's work policy says so (host memory), large parameters are updated
in row blocks that fit in cache, so the dozen element-wise passes of Adam run
from cache instead of from memory; the blocks run one after another on the
calling thread (a dozen short passes per block hand the GIL back and forth too
often to gain from a second core: docs/performance.md has the measurement). On
a GPU the chain runs once over the whole array.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from . import backends
from ._checks import check_shape, namespace

__all__ = [
    "FORMULAS",
    "UPDATE_RULES",
    "AdamScalars",
    "MomentumScalars",
    "RMSPropScalars",
    "SGDScalars",
    "adam",
    "decay_learning_rate",
    "get_update_rule",
    "initial_config",
    "rmsprop",
    "sgd",
    "sgd_momentum",
]


class SGDScalars(NamedTuple):
    """SGD's scalar: the learning rate."""

    lr: float


class MomentumScalars(NamedTuple):
    """SGD+momentum's scalars: the momentum and the learning rate."""

    mu: float
    lr: float


class RMSPropScalars(NamedTuple):
    """RMSProp's scalars: the decay rate, the learning rate and epsilon."""

    decay: float
    lr: float
    eps: float


class AdamScalars(NamedTuple):
    """Adam's scalars at step t, the bias corrections folded into eps and step:
    with c = sqrt(1 - beta2^t), eps = epsilon * c and step = learning_rate * c / (1 - beta1^t)."""

    b1: float
    b2: float
    eps: float
    step: float


def _formula(
    name: str, scalars: type, state: tuple[str, ...], **statements: str
) -> backends.UpdateFormula:
    """Rule ``name``'s formula: ``scalars``' fields, then one statement per array written."""
    return backends.UpdateFormula(name, scalars._fields, state, tuple(statements.items()))


# The statements use the part of Python that is also C (the kernel's source).
_SGD = _formula("sgd", SGDScalars, (), next_w="w - lr * dw")
_SGD_MOMENTUM = _formula(
    "sgd_momentum",
    MomentumScalars,
    ("velocity",),
    velocity="mu * velocity - lr * dw",
    next_w="w + velocity",
)
_RMSPROP = _formula(
    "rmsprop",
    RMSPropScalars,
    ("cache",),
    cache="cache + (1 - decay) * (dw * dw - cache)",
    next_w="w - lr * (dw / (sqrt(cache) + eps))",
)
_ADAM = _formula(
    "adam",
    AdamScalars,
    ("m", "v"),
    m="m + (1 - b1) * (dw - m)",
    v="v + (1 - b2) * (dw * dw - v)",
    next_w="w - step * (m / (sqrt(v) + eps))",
)

#: Each built-in rule's default config numbers (CS231n's), set by its first step.
DEFAULTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "sgd": MappingProxyType({"learning_rate": 1e-2}),
        "sgd_momentum": MappingProxyType({"learning_rate": 1e-2, "momentum": 0.9}),
        "rmsprop": MappingProxyType({"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
        "adam": MappingProxyType(
            {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 0}
        ),
    }
)

#: Each rule's formula by name, the one definition of the rules' names and
#: arithmetic; the state names are the config keys of the state arrays.
FORMULAS: Mapping[str, backends.UpdateFormula] = MappingProxyType(
    {f.name: f for f in (_SGD, _SGD_MOMENTUM, _RMSPROP, _ADAM)}
)
#: The rule names ``get_update_rule`` (and the command line) take.
UPDATE_RULES: tuple[str, ...] = tuple(FORMULAS)


def _prepare(w: Any, dw: Any, config: dict | None, rule: str) -> tuple[Any, dict]:
    """w's namespace and the config with ``rule``'s defaults filled in: the caller's
    dict where the state is updated in place, a copy where it is returned instead."""
    xp = namespace(w=w, dw=dw)
    check_shape("dw", dw, tuple(w.shape), "(the shape of w)")
    config = {} if config is None else config
    if not _writes_in_place(w):
        config = dict(config)
    for key, value in DEFAULTS[rule].items():
        config.setdefault(key, value)
    return xp, config


#: Whether arrays of a type can be written, by type: asked per parameter per step.
_WRITABLE: dict[type, bool] = {}


def _writes_in_place(w: Any) -> bool:
    kind = type(w)
    found = _WRITABLE.get(kind)
    if found is None:
        found = _WRITABLE[kind] = backends.writes_in_place(w)
    return found


def _number(value: Any) -> Any:
    """A config number as the arithmetic takes it: a float, or a 0-d array left on its
    device (inside ``jax.jit`` a traced one, which cannot be read back)."""
    # Python's own first: the ABC check (numbers.Real, for NumPy scalars) is slower.
    number = isinstance(value, (int, float)) or isinstance(value, numbers.Real)
    return float(value) if number else value


def _state(xp: Any, config: dict, key: str, w: Any) -> Any:
    """The state array ``config[key]``; zeros of w's shape, dtype and device at first.

    The update may write into it: it belongs to the optimizer, not the caller.
    """
    value = config.get(key)
    if value is None:
        return xp.zeros_like(w)
    namespace(w=w, **{key: value})
    check_shape(f"config[{key!r}]", value, tuple(w.shape), "(the shape of w)")
    return value


def initial_config(rule: str, w: Any, config: dict | None) -> dict:
    """A copy of ``config`` as built-in ``rule``'s first step would leave it before its
    arithmetic: defaults filled in, zero state arrays like w. A compiled step starts
    from it, so its inputs have the same structure at every step."""
    _, config = _prepare(w, w, dict(config or {}), rule)
    xp = namespace(w=w)
    for key in FORMULAS[rule].state:
        config[key] = _state(xp, config, key, w)
    return config


def _update(
    xp: Any,
    formula: backends.UpdateFormula,
    kernel: Callable[..., Any],
    scalars: tuple,
    w: Any,
    dw: Any,
    config: dict,
) -> Any:
    """next_w of ``formula``, the state arrays ``config[name]`` (zeros at first) updated:
    evaluated functionally and replaced where w cannot be written; else in place, by
    one fused kernel where w's library has one, else by ``kernel``, the generic chain
    of the same arithmetic taking (w, dw, *state) (see ``_apply``)."""
    state = []
    for key in formula.state:
        config[key] = _state(xp, config, key, w)
        state.append(config[key])
    if not _writes_in_place(w):
        next_w, new_state = formula.evaluate(xp, w, dw, state, scalars)
        config.update(zip(formula.state, new_state, strict=True))
        return next_w
    fused = backends.fused_update(formula, w, dw, state, scalars)
    return _apply(xp, kernel, w, dw, *state) if fused is None else fused


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
    xp, config = _prepare(w, dw, config, "sgd")
    s = SGDScalars(lr=_number(config["learning_rate"]))

    def kernel(w: Any, dw: Any) -> Any:
        return w - s.lr * dw

    return _update(xp, _SGD, kernel, s, w, dw, config), config


def sgd_momentum(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """v <- momentum * v - learning_rate * dw; w <- w + v."""
    xp, config = _prepare(w, dw, config, "sgd_momentum")
    s = MomentumScalars(mu=_number(config["momentum"]), lr=_number(config["learning_rate"]))

    def kernel(w: Any, dw: Any, v: Any) -> Any:
        v *= s.mu
        v -= s.lr * dw
        return w + v

    return _update(xp, _SGD_MOMENTUM, kernel, s, w, dw, config), config


def rmsprop(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """cache <- decay * cache + (1 - decay) * dw^2; w <- w - lr * dw / (sqrt(cache) + eps)."""
    xp, config = _prepare(w, dw, config, "rmsprop")
    s = RMSPropScalars(
        decay=_number(config["decay_rate"]),
        lr=_number(config["learning_rate"]),
        eps=_number(config["epsilon"]),
    )

    def kernel(w: Any, dw: Any, cache: Any) -> Any:
        _moving_average(cache, _squared_minus(dw, cache), s.decay)
        return _normalized_step(xp, w, dw, cache, s.eps, s.lr)

    return _update(xp, _RMSPROP, kernel, s, w, dw, config), config


def adam(w: Any, dw: Any, config: dict | None = None) -> tuple[Any, dict]:
    """Adam with bias correction; t is incremented before it is used.

    m <- b1 m + (1 - b1) dw; v <- b2 v + (1 - b2) dw^2;
    w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """
    xp, config = _prepare(w, dw, config, "adam")
    b1, b2 = _number(config["beta1"]), _number(config["beta2"])
    t = config["t"] + 1
    # Python floats (0-d arrays where the config holds them), so no device scalar per
    # step; with c = sqrt(1 - b2^t),
    # lr_t * m / (sqrt(v) / c + eps) = (lr_t * c) * m / (sqrt(v) + eps * c).
    c = (1 - b2**t) ** 0.5
    s = AdamScalars(
        b1=b1,
        b2=b2,
        eps=_number(config["epsilon"]) * c,
        step=_number(config["learning_rate"]) / (1 - b1**t) * c,
    )

    def kernel(w: Any, dw: Any, m: Any, v: Any) -> Any:
        _moving_average(m, dw - m, s.b1)
        _moving_average(v, _squared_minus(dw, v), s.b2)
        return _normalized_step(xp, w, m, v, s.eps, s.step)

    next_w = _update(xp, _ADAM, kernel, s, w, dw, config)
    config["t"] = t
    return next_w, config


_RULES: dict[str, Callable[..., tuple[Any, dict]]] = {
    f.name: rule
    for f, rule in ((_SGD, sgd), (_SGD_MOMENTUM, sgd_momentum), (_RMSPROP, rmsprop), (_ADAM, adam))
}
#: The state arrays (shaped like w) each built-in rule keeps in its config; the
#: rest of a config is numbers (``t``, Adam's step count, an integer).
STATE_ARRAYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {name: f.state for name, f in FORMULAS.items()}
)
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
