"""Update rules: CS231n values, state on the parameter's backend and dtype."""

from __future__ import annotations

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import optim
from xplayers.gradcheck import rel_error

RULES = [optim.sgd, optim.sgd_momentum, optim.rmsprop, optim.adam]


def _linspace(backend, n, m, lo, hi, dtype="float64"):
    return backend.asarray(np.linspace(lo, hi, num=n * m).reshape(n, m), dtype)


def _reference_step(rule, w, dw, config):
    """Independent numpy formulas for one step from the given state."""
    lr = config["learning_rate"]
    if rule is optim.sgd:
        return w - lr * dw
    if rule is optim.sgd_momentum:
        v = config["momentum"] * config["velocity"] - lr * dw
        return w + v
    if rule is optim.rmsprop:
        cache = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
        return w - lr * dw / (np.sqrt(cache) + 1e-8)
    t = config["t"] + 1
    m = 0.9 * config["m"] + 0.1 * dw
    v = 0.999 * config["v"] + 0.001 * dw**2
    mhat, vhat = m / (1 - 0.9**t), v / (1 - 0.999**t)
    return w - lr * mhat / (np.sqrt(vhat) + 1e-8)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_step_matches_formula_from_nonzero_state(rule, backend) -> None:
    n, m = 4, 5
    host_w = np.linspace(-0.4, 0.6, num=n * m).reshape(n, m)
    host_dw = np.linspace(-0.6, 0.4, num=n * m).reshape(n, m)
    state = np.linspace(0.6, 0.9, num=n * m).reshape(n, m)
    config = {"learning_rate": 1e-2, "momentum": 0.9, "decay_rate": 0.99, "t": 5}
    host_config = dict(config, velocity=state, cache=state, m=state, v=state * 0.5)
    keys = {"sgd": [], "sgd_momentum": ["velocity"], "rmsprop": ["cache"], "adam": ["m", "v"]}
    dev_config = dict(config)
    for k in keys[rule.__name__]:
        dev_config[k] = backend.asarray(host_config[k])
    expected = _reference_step(rule, host_w, host_dw, host_config)
    next_w, new_config = rule(backend.asarray(host_w), backend.asarray(host_dw), dev_config)
    assert rel_error(next_w, expected) < 1e-12
    if rule is optim.adam:
        assert new_config["t"] == 6


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_state_lives_on_the_parameter_backend_and_dtype(rule, backend) -> None:
    w = _linspace(backend, 3, 4, -1, 1, "float32")
    dw = _linspace(backend, 3, 4, 1, -1, "float32")
    config = None
    for _ in range(3):
        w, config = rule(w, dw, config)
    assert w.dtype == backend.xp.float32 and backends.backend_of(w) == backend.name
    for key in ("velocity", "cache", "m", "v"):
        if key in config:
            assert config[key].dtype == backend.xp.float32
            assert backends.backend_of(config[key]) == backend.name


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_minimises_a_quadratic(rule, backend) -> None:
    """Each rule drives f(w) = 0.5 * |w - 3|^2 downhill."""
    w = backend.asarray(np.zeros(5))
    config = {"learning_rate": 0.05}
    start = 0.5 * 5 * 9.0
    for _ in range(50):
        w, config = rule(w, w - 3.0, config)
    final = 0.5 * float(backend.xp.sum((w - 3.0) ** 2))
    assert final < 0.5 * start


def test_defaults_are_cs231n() -> None:
    w, dw = np.ones(2), np.ones(2)
    assert optim.sgd(w, dw)[1]["learning_rate"] == 1e-2
    assert optim.sgd_momentum(w, dw)[1]["momentum"] == 0.9
    cfg = optim.rmsprop(w, dw)[1]
    assert (cfg["decay_rate"], cfg["epsilon"]) == (0.99, 1e-8)
    cfg = optim.adam(w, dw)[1]
    assert (cfg["learning_rate"], cfg["beta1"], cfg["beta2"], cfg["t"]) == (1e-3, 0.9, 0.999, 1)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"dw must have shape \(2,\)"):
        optim.sgd(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="unknown update_rule 'adamw'"):
        optim.get_update_rule("adamw")
    assert optim.get_update_rule("adam") is optim.adam


@pytest.mark.parametrize("rule", [optim.sgd_momentum, optim.rmsprop, optim.adam], ids=repr)
def test_cache_blocked_update_equals_whole_array_update(rule, backend, host_policy) -> None:
    """On a CPU large params are updated in row blocks; the numbers must not change."""
    rng = np.random.default_rng(4)
    host_w, host_dw = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))

    def three_steps():
        w, config = backend.asarray(host_w), {"learning_rate": 1e-2}
        for _ in range(3):
            w, config = rule(w, backend.asarray(host_dw), config)
        return backend.numpy(w), {k: backend.numpy(v) for k, v in config.items() if v is not None}

    whole = three_steps()
    host_policy(block_elements=10)  # 2 rows of 5 per block, 4 blocks (host memory)
    policy = backends.work_policy(backend.asarray(host_w))
    assert policy.block_rows(host_w.shape) == (None if policy.block_elements is None else 2)
    blocked = three_steps()
    np.testing.assert_array_equal(blocked[0], whole[0])
    for key, value in whole[1].items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(blocked[1][key], value, err_msg=key)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_state_is_updated_in_place_or_returned_as_the_arrays_allow(rule, backend) -> None:
    """Where arrays can be written the rule updates its state arrays in place (they
    belong to the optimizer, and the config is the caller's); where they cannot (JAX)
    it returns new ones in a new config and the caller's config is left as it was."""
    w, dw = _linspace(backend, 3, 4, -1, 1), _linspace(backend, 3, 4, 1, -1)
    state = np.linspace(0.1, 0.4, num=12).reshape(3, 4)
    keys = optim.STATE_ARRAYS[rule.__name__]
    config = {"learning_rate": 1e-2, **{k: backend.asarray(state.copy()) for k in keys}}
    given = dict(config)
    _, new_config = rule(w, dw, config)
    for k in keys:
        assert not np.array_equal(backend.numpy(new_config[k]), state), k
    if backends.writes_in_place(w):
        assert new_config is config
        assert all(config[k] is given[k] for k in keys)  # the same arrays, written
    else:
        assert new_config is not config and config == given
        for k in keys:
            np.testing.assert_array_equal(backend.numpy(config[k]), state)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_config_numbers_may_be_traced_arrays(rule) -> None:
    """Inside ``jax.jit`` the learning rate, the betas and Adam's t are traced 0-d
    arrays: the rule computes with them (no float() of them) as it does with numbers."""
    if backends.unavailable_reason("jax") is not None:
        pytest.skip(f"jax: {backends.unavailable_reason('jax')}")
    import jax

    w = backends.asarray(np.linspace(-1, 1, num=12).reshape(3, 4), "jax", "float32")
    dw = backends.asarray(np.linspace(1, -1, num=12).reshape(3, 4), "jax", "float32")
    numbers = {"learning_rate": 3e-2, "momentum": 0.8, "decay_rate": 0.9, "beta1": 0.8, "t": 4}

    def step(w, dw, numbers):
        next_w, config = rule(w, dw, dict(numbers))
        return next_w, {k: config[k] for k in optim.STATE_ARRAYS[rule.__name__]}

    traced = jax.jit(step)(w, dw, numbers)
    eager = step(w, dw, numbers)
    assert traced[0].dtype == w.dtype  # the weakly typed numbers take w's dtype
    for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(eager), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
