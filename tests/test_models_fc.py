"""TwoLayerNet and FullyConnectedNet on every backend: gradients, seeding, moving."""

from __future__ import annotations

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers.gradcheck import eval_numerical_gradient, rel_error
from xplayers.models import FullyConnectedNet, TwoLayerNet

N, D, C = 4, 6, 5


def _data(backend, dtype="float64"):
    rng = np.random.default_rng(231)
    X = rng.standard_normal((N, D))
    y = rng.integers(C, size=N)
    return backend.asarray(X, dtype), backend.asarray(y), X, y


def _numerical_gradient(model, name, X, y):
    """d loss / d params[name] by centred differences: each probe goes into the model
    (the probe may be x itself, perturbed in place, or a copy where arrays cannot be
    written), and the parameter is put back after."""
    original = model.params[name]

    def f(v):
        model.params[name] = v
        return model.loss(X, y)[0]

    try:
        return eval_numerical_gradient(f, original, verbose=False)
    finally:
        model.params[name] = original


def _assert_grads_match(model, X, y, tol: float = 1e-6) -> None:
    """Every analytic gradient against centred differences of the loss."""
    _, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for name, analytic in grads.items():
        assert analytic.shape == model.params[name].shape, name

        numeric = _numerical_gradient(model, name, X, y)
        err = rel_error(numeric, analytic)
        # A gradient that is exactly zero (a bias before batch norm) compares
        # noise with noise: judge it by its absolute size instead.
        small = np.max(np.abs(backends.to_numpy(numeric) - backends.to_numpy(analytic)))
        assert err < tol or small < 1e-8, f"{name}: rel error {err:.2e}"


FC_CASES = {
    "plain": {},
    "reg": {"reg": 0.7},
    "batchnorm": {"normalization": "batchnorm", "reg": 0.3},
    "layernorm": {"normalization": "layernorm"},
    "dropout": {"dropout": 0.75, "reg": 0.2},
    "bn+dropout": {"normalization": "batchnorm", "dropout": 0.8},
}


@pytest.mark.parametrize("case", list(FC_CASES))
def test_fc_net_gradients(backend, case: str) -> None:
    X, y, _, _ = _data(backend)
    model = FullyConnectedNet(
        [7, 8],
        input_dim=D,
        num_classes=C,
        weight_scale=0.5,
        dtype="float64",
        seed=3,
        **backend.place,
        **FC_CASES[case],
    )
    _assert_grads_match(model, X, y)


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_gradients(backend, reg: float) -> None:
    X, y, _, _ = _data(backend)
    model = TwoLayerNet(
        input_dim=D, hidden_dim=9, num_classes=C, weight_scale=0.3, reg=reg,
        dtype="float64", seed=0, **backend.place,
    )  # fmt: skip
    _assert_grads_match(model, X, y)


def test_no_hidden_layer_is_softmax_regression(backend) -> None:
    X, y, _, _ = _data(backend)
    model = FullyConnectedNet(
        [], input_dim=D, num_classes=C, reg=0.1, dtype="float64", seed=1, **backend.place
    )
    assert sorted(model.params) == ["W1", "b1"]
    _assert_grads_match(model, X, y)


def test_two_layer_net_cs231n_reference_values() -> None:
    """The CS231n notebook's fixed-parameter check (scores and loss)."""
    model = TwoLayerNet(input_dim=5, hidden_dim=50, num_classes=7, backend="numpy")
    model.params["W1"] = np.linspace(-0.7, 0.3, num=5 * 50).reshape(5, 50)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=50)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=50 * 7).reshape(50, 7)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=7)
    X = np.linspace(-5.5, 4.5, num=3 * 5).reshape(5, 3).T
    scores = model.loss(X)
    assert scores.dtype == np.float64  # the params' dtype, not the model's float32
    correct_scores = np.asarray([
        [11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
        [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
        [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319],
    ])  # fmt: skip
    assert np.abs(scores - correct_scores).sum() < 1e-6
    y = np.asarray([0, 5, 1])
    assert abs(float(model.loss(X, y)[0]) - 3.4702243556) < 1e-10
    model.reg = 1.0
    assert abs(float(model.loss(X, y)[0]) - 26.5948426952) < 1e-10


def test_initial_params_identical_on_every_backend(backend) -> None:
    kwargs = dict(input_dim=D, num_classes=C, normalization="batchnorm", seed=11)
    ref = FullyConnectedNet([7, 8], backend="numpy", **kwargs)
    model = FullyConnectedNet([7, 8], **backend.place, **kwargs)
    names = ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    assert list(model.params) == names
    for k, v in model.params.items():
        assert backends.backend_of(v) == backend.name
        assert backends.numpy_dtype(v.dtype) == np.float32
        np.testing.assert_array_equal(backend.numpy(v), ref.params[k], err_msg=k)
    w1 = backend.numpy(model.params["W1"])
    assert abs(w1.std() - 1e-2) < 3e-3  # weight_scale * N(0, 1)
    assert not np.any(backend.numpy(model.params["b1"]))
    # A different seed gives different weights.
    other = FullyConnectedNet([7, 8], backend="numpy", **{**kwargs, "seed": 12})
    assert not np.array_equal(other.params["W1"], ref.params["W1"])


def test_modes_scores_and_running_stats(backend) -> None:
    X, y, _, _ = _data(backend, "float32")
    model = FullyConnectedNet(
        [7], input_dim=D, num_classes=C, normalization="batchnorm", dropout=0.5,
        seed=2, **backend.place,
    )  # fmt: skip
    scores = model.loss(X)
    assert tuple(scores.shape) == (N, C)
    assert model.dropout_param["mode"] == "test" and model.bn_params[0]["mode"] == "test"
    # Test mode is deterministic: no dropout, running statistics fixed.
    np.testing.assert_array_equal(backend.numpy(model.loss(X)), backend.numpy(scores))
    loss, _ = model.loss(X, y)
    assert model.dropout_param["mode"] == "train" and model.bn_params[0]["mode"] == "train"
    assert float(loss) > 0
    running = backend.numpy(model.norm_params[0]["running_mean"])
    assert np.any(running != 0)  # moved by the train-mode batch
    assert backends.backend_of(model.norm_params[0]["running_mean"]) == backend.name


def test_computation_follows_param_dtype(backend) -> None:
    X, y, _, _ = _data(backend, "float32")
    model = FullyConnectedNet([7], input_dim=D, num_classes=C, seed=0, **backend.place)
    loss, _ = model.loss(X, y)
    assert backends.numpy_dtype(loss.dtype) == np.float32
    model.params = {
        k: backend.asarray(backend.numpy(v), "float64") for k, v in model.params.items()
    }
    loss64, grads64 = model.loss(X, y)  # float32 X is cast to the params' float64
    assert backends.numpy_dtype(loss64.dtype) == np.float64
    assert all(backends.numpy_dtype(g.dtype) == np.float64 for g in grads64.values())
    assert abs(float(loss64) - float(loss)) < 1e-5


def test_to_and_state_dict_round_trip(other_backend) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    model = FullyConnectedNet(
        [7, 8], input_dim=D, num_classes=C, normalization="batchnorm", seed=5, backend="numpy"
    )
    model.loss(X, y)  # fills the running statistics
    state = model.state_dict()
    ref_scores = model.loss(X)

    model.to(other_backend.name, other_backend.device)
    assert model.backend == other_backend.name
    for k, v in model.params.items():
        assert backends.backend_of(v) == other_backend.name
        np.testing.assert_array_equal(other_backend.numpy(v), state["params"][k])
    stats = model.bn_params[1]["running_var"]
    assert backends.backend_of(stats) == other_backend.name
    np.testing.assert_array_equal(
        other_backend.numpy(stats), state["norm_params"][1]["running_var"]
    )
    scores = model.loss(other_backend.asarray(X, "float32"))
    np.testing.assert_allclose(other_backend.numpy(scores), ref_scores, rtol=1e-5, atol=1e-6)

    fresh = FullyConnectedNet(
        [7, 8], input_dim=D, num_classes=C, normalization="batchnorm", seed=99,
        **other_backend.place,
    )  # fmt: skip
    fresh.load_state_dict(model.state_dict())
    for k in state["params"]:
        np.testing.assert_array_equal(other_backend.numpy(fresh.params[k]), state["params"][k])
    np.testing.assert_array_equal(
        other_backend.numpy(fresh.loss(other_backend.asarray(X, "float32"))),
        other_backend.numpy(scores),
    )
    model.to("numpy")
    for k in state["params"]:
        np.testing.assert_array_equal(model.params[k], state["params"][k])


def test_reg_can_be_changed_after_construction() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    model = FullyConnectedNet([7], input_dim=D, num_classes=C, dtype="float64", seed=0)
    base, grads0 = model.loss(X, y)
    model.reg = 0.5
    loss, grads = model.loss(X, y)
    W1, W2 = model.params["W1"], model.params["W2"]
    penalty = 0.25 * (np.sum(W1 * W1) + np.sum(W2 * W2))
    assert abs(float(loss) - float(base) - penalty) < 1e-12
    np.testing.assert_allclose(grads["W1"], grads0["W1"] + 0.5 * W1, rtol=1e-12)
    np.testing.assert_array_equal(grads["b1"], grads0["b1"])  # biases are not penalised


def test_seeded_dropout_is_repeatable_and_unseeded_varies() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    seeded = FullyConnectedNet([50], input_dim=D, num_classes=C, dropout=0.5, seed=4)
    assert float(seeded.loss(X, y)[0]) == float(seeded.loss(X, y)[0])
    free = FullyConnectedNet([50], input_dim=D, num_classes=C, dropout=0.5, seed=None)
    free.params = {k: v.copy() for k, v in seeded.params.items()}
    assert len({float(free.loss(X, y)[0]) for _ in range(5)}) > 1


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown normalization 'groupnorm'"):
        FullyConnectedNet([4], normalization="groupnorm")
    with pytest.raises(ValueError, match="keep"):
        FullyConnectedNet([4], dropout=0)
    with pytest.raises(ValueError, match="positive"):
        FullyConnectedNet([4, 0])
    model = FullyConnectedNet([4], input_dim=D, num_classes=C)
    with pytest.raises(ValueError, match="D=6"):
        model.loss(np.zeros((2, D + 1)))
    with pytest.raises(backends.BackendError, match="torch"):
        pytest.importorskip("torch")
        model.loss(backends.asarray(np.zeros((2, D)), "torch"))


def test_dropout_streams_come_from_the_seed_the_step_and_the_layer(backend) -> None:
    """A layer's stream is the entropy (seed, step, layer): on the host libraries the
    numbers of the int SeedSequence makes of it (the masks of before); on JAX a key
    with each element folded in, the step traceable, so a compiled step draws them."""
    net = FullyConnectedNet([5, 5], input_dim=D, num_classes=C, dropout=0.5, seed=9,
                            dtype="float64", **backend.place)  # fmt: skip
    net.begin_step(4)
    entropy = net.stream_entropy(net.dropout_param["seed"], 2)
    assert entropy == (9, 4, 2)
    x = backend.asarray(np.ones((6, 5)))
    drawn = backend.numpy(backends.uniform_like(x, seed=entropy))
    if backend.name != "jax":
        seed = int(np.random.SeedSequence([9, 4, 2]).generate_state(1)[0])
        np.testing.assert_array_equal(drawn, np.random.default_rng(seed).random((6, 5)))
        return
    import jax

    traced = jax.jit(lambda step: backends.uniform_like(x, seed=(9, step, 2)))(4)
    np.testing.assert_array_equal(backend.numpy(traced), drawn)
    other = backends.uniform_like(x, seed=(9, 5, 2))
    assert not np.array_equal(backend.numpy(other), drawn)
