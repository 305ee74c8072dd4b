"""Inputs that used to go silently wrong: labels, the dtype rule, settings dicts,
NumPy integer sizes, NaN pooling windows, empty batch-norm batches."""

from __future__ import annotations

import numpy as np
import pytest

from xplayers import layers
from xplayers._checks import check_labels
from xplayers.models import FullyConnectedNet
from xplayers.solver import Solver


def _scores(backend, n=4, c=3):
    return backend.asarray(np.random.default_rng(0).standard_normal((n, c)))


@pytest.mark.parametrize("loss", [layers.softmax_loss, layers.svm_loss])
@pytest.mark.parametrize(("labels", "low", "high"), [([0, 3, 1, 2], 0, 3), ([0, -1, 2, 1], -1, 2)])
def test_out_of_range_labels_raise_naming_y(backend, loss, labels, low, high) -> None:
    x = _scores(backend)
    with pytest.raises(
        ValueError, match=rf"y must hold class labels in \[0, 3\).*3 classes.*{low} to {high}"
    ):
        loss(x, backend.asarray(np.array(labels)))


def test_a_known_label_range_is_checked_without_reading_the_labels() -> None:
    class NoReadBack:
        """numpy, but the reductions a range check reads back are refused."""

        def __getattr__(self, name):
            if name in ("any", "min", "max"):
                raise AssertionError(f"{name} reads the labels back")
            return getattr(np, name)

    y = np.array([0, 2, 1])
    assert check_labels("y", y, 3, 3, NoReadBack(), known_range=(0, 2)) is y
    with pytest.raises(ValueError, match=r"\[0, 3\).*0 to 3"):
        check_labels("y", y, 3, 3, NoReadBack(), known_range=(0, 3))


@pytest.mark.parametrize("loss", [layers.softmax_loss, layers.svm_loss])
def test_a_loss_checks_a_given_label_range_instead_of_the_labels(backend, loss) -> None:
    x, y = _scores(backend), backend.asarray(np.array([0, 2, 1, 2]))
    ref_loss, ref_dx = loss(x, y)
    got_loss, got_dx = loss(x, y, label_range=(0, 2))
    assert float(got_loss) == float(ref_loss)
    np.testing.assert_array_equal(backend.numpy(got_dx), backend.numpy(ref_dx))
    # The promised range, not y's own, decides: labels in range, a range beyond it.
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\).*0 to 5"):
        loss(x, y, label_range=(0, 5))


def test_the_solver_gives_the_loss_its_training_labels_range(backend) -> None:
    """One read of the training labels when the Solver is built; every step's loss gets
    their (min, max), so no step reads its batch's labels back."""
    rng = np.random.default_rng(0)
    y = rng.integers(2, 5, 40)
    data = {"X_train": rng.standard_normal((40, 5)), "y_train": backend.asarray(y),
            "X_val": rng.standard_normal((8, 5)), "y_val": y[:8]}  # fmt: skip
    model = FullyConnectedNet([4], input_dim=5, num_classes=6, seed=0, **backend.place)
    ranges = []
    loss = model.loss

    def spy(X, y=None, label_range=None):
        if y is not None:
            ranges.append(label_range)
        return loss(X, y, label_range)

    model.loss = spy
    Solver(model, data, batch_size=4, num_epochs=1, verbose=False).train()
    assert ranges == [(int(y.min()), int(y.max()))] * 10


def test_the_solver_refuses_a_training_label_out_of_range(backend) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    y[7] = 3  # one bad label among 40: caught whichever rows the first batch draws
    data = {"X_train": rng.standard_normal((40, 5)), "y_train": backend.asarray(y),
            "X_val": rng.standard_normal((8, 5)), "y_val": y[:8] % 3}  # fmt: skip
    model = FullyConnectedNet([4], input_dim=5, num_classes=3, seed=0, **backend.place)
    solver = Solver(model, data, batch_size=4, num_epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\).*0 to 3"):
        solver.train()


@pytest.mark.parametrize("loss", [layers.softmax_loss, layers.svm_loss])
def test_non_integer_labels_raise(backend, loss) -> None:
    with pytest.raises(ValueError, match="y must hold integer class labels"):
        loss(_scores(backend), backend.asarray(np.array([0.0, 1.0, 2.0, 1.0])))


@pytest.mark.parametrize("loss", [layers.softmax_loss, layers.svm_loss])
@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8])
def test_narrow_integer_labels_work(backend, loss, dtype) -> None:
    x, y = _scores(backend), np.array([0, 2, 1, 2])
    ref_loss, ref_dx = loss(x, backend.asarray(y.astype(np.int64)))
    got_loss, got_dx = loss(x, backend.asarray(y.astype(dtype)))
    assert float(got_loss) == float(ref_loss)
    np.testing.assert_array_equal(backend.numpy(got_dx), backend.numpy(ref_dx))


def _conv(x, w, b):
    return layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[0]


def _bn(x, g, b):
    return layers.batchnorm_forward(x, g, b, {"mode": "train"})[0]


def _ln(x, g, b):
    return layers.layernorm_forward(x, g, b, {})[0]


def _sbn(x, g, b):
    return layers.spatial_batchnorm_forward(x, g, b, {"mode": "train"})[0]


def _gn(x, g, b):
    return layers.spatial_groupnorm_forward(x, g, b, 2, {})[0]


# layer, x shape, the two param shapes (names in the error), integer param values
PARAM_LAYERS = {
    "affine": (
        lambda x, w, b: layers.affine_forward(x, w, b)[0],
        (2, 4),
        ("w", (4, 2)),
        ("b", (2,)),
    ),
    "conv": (_conv, (2, 2, 4, 4), ("w", (2, 2, 3, 3)), ("b", (2,))),
    "batchnorm": (_bn, (3, 2), ("gamma", (2,)), ("beta", (2,))),
    "layernorm": (_ln, (3, 2), ("gamma", (2,)), ("beta", (2,))),
    "spatial_batchnorm": (_sbn, (2, 2, 3, 3), ("gamma", (2,)), ("beta", (2,))),
    "spatial_groupnorm": (_gn, (2, 2, 3, 3), ("gamma", (1, 2, 1, 1)), ("beta", (1, 2, 1, 1))),
}


@pytest.mark.parametrize("name", list(PARAM_LAYERS))
def test_integer_params_are_promoted_to_xs_dtype(backend, name) -> None:
    fn, x_shape, (_, p1), (_, p2) = PARAM_LAYERS[name]
    rng = np.random.default_rng(1)
    x = backend.asarray(rng.standard_normal(x_shape), "float32")
    a, b = rng.integers(-3, 4, p1), rng.integers(0, 128, p2)
    expected = fn(x, backend.asarray(a, "float32"), backend.asarray(b, "float32"))
    got = fn(x, backend.asarray(a), backend.asarray(b))
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(backend.numpy(got), backend.numpy(expected))


@pytest.mark.parametrize("name", list(PARAM_LAYERS))
def test_another_float_precision_and_integer_x_raise(backend, name) -> None:
    fn, x_shape, (n1, p1), (_, p2) = PARAM_LAYERS[name]
    x = backend.asarray(np.ones(x_shape), "float32")
    a, b = backend.asarray(np.ones(p1), "float64"), backend.asarray(np.ones(p2), "float32")
    with pytest.raises(TypeError, match=rf"{n1} is float64 but x is float32"):
        fn(x, a, b)
    with pytest.raises(TypeError, match=r"x must be a real floating array.*int"):
        fn(backend.asarray(np.ones(x_shape, dtype=np.int64)), b, b)


def test_pool_and_relu_refuse_integer_x(backend) -> None:
    x = backend.asarray(np.ones((1, 1, 2, 2), dtype=np.int64))
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for fn in (lambda: layers.max_pool_forward_fast(x, pool), lambda: layers.relu_forward(x)):
        with pytest.raises(TypeError, match="x must be a real floating array"):
            fn()


def test_settings_dicts_and_scalars_give_clear_errors(backend) -> None:
    x = backend.asarray(np.ones((3, 2)), "float32")
    g = backend.asarray(np.ones(2), "float32")
    with pytest.raises(TypeError, match=r"bn_param must be a dict.*None"):
        layers.batchnorm_forward(x, g, g, None)
    with pytest.raises(TypeError, match=r"ln_param must be a dict.*None"):
        layers.layernorm_forward(x, g, g, None)
    with pytest.raises(TypeError, match=r"dropout_param must be a dict.*None"):
        layers.dropout_forward(x, None)
    with pytest.raises(ValueError, match=r"dropout_param\['p'\].*'0.5'"):
        layers.dropout_forward(x, {"p": "0.5", "mode": "train"})
    w = backend.asarray(np.ones((1, 2)), "float32")
    with pytest.raises(ValueError, match=r"x must be \(N, d_1, \.\.\., d_k\).*\(\)"):
        layers.affine_forward(backend.asarray(np.float32(1.0)), w, g)


def test_numpy_integer_scalars_are_valid_sizes(backend) -> None:
    rng = np.random.default_rng(2)
    x = backend.asarray(rng.standard_normal((2, 4, 4, 4)), "float64")
    w = backend.asarray(rng.standard_normal((2, 4, 3, 3)), "float64")
    b = backend.asarray(np.zeros(2), "float64")
    conv = layers.conv_forward_fast(x, w, b, {"stride": np.int64(1), "pad": np.int32(1)})[0]
    ref = layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[0]
    np.testing.assert_array_equal(backend.numpy(conv), backend.numpy(ref))
    pool = {"pool_height": np.int64(2), "pool_width": np.int64(2), "stride": np.int64(2)}
    out, _ = layers.max_pool_forward_fast(x, pool)
    assert tuple(out.shape) == (2, 4, 2, 2)
    gamma = backend.asarray(np.ones((1, 4, 1, 1)), "float64")
    out, _ = layers.spatial_groupnorm_forward(x, gamma, gamma * 0, np.int64(2), {})
    assert tuple(out.shape) == (2, 4, 4, 4)


@pytest.mark.parametrize("impl", ["naive", "fast"])
def test_a_nan_pooling_window_keeps_its_gradient_at_the_first_nan(backend, impl) -> None:
    fwd = getattr(layers, f"max_pool_forward_{impl}")
    bwd = getattr(layers, f"max_pool_backward_{impl}")
    x = backend.asarray(np.array([[[[1.0, np.nan], [0.0, 2.0]]]]))
    out, cache = fwd(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert np.isnan(backend.numpy(out)).all()
    dx = backend.numpy(bwd(backend.asarray(np.full((1, 1, 1, 1), 3.0)), cache))
    np.testing.assert_array_equal(dx, [[[[0.0, 3.0], [0.0, 0.0]]]])


def test_nan_windows_fast_matches_naive_on_a_larger_input(backend) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    dout = rng.standard_normal((2, 3, 3, 3))
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    results = []
    for impl in ("naive", "fast"):
        _, cache = getattr(layers, f"max_pool_forward_{impl}")(backend.asarray(x), pool)
        dx = getattr(layers, f"max_pool_backward_{impl}")(backend.asarray(dout), cache)
        results.append(backend.numpy(dx))
    np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("spatial", [False, True])
def test_an_empty_training_batch_leaves_running_stats_untouched(backend, spatial) -> None:
    shape = (0, 3, 2, 2) if spatial else (0, 3)
    fwd = layers.spatial_batchnorm_forward if spatial else layers.batchnorm_forward
    mean, var = np.array([0.5, 1.0, -1.0]), np.array([2.0, 3.0, 4.0])
    bn = {
        "mode": "train",
        "running_mean": backend.asarray(mean),
        "running_var": backend.asarray(var),
    }
    g = backend.asarray(np.ones(3))
    out, _ = fwd(backend.asarray(np.zeros(shape)), g, g, bn)
    assert tuple(out.shape) == shape
    np.testing.assert_array_equal(backend.numpy(bn["running_mean"]), mean)
    np.testing.assert_array_equal(backend.numpy(bn["running_var"]), var)


def test_an_empty_training_batch_backpropagates_zero_param_grads(backend) -> None:
    g = backend.asarray(np.ones(3))
    out, cache = layers.batchnorm_forward(backend.asarray(np.zeros((0, 3))), g, g, {})
    dx, dgamma, dbeta = layers.batchnorm_backward_alt(out, cache)
    assert tuple(dx.shape) == (0, 3)
    np.testing.assert_array_equal(backend.numpy(dgamma), np.zeros(3))
    np.testing.assert_array_equal(backend.numpy(dbeta), np.zeros(3))
