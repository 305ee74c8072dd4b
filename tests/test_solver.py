"""The Solver on real data (the bundled digits): learning, resuming, diverging, parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import checkpoint, optim
from xplayers.data import get_digits_data
from xplayers.models import FullyConnectedNet
from xplayers.solver import Solver, TrainingDiverged


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    return get_digits_data(image=False)


@pytest.fixture(scope="module")
def small(digits) -> dict[str, np.ndarray]:
    """300 training rows: 6 iterations per epoch at batch 50."""
    return {
        "X_train": digits["X_train"][:300],
        "y_train": digits["y_train"][:300],
        "X_val": digits["X_val"][:100],
        "y_val": digits["y_val"][:100],
    }


def _net(backend: str = "numpy", **kwargs) -> FullyConnectedNet:
    settings = dict(input_dim=64, num_classes=10, weight_scale=0.1, seed=0, backend=backend)
    return FullyConnectedNet(kwargs.pop("hidden_dims", [32]), **{**settings, **kwargs})


def _host_params(model) -> dict[str, np.ndarray]:
    return {k: backends.to_numpy(v) for k, v in model.params.items()}


def test_fc_net_learns_digits(digits) -> None:
    model = _net(hidden_dims=[100])
    solver = Solver(
        model, digits, update_rule="adam", optim_config={"learning_rate": 1e-2},
        num_epochs=8, batch_size=50, seed=0, verbose=False,
    )  # fmt: skip
    solver.train()
    assert solver.best_val_acc >= 0.9
    ipe = len(digits["X_train"]) // 50
    assert len(solver.loss_history) == 8 * ipe
    assert all(type(v) is float for v in solver.loss_history)
    # The check after the first iteration, then one per epoch.
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 9
    assert solver.acc_iterations == [1, *(ipe * e for e in range(1, 9))]
    assert solver.best_val_acc == max(solver.val_acc_history)
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(model.params[k], v)
    assert solver.check_accuracy(digits["X_val"], digits["y_val"]) == solver.best_val_acc
    hist = solver.history()
    assert hist["loss_history"] == solver.loss_history
    assert hist["acc_epochs"][0] == 1 / ipe and hist["acc_epochs"][-1] == 8
    assert hist["best_val_acc"] == solver.best_val_acc


@pytest.mark.parametrize(
    "rule, lr", [("sgd", 0.5), ("sgd_momentum", 0.2), ("rmsprop", 3e-3), ("adam", 1e-2)]
)
def test_each_update_rule_lowers_the_loss(small, rule: str, lr: float) -> None:
    solver = Solver(
        _net(), small, update_rule=rule, optim_config={"learning_rate": lr},
        num_epochs=5, batch_size=50, seed=1, verbose=False,
    )  # fmt: skip
    solver.train()
    losses = solver.loss_history
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    assert all(c["learning_rate"] == lr for c in solver.optim_configs.values())


def test_lr_decay_and_per_parameter_configs(small) -> None:
    config = {"learning_rate": 0.1, "momentum": 0.5}
    solver = Solver(
        _net(), small, update_rule="sgd_momentum", optim_config=config, lr_decay=0.5,
        num_epochs=3, batch_size=50, verbose=False,
    )  # fmt: skip
    solver.train()
    assert config == {"learning_rate": 0.1, "momentum": 0.5}  # the caller's dict untouched
    velocities = [id(c["velocity"]) for c in solver.optim_configs.values()]
    assert len(set(velocities)) == len(velocities)
    assert all(
        c["learning_rate"] == pytest.approx(0.1 * 0.5**3) for c in solver.optim_configs.values()
    )


def _resume_run(backend, data, path, **extra):
    """bn + seeded dropout + adam + lr decay + subsampled train accuracy: every state."""
    model = _net(
        **backend.place, hidden_dims=[32, 16], normalization="batchnorm", dropout=0.8, seed=7
    )
    settings = dict(
        update_rule="adam", optim_config={"learning_rate": 5e-3}, lr_decay=0.9, batch_size=50,
        num_epochs=4, num_train_samples=100, seed=3, verbose=False,
    )  # fmt: skip
    return model, Solver(model, data, checkpoint_name=path, **{**settings, **extra})


def _assert_same_run(a: Solver, b: Solver) -> None:
    assert a.loss_history == b.loss_history
    assert a.train_acc_history == b.train_acc_history
    assert a.val_acc_history == b.val_acc_history
    assert a.acc_iterations == b.acc_iterations
    assert a.best_val_acc == b.best_val_acc and a.epoch == b.epoch
    for k in a.model.params:
        np.testing.assert_array_equal(
            backends.to_numpy(a.model.params[k]), backends.to_numpy(b.model.params[k]), err_msg=k
        )
    for sa, sb in zip(a.model.norm_params, b.model.norm_params, strict=True):
        for k in ("running_mean", "running_var"):
            np.testing.assert_array_equal(backends.to_numpy(sa[k]), backends.to_numpy(sb[k]))
    for k, ca in a.optim_configs.items():
        np.testing.assert_array_equal(
            backends.to_numpy(ca["m"]), backends.to_numpy(b.optim_configs[k]["m"])
        )
        assert ca["t"] == b.optim_configs[k]["t"]


def test_resume_from_checkpoint_repeats_the_run_exactly(backend, small, tmp_path) -> None:
    _, full = _resume_run(backend, small, tmp_path / "run")
    full.train()
    kept = sorted(p.name for p in tmp_path.iterdir())
    # One file per check, as CS231n named them; no temp files left.
    assert kept == [f"run_epoch_{e}.safetensors" for e in range(5)]
    assert full.last_checkpoint == tmp_path / "run_epoch_4.safetensors"

    model, _ = _resume_run(backend, small, None)
    model.params = {k: v * 2 for k, v in model.params.items()}  # the checkpoint must win
    resumed = Solver.resume(tmp_path / "run_epoch_2.safetensors", model, small, verbose=False)
    assert resumed.epoch == 2 and resumed.iteration == 12
    assert resumed.batch_size == 50 and resumed.lr_decay == 0.9  # settings from the file
    resumed.train()
    _assert_same_run(full, resumed)


def test_load_checkpoint_extends_a_shorter_run(numpy_case, small, tmp_path) -> None:
    name = tmp_path / "ckpt" / "short"  # the folder is created
    _, short = _resume_run(numpy_case, small, name, num_epochs=2, keep_checkpoints=False)
    short.train()
    assert sorted(p.name for p in name.parent.iterdir()) == ["short_epoch_2.safetensors"]
    _, full = _resume_run(numpy_case, small, None)
    full.train()
    _, longer = _resume_run(numpy_case, small, None)
    longer.load_checkpoint(short.last_checkpoint)
    longer.train()
    _assert_same_run(full, longer)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_divergence_stops_restores_best_and_keeps_checkpoint(small, tmp_path) -> None:
    path = tmp_path / "run_epoch_1.safetensors"
    model = _net()
    # A sane first epoch, then lr_decay multiplies the rate by 1e9: it blows up.
    solver = Solver(
        model, small, update_rule="sgd", optim_config={"learning_rate": 0.1}, lr_decay=1e9,
        num_epochs=5, batch_size=50, seed=0, checkpoint_name=tmp_path / "run", verbose=False,
    )  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"iteration \d+ of 30 \(epoch 2 of 5\)") as info:
        solver.train()
    exc = info.value
    assert isinstance(exc, FloatingPointError)
    assert exc.epoch == 2 and 7 <= exc.iteration <= 12
    assert "best parameters" in str(exc) and "run_epoch_1.safetensors" in str(exc)
    # The model holds the best (finite) params of the checks so far.
    for k, v in solver.best_params.items():
        assert np.all(np.isfinite(model.params[k]))
        np.testing.assert_array_equal(model.params[k], v)
    # The checkpoint is the one written after epoch 1, intact and loadable.
    state = checkpoint.load(path)
    assert state["solver"]["epoch"] == 1 and state["solver"]["iteration"] == 6
    assert all(np.all(np.isfinite(v)) for v in state["model"]["params"].values())
    assert all(math.isfinite(v) for v in state["solver"]["loss_history"])
    fresh = _net(seed=5)
    resumed = Solver.resume(path, fresh, small, verbose=False)
    for k, v in state["model"]["params"].items():
        np.testing.assert_array_equal(fresh.params[k], v)
    assert resumed.val_acc_history == state["solver"]["val_acc_history"]
    val_acc = state["solver"]["val_acc_history"][-1]
    assert resumed.check_accuracy(small["X_val"], small["y_val"]) == val_acc


def test_non_finite_params_are_caught_before_the_checkpoint(small, tmp_path) -> None:
    """Params that turn NaN on an epoch's last update, while every loss was finite."""
    calls = {"n": 0}
    n_params = 4  # W1, b1, W2, b2

    def poisoned_sgd(w, dw, config=None):
        calls["n"] += 1
        next_w, config = optim.sgd(w, dw, config)
        if calls["n"] > 11 * n_params:  # the 12th iteration: last of epoch 2
            next_w = next_w * float("nan")
        return next_w, config

    solver = Solver(_net(), small, update_rule=poisoned_sgd, num_epochs=3, batch_size=50,
                    checkpoint_name=tmp_path / "run", verbose=False)  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"became non-finite by iteration 12") as info:
        solver.train()
    assert info.value.value is None and info.value.epoch == 2
    assert all(math.isfinite(v) for v in solver.loss_history)
    assert not (tmp_path / "run_epoch_2.safetensors").exists()
    state = checkpoint.load(tmp_path / "run_epoch_1.safetensors")
    assert state["solver"]["iteration"] == 6
    assert all(np.all(np.isfinite(v)) for v in state["model"]["params"].values())
    assert all(np.all(np.isfinite(v)) for v in solver.model.params.values())


def test_parity_numpy_vs_other_backends_float64(other_backend, small) -> None:
    runs = []
    for place in ({"backend": "numpy"}, other_backend.place):
        model = _net(**place, hidden_dims=[32, 16], normalization="layernorm", dtype="float64")
        solver = Solver(
            model, small, update_rule="adam", optim_config={"learning_rate": 5e-3},
            num_epochs=3, batch_size=50, seed=4, verbose=False,
        )  # fmt: skip
        solver.train()
        runs.append(solver)
    ref, other = runs
    np.testing.assert_allclose(other.loss_history, ref.loss_history, rtol=1e-8, atol=0)
    assert other.val_acc_history == ref.val_acc_history
    for k, v in ref.model.params.items():
        np.testing.assert_allclose(
            other_backend.numpy(other.model.params[k]), v, rtol=1e-7, atol=1e-10
        )


def test_device_data_gives_the_same_run_as_host_data(other_backend, small) -> None:
    on_device = {k: other_backend.asarray(v) for k, v in small.items()}
    runs = []
    for data in (small, on_device):
        solver = Solver(
            _net(**other_backend.place, dtype="float64"), data, update_rule="adam",
            num_epochs=2, batch_size=50, num_train_samples=64, seed=2, verbose=False,
        )  # fmt: skip
        solver.train()
        runs.append(solver)
    assert runs[0].loss_history == runs[1].loss_history
    assert runs[0].train_acc_history == runs[1].train_acc_history


def test_check_accuracy_matches_a_direct_count(backend, small) -> None:
    model = _net(**backend.place)
    solver = Solver(model, small, verbose=False)
    X, y = small["X_val"], small["y_val"]
    scores = backend.numpy(model.loss(backend.asarray(X, "float32")))
    expected = float(np.mean(np.argmax(scores, axis=1) == y))
    assert solver.check_accuracy(X, y, batch_size=33) == expected
    assert solver.check_accuracy(backend.asarray(X), backend.asarray(y)) == expected
    # A subsample is scored over its own size: labels equal to the predictions
    # score 1, labels shifted off them score 0, whichever rows are drawn.
    predicted = np.argmax(scores, axis=1)
    assert solver.check_accuracy(X, predicted, num_samples=10) == 1.0
    assert solver.check_accuracy(X, (predicted + 1) % scores.shape[1], num_samples=10) == 0.0
    assert (solver.check_accuracy(X, y, num_samples=10) * 10).is_integer()


def test_callable_update_rule_and_resume_needs_it(small, tmp_path) -> None:
    def halved_sgd(w, dw, config=None):
        return optim.sgd(w, dw * 0.5, config)

    solver = Solver(_net(), small, update_rule=halved_sgd, num_epochs=1,
                    checkpoint_name=tmp_path / "c", batch_size=50, verbose=False)  # fmt: skip
    solver.train()
    path = solver.last_checkpoint
    with pytest.raises(ValueError, match="halved_sgd"):
        Solver.resume(path, _net(), small)
    Solver.resume(path, _net(), small, update_rule=halved_sgd, verbose=False).train()


def test_verbose_prints_and_progress_bar(small, capsys) -> None:
    Solver(_net(), small, num_epochs=1, batch_size=50, print_every=2).train()
    out = capsys.readouterr().out  # captured stdout is no terminal: plain prints
    assert "(Iteration 1 / 6) loss:" in out and "(Iteration 3 / 6)" in out
    assert "(Epoch 0 / 1) train acc:" in out and "(Epoch 1 / 1)" in out
    Solver(_net(), small, num_epochs=1, batch_size=50, verbose=False).train()
    assert capsys.readouterr().out == ""
    Solver(_net(), small, num_epochs=1, batch_size=50, verbose=False, progress=True).train()
    assert "6/6" in capsys.readouterr().out  # the tqdm bar, forced on


def test_argument_errors(small) -> None:
    model = _net()
    with pytest.raises(ValueError, match="unknown update_rule 'adamw'"):
        Solver(model, small, update_rule="adamw")
    with pytest.raises(ValueError, match=r"unrecognized Solver arguments \['epochs'\]"):
        Solver(model, small, epochs=3)
    with pytest.raises(ValueError, match=r"X_train and y_train lengths differ.*300.*299"):
        Solver(model, {**small, "y_train": small["y_train"][:299]})
    with pytest.raises(KeyError, match="X_val"):
        Solver(model, {"X_train": small["X_train"], "y_train": small["y_train"]})
    with pytest.raises(TypeError, match="y_val must hold integer class labels"):
        Solver(model, {**small, "y_val": small["y_val"].astype(np.float32)})
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Solver(model, small, batch_size=0)


def test_seeded_dropout_draws_a_fresh_reproducible_mask_each_step(small) -> None:
    """Training gets a new mask per step; direct loss calls (gradient checks) keep one."""

    def run() -> tuple[list[int], list[float]]:
        model = _net(hidden_dims=[32], dropout=0.5, seed=1)
        seeds = []
        loss = model.loss

        def spy(X, y=None):
            if y is not None:
                seeds.append(model._layer_dropout_param(0)["seed"])
            return loss(X, y)

        model.loss = spy
        solver = Solver(model, small, num_epochs=1, batch_size=50, verbose=False, seed=0)
        solver.train()
        return seeds, solver.loss_history

    seeds, losses = run()
    assert len(seeds) == 6 and len(set(seeds)) == 6
    assert run() == (seeds, losses)

    model = _net(hidden_dims=[32], dropout=0.5, seed=1)
    X, y = small["X_train"][:20], small["y_train"][:20]
    assert float(model.loss(X, y)[0]) == float(model.loss(X, y)[0])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_step_by_hand_diverges_cleanly_before_train(small) -> None:
    """``step()`` alone, never ``train()``: a non-finite loss raises TrainingDiverged and
    the model gets back the parameters it had before the first step."""
    model = _net()
    before = _host_params(model)
    solver = Solver(model, small, update_rule="sgd", optim_config={"learning_rate": 1e30},
                    batch_size=50, seed=0, verbose=False)  # fmt: skip
    with pytest.raises(TrainingDiverged, match="initial parameters") as info:
        for _ in range(10):
            solver.step()
    assert not math.isfinite(info.value.value)
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)
