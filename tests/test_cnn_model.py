"""ThreeLayerConvNet: gradients, seeding, dtypes and a real (small) training run."""

from __future__ import annotations

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers.gradcheck import eval_numerical_gradient, rel_error
from xplayers.models import ThreeLayerConvNet
from xplayers.optim import adam

SMALL = {
    "input_dim": (2, 6, 6),
    "num_filters": 3,
    "filter_size": 3,
    "hidden_dim": 5,
    "num_classes": 4,
}


def _small_model(backend, dtype="float64", **kwargs) -> ThreeLayerConvNet:
    return ThreeLayerConvNet(**{**SMALL, **kwargs}, dtype=dtype, **backend.place, seed=0)


def _batch(backend, n=3, seed=1):
    rng = np.random.default_rng(seed)
    X = backend.asarray(rng.standard_normal((n, *SMALL["input_dim"])))
    y = backend.asarray(rng.integers(0, SMALL["num_classes"], n))
    return X, y


def test_shapes_of_params_scores_and_grads(backend) -> None:
    model = _small_model(backend)
    expected = {
        "W1": (3, 2, 3, 3),
        "b1": (3,),
        "W2": (3 * 3 * 3, 5),
        "b2": (5,),
        "W3": (5, 4),
        "b3": (4,),
    }
    assert {k: tuple(v.shape) for k, v in model.params.items()} == expected
    X, y = _batch(backend)
    scores = model.loss(X)
    assert tuple(scores.shape) == (3, 4)
    loss, grads = model.loss(X, y)
    assert loss.ndim == 0 and backends.backend_of(loss) == backend.name
    assert {k: tuple(v.shape) for k, v in grads.items()} == expected


def test_initial_loss_is_log_c(numpy_case) -> None:
    model = _small_model(numpy_case, weight_scale=1e-4)
    X, y = _batch(numpy_case, n=20)
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - np.log(SMALL["num_classes"])) < 1e-3
    model.reg = 10.0
    assert float(model.loss(X, y)[0]) > float(loss)


def test_loss_gradients_match_numerical(backend) -> None:
    model = _small_model(backend, weight_scale=0.3, reg=0.1)
    X, y = _batch(backend)
    _, grads = model.loss(X, y)
    for name, param in list(model.params.items()):

        def f(v, name=name):
            model.params[name] = v  # a perturbed copy where arrays cannot be written
            return model.loss(X, y)[0]

        numeric = eval_numerical_gradient(f, param, verbose=False)
        model.params[name] = param
        assert rel_error(grads[name], numeric) < 1e-6, name


def test_same_seed_same_initial_params_on_every_backend(backend, numpy_case) -> None:
    ref = _small_model(numpy_case, dtype="float32")
    model = _small_model(backend, dtype="float32")
    for name, value in model.params.items():
        assert backends.backend_of(value) == backend.name
        assert value.dtype == backend.xp.float32
        np.testing.assert_array_equal(backend.numpy(value), ref.params[name])
    other = ThreeLayerConvNet(**SMALL, **backend.place, seed=1)
    assert not np.array_equal(backend.numpy(other.params["W1"]), ref.params["W1"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_computes_in_the_params_dtype(backend, dtype) -> None:
    model = _small_model(backend, dtype=dtype)
    X, y = _batch(backend)  # float64 input is cast to the params' dtype
    loss, grads = model.loss(X, y)
    want = getattr(backend.xp, dtype)
    assert model.loss(X).dtype == want and loss.dtype == want
    assert all(g.dtype == want for g in grads.values())


def test_rejects_input_the_pool_cannot_halve() -> None:
    with pytest.raises(
        ValueError, match=r"conv output \(7x8 for input_dim=\(3, 7, 8\).*must have positive even"
    ):
        ThreeLayerConvNet(input_dim=(3, 7, 8), backend="numpy")
    with pytest.raises(ValueError, match=r"num_filters must be positive, got 0"):
        ThreeLayerConvNet(num_filters=0, backend="numpy")


def _class_images(n: int, num_classes: int, shape: tuple[int, int, int], seed: int):
    """One random template per class plus as much per-sample noise: separable, not trivial."""
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((num_classes, *shape))
    y = np.arange(n) % num_classes
    return templates[y] + rng.standard_normal((n, *shape)), y


@pytest.mark.slow
def test_overfits_fifty_samples_with_adam(numpy_case) -> None:
    num_classes, n, batch = 10, 50, 10
    X_host, y_host = _class_images(n, num_classes, (3, 16, 16), seed=0)
    X, y = numpy_case.asarray(X_host, "float32"), numpy_case.asarray(y_host)
    model = ThreeLayerConvNet(
        input_dim=(3, 16, 16),
        num_filters=8,
        filter_size=3,
        hidden_dim=32,
        num_classes=num_classes,
        weight_scale=1e-2,
        backend="numpy",
        seed=0,
    )
    configs = {k: {"learning_rate": 1e-2} for k in model.params}
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(10):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            loss, grads = model.loss(X[idx], y[idx])
            losses.append(float(loss))
            for k in model.params:
                model.params[k], configs[k] = adam(model.params[k], grads[k], configs[k])
    accuracy = float(np.mean(np.argmax(numpy_case.numpy(model.loss(X)), axis=1) == y_host))
    assert accuracy >= 0.9, (accuracy, losses[::5])
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
