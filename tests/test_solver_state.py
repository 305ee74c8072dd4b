"""``Solver.state_dict()`` / ``load_state_dict()``: the whole training state, plain and
checked, from which a new Solver continues bit-identically."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers.data import get_digits_data
from xplayers.models import FullyConnectedNet
from xplayers.solver import Solver

KEYS = {
    "epoch", "iteration", "num_train", "rng", "loss_history", "train_acc_history",
    "val_acc_history", "acc_iterations", "best_val_acc", "optim_configs", "best_params",
    "best_norm_params",
}  # fmt: skip


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    """120 training rows: 6 iterations per epoch at batch 20."""
    d = get_digits_data(image=False)
    return {"X_train": d["X_train"][:120], "y_train": d["y_train"][:120],
            "X_val": d["X_val"][:50], "y_val": d["y_val"][:50]}  # fmt: skip


def _solver(backend, data, solver_seed=3, num_epochs=1) -> Solver:
    """bn + seeded dropout + adam + lr decay + subsampled train accuracy: every state."""
    model = FullyConnectedNet(
        [16, 12], input_dim=64, num_classes=10, normalization="batchnorm", dropout=0.8,
        weight_scale=0.1, seed=7, **backend.place,
    )  # fmt: skip
    return Solver(
        model, data, update_rule="adam", optim_config={"learning_rate": 5e-3}, lr_decay=0.9,
        batch_size=20, num_epochs=num_epochs, num_train_samples=30, seed=solver_seed,
        verbose=False,
    )  # fmt: skip


def _moved(source: Solver, target: Solver) -> Solver:
    """``target`` given ``source``'s model state and solver state (its own params are
    scrambled first: the state must win)."""
    target.model.params = {k: v * 2 for k, v in target.model.params.items()}
    target.model.load_state_dict(source.model.state_dict())
    target.load_state_dict(source.state_dict())
    _assert_same(target.state_dict(), source.state_dict())
    return target


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Equal structures: arrays bit for bit (on the host), everything else by ==."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif backends.is_array(a):
        np.testing.assert_array_equal(backends.to_numpy(a), backends.to_numpy(b), err_msg=where)
    else:
        assert type(a) is type(b) and a == b, where


def test_a_restored_solver_continues_bit_identically(backend, small) -> None:
    """Steps by hand, then an epoch, then two more: once in one Solver, once moved
    through state dicts into new Solvers (of another sampling seed) at each pause. The
    model's seed (its dropout streams) is an argument of the model, not state."""
    reference = _solver(backend, small)
    for _ in range(3):
        reference.step()
    reference.train()
    reference.num_epochs = 3
    reference.train()

    first = _solver(backend, small)
    for _ in range(3):
        first.step()
    second = _moved(first, _solver(backend, small, solver_seed=99))
    second.train()
    assert second.best_params and second.val_acc_history  # checks happened: all is state
    third = _moved(second, _solver(backend, small, solver_seed=98, num_epochs=3))
    third.train()

    assert len(third.loss_history) == 18 and third.epoch == 3
    _assert_same(third.state_dict(), reference.state_dict())
    _assert_same(third.model.state_dict(), reference.model.state_dict())


def test_the_state_is_plain_values_and_device_copies(backend, small) -> None:
    solver = _solver(backend, small)
    solver.train()
    state = solver.state_dict()
    assert set(state) == KEYS
    plain = {k: v for k, v in state.items() if k not in ("optim_configs", "best_params",
                                                         "best_norm_params")}  # fmt: skip
    assert json.loads(json.dumps(plain)) == plain  # numbers, lists and dicts only
    assert state["rng"]["batch"]["bit_generator"] == "PCG64"
    assert state["num_train"] == 120 and state["iteration"] == 6 and state["epoch"] == 1
    arrays = [
        *(v for c in state["optim_configs"].values() for v in c.values() if backends.is_array(v)),
        *state["best_params"].values(),
        *(v for layer in state["best_norm_params"] for v in layer.values()),
    ]
    assert len(arrays) == 2 * 10 + 10 + 2 * 2  # 10 params: adam's m and v, best; 2 bn layers
    param = solver.model.params["W1"]
    for a in arrays:
        assert backends.backend_of(a) == backend.name
        assert backends.device_of(a) == backends.device_of(param)
    assert state["optim_configs"]["W1"]["t"] == 6
    # Copies: training on changes neither the state taken nor one given.
    m = backend.numpy(state["optim_configs"]["W1"]["m"]).copy()
    given = _solver(backend, small)
    given.model.load_state_dict(solver.model.state_dict())
    given.load_state_dict(state)
    solver.step()
    given.step()
    np.testing.assert_array_equal(backend.numpy(state["optim_configs"]["W1"]["m"]), m)
    live = backend.numpy(given.optim_configs["W1"]["m"])
    assert not np.array_equal(live, m)
    np.testing.assert_array_equal(live, backend.numpy(solver.optim_configs["W1"]["m"]))


def _set(*path: Any, value: Any):
    def edit(state: dict) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _drop(key: str):
    return lambda state: state.pop(key)


BAD_STATES = {
    "not_a_dict": (None, TypeError, r"state must be a dict"),
    "missing_key": (_drop("rng"), KeyError, r"state lacks \['rng'\]"),
    "unknown_key": (_set("extra", value=1), KeyError, r"state has unknown keys \['extra'\]"),
    "negative_epoch": (_set("epoch", value=-1), ValueError, r"state\['epoch'\] must be an int"),
    "float_iteration": (_set("iteration", value=2.5), TypeError, r"state\['iteration'\]"),
    "history_text": (_set("loss_history", 0, value="x"), TypeError, r"\['loss_history'\]\[0\]"),
    "histories_differ": (_set("acc_iterations", value=[]), ValueError, "differ in length"),
    "config_lacks_param": (
        lambda s: s["optim_configs"].pop("b2"), KeyError, r"\['optim_configs'\] lacks \['b2'\]",
    ),
    "state_array_shape": (
        _set("optim_configs", "W1", "m", value=np.zeros((2, 2), np.float32)),
        ValueError, r"\['optim_configs'\]\['W1'\]\['m'\] must be float32 of shape \(64, 16\)",
    ),
    "foreign_state_array": (
        _set("optim_configs", "W1", "velocity", value=np.zeros((64, 16), np.float32)),
        KeyError, r"\['W1'\]\['velocity'\]: update rule 'adam' keeps the arrays \('m', 'v'\)",
    ),
    "best_param_dtype": (
        _set("best_params", "b1", value=np.zeros(16)),
        ValueError, r"\['best_params'\]\['b1'\] must be float32 of shape \(16,\)",
    ),
    "best_norm_layers": (
        lambda s: s["best_norm_params"].pop(), ValueError, r"has 1 layers, the model 2",
    ),
    "rng_inc": (
        _set("rng", "eval", "state", "inc", value=-1),
        ValueError, r"state\['rng'\]\['eval'\]\['state'\]\['inc'\] must be an integer in",
    ),
    "rng_kind": (
        _set("rng", "batch", "bit_generator", value="MT19937"), ValueError, "PCG64",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_load_state_dict_refuses_a_bad_state_naming_the_key(small, numpy_case, case) -> None:
    edit, error, message = BAD_STATES[case]
    source = _solver(numpy_case, small)
    source.train()
    state = None if edit is None else copy.deepcopy(source.state_dict())
    if edit is not None:
        edit(state)
    target = _solver(numpy_case, small, solver_seed=5)
    before = target.state_dict()
    with pytest.raises(error, match=message):
        target.load_state_dict(state)
    _assert_same(target.state_dict(), before)  # nothing was half-loaded


def test_a_state_of_other_training_data_warns(small, numpy_case) -> None:
    source = _solver(numpy_case, small)
    source.step()
    fewer = {**small, "X_train": small["X_train"][:100], "y_train": small["y_train"][:100]}
    target = _solver(numpy_case, fewer)
    with pytest.warns(UserWarning, match=r"trained on 120 rows of X_train.*X_train has 100"):
        target.load_state_dict(source.state_dict())
    assert target.iteration == 1
