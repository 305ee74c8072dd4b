"""Inputs that used to go silently wrong: labels, the dtype rule, settings dicts,
NumPy integer sizes, NaN pooling windows, empty batches, dout of another dtype,
strides far past the input, half-precision floats."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import layers
from xplayers._checks import check_labels
from xplayers.layers import _conv_pool
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
    # A compiled step (JAX) calls the loss once, when it traces the step.
    calls = 10 if backends.writes_in_place(data["y_train"]) else 1
    assert ranges == [(int(y.min()), int(y.max()))] * calls


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


# ------------------------------------------------------------------ dout
def _backward_cases(backend, dtype: str) -> dict:
    """name -> (forward output, cache, backward) of every layer with a backward,
    run forward on ``backend`` in ``dtype``."""
    rng = np.random.default_rng(4)

    def a(*shape):
        return backend.asarray(rng.standard_normal(shape), dtype)

    img, w, b, x2, g = a(2, 2, 4, 4), a(3, 2, 3, 3), a(3), a(4, 3), a(3)
    cp, pp = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    far = {"stride": 9, "pad": 1, "truncate": True}  # compacted: the stride passes the input
    runs = {
        "affine": (layers.affine_forward(x2, a(3, 5), a(5)), layers.affine_backward),
        "affine_param_grads": (layers.affine_forward(x2, a(3, 5), a(5)), layers.affine_param_grads),
        "relu": (layers.relu_forward(x2), layers.relu_backward),
        "affine_relu": (layers.affine_relu_forward(x2, a(3, 5), a(5)), layers.affine_relu_backward),
        "batchnorm": (layers.batchnorm_forward(x2, g, g, {}), layers.batchnorm_backward),
        "batchnorm_alt": (layers.batchnorm_forward(x2, g, g, {}), layers.batchnorm_backward_alt),
        "layernorm": (layers.layernorm_forward(x2, g, g, {}), layers.layernorm_backward),
        "dropout": (layers.dropout_forward(x2, {"p": 0.5, "seed": 1}), layers.dropout_backward),
        "dropout_test": (layers.dropout_forward(x2, {"mode": "test"}), layers.dropout_backward),
        "spatial_batchnorm": (
            layers.spatial_batchnorm_forward(img, a(2), a(2), {}),
            layers.spatial_batchnorm_backward,
        ),
        "spatial_groupnorm": (
            layers.spatial_groupnorm_forward(img, a(1, 2, 1, 1), a(1, 2, 1, 1), 2, {}),
            layers.spatial_groupnorm_backward,
        ),
        "conv_naive": (layers.conv_forward_naive(img, w, b, cp), layers.conv_backward_naive),
        "conv_fast": (layers.conv_forward_fast(img, w, b, cp), layers.conv_backward_fast),
        "conv_fast_compact": (layers.conv_forward_fast(img, w, b, far), layers.conv_backward_fast),
        "pool_naive": (layers.max_pool_forward_naive(img, pp), layers.max_pool_backward_naive),
        "pool_fast": (layers.max_pool_forward_fast(img, pp), layers.max_pool_backward_fast),
        "conv_relu": (layers.conv_relu_forward(img, w, b, cp), layers.conv_relu_backward),
        "conv_relu_pool_fused": (
            layers.conv_relu_pool_forward(img, w, b, cp, pp),
            layers.conv_relu_pool_backward,
        ),
        "conv_relu_pool_chain": (  # an overlapping pool: the unfused chain
            layers.conv_relu_pool_forward(img, w, b, cp, {**pp, "stride": 1}),
            layers.conv_relu_pool_backward,
        ),
    }
    return {name: (out, cache, bwd) for name, ((out, cache), bwd) in runs.items()}


@pytest.mark.parametrize(
    ("forward_dtype", "dout_dtype"),
    [("float64", "float32"), ("float32", "float64"), ("float64", "int64")],
)
def test_every_backward_refuses_a_dout_of_another_dtype(backend, forward_dtype, dout_dtype):
    """A TypeError naming dout (its backend, dtype and shape) and the forward's
    dtype, alike on every backend: before, numpy mixed precisions in the
    gradients, torch raised its own RuntimeError, an int dout gave int64."""
    cases = _backward_cases(backend, forward_dtype)
    assert len(cases) == 19
    if backends.writes_in_place(cases["conv_fast"][0]):  # JAX has no fused pass, no plans
        assert isinstance(cases["conv_relu_pool_fused"][1], _conv_pool.ConvPoolCache)
        assert cases["conv_fast_compact"][1][-1].bands is not None
    for name, (out, cache, backward) in cases.items():
        shape = tuple(out.shape)
        dout = backend.asarray(np.ones(shape), dout_dtype)
        match = (
            rf"dout is {dout_dtype} but the forward ran in {forward_dtype}: cast dout to "
            rf"{forward_dtype} \(dout is a {backend.name} {dout_dtype} array of shape "
            rf"{re.escape(str(shape))}.*expected {forward_dtype}\)"
        )
        _raises(TypeError, match, name, backward, dout, cache)
        # The right dtype passes the check, and a wrong shape is still a ValueError.
        backward(backend.asarray(np.ones(shape), forward_dtype), cache)
        bad_shape = backend.asarray(np.ones((*shape, 1)), forward_dtype)
        _raises(ValueError, "dout must have shape", name, backward, bad_shape, cache)


def test_every_layer_keeps_its_results_on_the_input_device(backend) -> None:
    """Forward outputs and gradients live where the inputs do (jax:cpu:1 and
    array_api_strict:device1 included), every layer with a backward and the losses."""
    where = backends.device_label(backend.asarray(np.zeros(1)))
    results = []
    for out, cache, backward in _backward_cases(backend, "float64").values():
        grads = backward(backend.asarray(np.ones(tuple(out.shape))), cache)
        results += [out, *(grads if isinstance(grads, tuple) else (grads,))]
    scores, labels = backend.asarray(np.eye(3)), backend.asarray(np.arange(3))
    results += [*layers.softmax_loss(scores, labels), *layers.svm_loss(scores, labels)]
    assert len(results) > 40
    for r in results:
        assert r is None or backends.device_label(r) == where


def _raises(exc: type, match: str, what: str, fn, *args) -> None:
    """pytest.raises that names the case ``what`` when it fails."""
    try:
        fn(*args)
    except exc as e:
        assert re.search(match, str(e)), f"{what}: {e}"
    else:
        raise AssertionError(f"{what}: no {exc.__name__}")


# ------------------------------------------------------------ empty batches
@pytest.mark.parametrize("shape", [(0, 6), (0, 2, 3)])
def test_an_empty_batch_through_affine(backend, shape) -> None:
    """N = 0: an empty (0, M) output, an empty dx and zero dw and db."""
    x = backend.asarray(np.zeros(shape))
    w, b = backend.asarray(np.ones((6, 4))), backend.asarray(np.ones(4))
    for forward, backward in (
        (layers.affine_forward, layers.affine_backward),
        (layers.affine_relu_forward, layers.affine_relu_backward),
    ):
        out, cache = forward(x, w, b)
        assert tuple(out.shape) == (0, 4) and out.dtype == x.dtype
        dx, dw, db = backward(backend.asarray(np.zeros((0, 4))), cache)
        assert tuple(dx.shape) == shape
        np.testing.assert_array_equal(backend.numpy(dw), np.zeros((6, 4)))
        np.testing.assert_array_equal(backend.numpy(db), np.zeros(4))
    dw, db = layers.affine_param_grads(backend.asarray(np.zeros((0, 4))), cache[0])
    np.testing.assert_array_equal(backend.numpy(dw), np.zeros((6, 4)))


# ----------------------------------------------------- strides past the input
@pytest.mark.parametrize("stride, pad", [(10**9, 0), (10**9, 2), (7, 1)])
def test_a_stride_past_the_input_costs_the_output_not_the_stride(backend, stride, pad):
    """conv_param['truncate'] lets the stride pass the input: a stride of 10**9 on
    an 8x8 image gives the (1, 1) output at once, fast as naive (the fast layer
    used to build stride**2 phase planes)."""
    rng = np.random.default_rng(5)
    x, w, b = (
        rng.standard_normal((2, 3, 8, 8)),
        rng.standard_normal((4, 3, 3, 2)),
        rng.standard_normal(4),
    )
    param = {"stride": stride, "pad": pad, "truncate": True}
    out_n, cache_n = layers.conv_forward_naive(x, w, b, param)
    ho = (8 + 2 * pad - 3) // stride + 1
    assert out_n.shape == (2, 4, ho, (8 + 2 * pad - 2) // stride + 1)
    dout = rng.standard_normal(out_n.shape)
    want = [out_n, *layers.conv_backward_naive(dout, cache_n)]
    for fwd, bwd in (
        (layers.conv_forward_naive, layers.conv_backward_naive),
        (layers.conv_forward_fast, layers.conv_backward_fast),
    ):
        out, cache = fwd(*(backend.asarray(v) for v in (x, w, b)), param)
        got = [out, *bwd(backend.asarray(dout), cache)]
        for name, g, e in zip(("out", "dx", "dw", "db"), got, want, strict=True):
            np.testing.assert_allclose(backend.numpy(g), e, rtol=1e-12, atol=1e-12, err_msg=name)


# ------------------------------------------------------------ half precision
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_runs_naive_and_fast_alike(backend, dtype) -> None:
    """The floating dtypes a library has beyond the standard's (numpy float16, torch
    float16 and bfloat16) run naive and fast, in their own dtype; the fast conv
    used to fail in its work-array bookkeeping on bfloat16. Values in {-1, 0, 1}
    make every product and sum exact even in bfloat16."""
    xp = backend.xp
    if not hasattr(xp, dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    half = getattr(xp, dtype)
    rng = np.random.default_rng(6)
    host = [rng.integers(-1, 2, s).astype(np.float64) for s in ((2, 3, 6, 6), (4, 3, 3, 3), (4,))]
    cp, pp = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}

    def run(arrays, fwd, bwd, *params):
        out, cache = fwd(*arrays, *params)
        dout = np.cos(np.arange(math.prod(out.shape))).round().reshape(tuple(out.shape))
        return [out, *bwd(xp.astype(backend.asarray(dout), out.dtype), cache)]

    def exact(arrays):
        return [backend.numpy(xp.astype(a, xp.float32)) for a in arrays]

    halves = [xp.astype(backend.asarray(a), half) for a in host]
    wides = [backend.asarray(a) for a in host]
    for fwd, bwd, params in (
        (layers.conv_forward_naive, layers.conv_backward_naive, (cp,)),
        (layers.conv_forward_fast, layers.conv_backward_fast, (cp,)),
        (layers.conv_relu_pool_forward, layers.conv_relu_pool_backward, (cp, pp)),
    ):
        got = run(halves, fwd, bwd, *params)
        assert all(a.dtype == half for a in got), fwd.__name__
        want = exact(run(wides, fwd, bwd, *params))
        for g, e in zip(exact(got), want, strict=True):
            np.testing.assert_array_equal(g, e, err_msg=fwd.__name__)


def test_a_half_precision_mismatch_names_both_dtypes(backend) -> None:
    xp = backend.xp
    if not hasattr(xp, "bfloat16"):
        pytest.skip(f"{backend.name} has no bfloat16")
    x = xp.astype(backend.asarray(np.ones((1, 2, 4, 4))), xp.bfloat16)
    w, b = backend.asarray(np.ones((3, 2, 3, 3)), "float32"), backend.asarray(np.zeros(3))
    cp = {"stride": 1, "pad": 1}
    with pytest.raises(
        TypeError, match=rf"w is float32 but x is bfloat16.*{backend.name} bfloat16"
    ):
        layers.conv_forward_fast(x, w, b, cp)
    w, b = xp.astype(w, xp.bfloat16), xp.astype(b, xp.bfloat16)
    out, cache = layers.conv_forward_fast(x, w, b, cp)
    with pytest.raises(TypeError, match=r"dout is float32 but the forward ran in bfloat16"):
        layers.conv_backward_fast(xp.astype(out, xp.float32), cache)
