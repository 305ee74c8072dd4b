"""The Solver's compiled step (``Solver(jit=None)``): on JAX the whole step runs as
one ``jax.jit`` function; elsewhere ``jit`` is ignored. Each test runs on every
backend: on JAX it holds the compiled run to the eager one, elsewhere it checks
that ``jit`` changes nothing."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from subprocess_helpers import run_python

import xplayers.backends as backends
from xplayers.models import FullyConnectedNet, ThreeLayerConvNet
from xplayers.solver import Solver

#: 100 training rows at batch 10: 10 steps per epoch, so 2 epochs are 20 steps and
#: cross one learning-rate decay.
N, D, C, BATCH = 100, 12, 4, 10


def _data(image: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    shape = (3, 8, 8) if image else (D,)
    X = rng.standard_normal((N + 20, *shape))
    y = rng.integers(C, size=N + 20)
    return {"X_train": X[:N], "y_train": y[:N], "X_val": X[N:], "y_val": y[N:]}


def _fc(backend, seed: int | None = 7, normalization: str | None = "batchnorm") -> Any:
    """Batch norm and dropout: running statistics and random masks in the step."""
    return FullyConnectedNet(
        [10, 8], input_dim=D, num_classes=C, normalization=normalization, dropout=0.8,
        weight_scale=0.3, dtype="float64", seed=seed, **backend.place,
    )  # fmt: skip


def _cnn(backend) -> ThreeLayerConvNet:
    return ThreeLayerConvNet(
        input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10, num_classes=C,
        weight_scale=0.1, reg=0.01, dtype="float64", seed=7, **backend.place,
    )  # fmt: skip


def _solver(model: Any, data: dict, rule: str = "adam", **kwargs: Any) -> Solver:
    options = {"update_rule": rule, "optim_config": {"learning_rate": 1e-2}, "lr_decay": 0.9,
               "batch_size": BATCH, "num_epochs": 2, "num_train_samples": 20, "seed": 3,
               "verbose": False, **kwargs}  # fmt: skip
    return Solver(model, data, **options)


def _compiles(backend) -> bool:
    return backend.name == "jax"


def _counting_losses(model: Any) -> list[int]:
    """Count the model's training-loss calls (those with labels): inside a compiled
    step the loss runs only while the step is traced."""
    calls = [0]
    loss = model.loss

    @functools.wraps(loss)
    def counted(X: Any, y: Any = None, **options: Any) -> Any:
        calls[0] += y is not None
        return loss(X, y, **options)

    model.loss = counted
    return calls


def _host(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _host(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_host(v) for v in tree]
    return backends.to_numpy(tree) if backends.is_array(tree) else tree


def _assert_close(a: Any, b: Any, exact: bool, where: str = "") -> None:
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_close(a[k], b[k], exact, f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, exact, f"{where}[{i}]")
    elif exact:
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        # atol: biases before batch norm move by rounding noise (their gradient is 0)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=where)


@pytest.mark.parametrize("rule", ["adam", "sgd_momentum"])
@pytest.mark.parametrize("net", ["fc", "cnn"])
def test_compiled_and_eager_runs_agree(backend, rule, net) -> None:
    """20 steps over an epoch boundary (lr decay), batch norm and seeded dropout: the
    compiled run ends where the eager one does, to float64 rounding on JAX and
    exactly elsewhere (where jit changes nothing)."""
    build, data = (_fc, _data()) if net == "fc" else (_cnn, _data(image=True))
    runs = []
    for jit in (None, False):
        solver = _solver(build(backend), data, rule, jit=jit)
        solver.train()
        assert len(solver.loss_history) == 20
        runs.append((solver.loss_history, _host(solver.model.state_dict()),
                     _host(solver.state_dict()["optim_configs"])))  # fmt: skip
    exact = not _compiles(backend)
    for compiled, eager in zip(*runs, strict=True):
        _assert_close(compiled, eager, exact)


def test_seeded_compiled_runs_repeat_exactly(backend) -> None:
    runs = []
    for _ in range(2):
        solver = _solver(_fc(backend), _data())
        solver.train()
        runs.append((solver.loss_history, _host(solver.model.state_dict())))
    _assert_close(runs[0], runs[1], exact=True)


def test_an_unseeded_model_draws_fresh_masks_each_compiled_step(backend) -> None:
    """Dropout without a model seed: each step its own masks (a mask drawn while the
    step is traced would repeat at every step), from the Solver's seed under jit."""
    row = _data()["X_train"][:1]
    same = {"X_train": np.repeat(row, N, axis=0), "y_train": np.zeros(N, dtype=np.int64),
            "X_val": row, "y_val": np.zeros(1, dtype=np.int64)}  # fmt: skip
    # Every batch the same rows, a learning rate of 0: only the masks can differ (no
    # batch norm, which would make all rows of a batch of equal rows zero).
    model = _fc(backend, seed=None, normalization=None)
    solver = _solver(model, same, optim_config={"learning_rate": 0.0}, num_epochs=1)
    losses = [solver.step() for _ in range(3)]
    assert len(set(losses)) == 3
    assert "seed" not in model.dropout_param


def test_the_step_is_compiled_once(backend) -> None:
    """20 steps, an epoch's learning-rate decay, accuracy checks between: one trace on
    JAX (the learning rate is an input of the step, not a constant of it)."""
    model = _fc(backend)
    calls = _counting_losses(model)
    solver = _solver(model, _data())
    solver.train()
    assert calls[0] == (1 if _compiles(backend) else 20)
    lr = solver.optim_configs["W1"]["learning_rate"]
    assert type(lr) is float and lr == pytest.approx(1e-2 * 0.9**2)


def test_the_state_after_compiled_training_holds_plain_numbers(backend) -> None:
    solver = _solver(_fc(backend), _data(), num_epochs=1)
    for _ in range(3):
        solver.step()
    solver.train()
    for config in (*solver.state_dict()["optim_configs"].values(), *solver.optim_configs.values()):
        numbers = {k: v for k, v in config.items() if k not in ("m", "v")}
        assert {k: type(v) for k, v in numbers.items()} == {
            "learning_rate": float, "beta1": float, "beta2": float, "epsilon": float, "t": int,
        }  # fmt: skip
        assert numbers["t"] == 10
        assert list(config) == ["learning_rate", "beta1", "beta2", "epsilon", "t", "m", "v"]


def test_a_checkpoint_resumes_a_compiled_run_bit_identically(backend, tmp_path) -> None:
    """Saved after the first epoch, resumed in a new Solver: the second epoch is the
    one the uninterrupted run trains, bit for bit."""
    data = _data()
    reference = _solver(_fc(backend), data)
    reference.train()

    first = _solver(_fc(backend), data, num_epochs=1, checkpoint_name=str(tmp_path / "run"))
    first.train()
    resumed = Solver.resume(first.last_checkpoint, _fc(backend), data, num_epochs=2)
    resumed.train()
    assert resumed.loss_history == reference.loss_history
    _assert_close(_host(resumed.model.state_dict()), _host(reference.model.state_dict()), True)
    _assert_close(_host(resumed.state_dict()["optim_configs"]),
                  _host(reference.state_dict()["optim_configs"]), True)  # fmt: skip


def test_a_failing_step_leaves_the_model_as_it_was(backend) -> None:
    """An update rule that fails (inside the trace on JAX): the model keeps its own
    parameters and its step, and holds no traced array afterwards."""
    model = _fc(backend)
    params = dict(model.params)

    def failing(w: Any, dw: Any, config: dict) -> Any:
        raise RuntimeError("no update today")

    solver = _solver(model, _data(), failing)
    with pytest.raises(RuntimeError, match="no update today"):
        solver.step()
    assert all(model.params[k] is v for k, v in params.items())
    assert model.train_step == 0 and model.dropout_param["seed"] == 7
    for stats in model.norm_params:
        for value in stats.values():
            if backends.is_array(value):
                backends.to_numpy(value)  # a traced array left behind cannot be read


def test_jit_true_with_a_communicator_is_refused_on_jax(backend) -> None:
    class OneRank:  # never reached: the check comes before any exchange
        rank, size = 0, 1

    if not _compiles(backend):
        pytest.skip("only a compiled step cannot reach the host between backward and update")
    with pytest.raises(ValueError, match="jit=True cannot compile a data-parallel step"):
        _solver(_fc(backend), _data(), jit=True, comm=OneRank())


def test_a_float32_run_on_jax_without_x64() -> None:
    """JAX without x64 holds no int64: the Solver sends the labels as int32 (their
    range, read once, fits), compiled and eager alike, instead of failing on them."""
    if backends.unavailable_reason("jax") is not None:
        pytest.skip(f"jax: {backends.unavailable_reason('jax')}")
    code = (
        "import os\n"
        "os.environ['JAX_ENABLE_X64'] = '0'  # before jax loads\n"
        "import numpy as np\n"
        "from xplayers.models import FullyConnectedNet\n"
        "from xplayers.solver import Solver\n"
        "rng = np.random.default_rng(0)\n"
        "data = {'X_train': rng.standard_normal((40, 6)), 'y_train': rng.integers(3, size=40),\n"
        "        'X_val': rng.standard_normal((10, 6)), 'y_val': rng.integers(3, size=10)}\n"
        "for jit in (None, False):\n"
        "    model = FullyConnectedNet([5], input_dim=6, num_classes=3, seed=1, backend='jax')\n"
        "    solver = Solver(model, data, batch_size=10, num_epochs=1, verbose=False, jit=jit)\n"
        "    solver.train()\n"
        "    print(len(solver.loss_history), model.params['W1'].dtype)\n"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4", "float32", "4", "float32"]


def test_a_rule_that_reads_numbers_back_says_to_run_eagerly(backend) -> None:
    """A callable rule doing float() on its config: fine eagerly; on JAX a TypeError
    that says jit=False runs it (a traced number cannot be read back)."""

    def plain_sgd(w: Any, dw: Any, config: dict) -> tuple[Any, dict]:
        config.setdefault("learning_rate", 1e-2)
        return w - float(config["learning_rate"]) * dw, config

    if not _compiles(backend):
        _solver(_fc(backend), _data(), plain_sgd).step()
        return
    with pytest.raises(TypeError, match=r"cannot be compiled.*float\(\).*jit=False"):
        _solver(_fc(backend), _data(), plain_sgd).step()
    _solver(_fc(backend), _data(), plain_sgd, jit=False).step()
