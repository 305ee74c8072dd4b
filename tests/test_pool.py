"""Max pooling (naive and fast) and the conv sandwiches, on every backend."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from asserts import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xplayers.backends as backends
from xplayers import layers as L
from xplayers.gradcheck import eval_numerical_gradient_array, rel_error
from xplayers.layers import _conv_pool

TOL = {"float64": 1e-10, "float32": 1e-5}
POOLS = {
    "naive": (L.max_pool_forward_naive, L.max_pool_backward_naive),
    "fast": (L.max_pool_forward_fast, L.max_pool_backward_fast),
}
# (x shape, pool_height, pool_width, stride): tiled, overlapping, non-square, gaps, 1x1.
GEOMETRIES = [
    ((2, 3, 4, 6), 2, 2, 2),
    ((2, 2, 5, 5), 3, 3, 1),
    ((1, 3, 5, 6), 3, 2, 1),
    ((2, 2, 6, 7), 2, 3, 2),
    ((2, 2, 7, 7), 3, 3, 2),
    ((1, 2, 5, 8), 2, 2, 3),
    ((2, 1, 3, 4), 1, 1, 1),
]
GEOMETRY_IDS = [f"{s[2]}x{s[3]}-pool{ph}x{pw}-s{st}" for s, ph, pw, st in GEOMETRIES]


def _pool_param(ph: int, pw: int, stride: int) -> dict:
    return {"pool_height": ph, "pool_width": pw, "stride": stride}


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.1 apart, so no window has a near-tie within the probe step."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - n * 0.05).reshape(shape)


def _pool(impl: str, backend, host_x, pp, dout=None, dtype="float64"):
    forward, backward = POOLS[impl]
    x = backend.asarray(host_x, dtype)
    out, cache = forward(x, pp)
    if dout is None:
        dout = np.random.default_rng(1).standard_normal(tuple(out.shape))
    return x, out, backward(backend.asarray(dout, dtype), cache), dout


# ------------------------------------------------------------ gradients
@pytest.mark.parametrize("impl", list(POOLS))
@pytest.mark.parametrize(("shape", "ph", "pw", "stride"), GEOMETRIES, ids=GEOMETRY_IDS)
def test_pool_gradient_matches_numerical(backend, impl, shape, ph, pw, stride) -> None:
    pp = _pool_param(ph, pw, stride)
    x, out, dx, dout = _pool(impl, backend, _distinct(np.random.default_rng(0), shape), pp)
    ho, wo = (shape[2] - ph) // stride + 1, (shape[3] - pw) // stride + 1
    assert tuple(out.shape) == (shape[0], shape[1], ho, wo)
    forward = POOLS[impl][0]
    numeric = eval_numerical_gradient_array(lambda v: forward(v, pp)[0], x, backend.asarray(dout))
    assert rel_error(dx, numeric) < 1e-7


def test_pool_forward_values(backend) -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    for impl in POOLS:
        _, out, _, _ = _pool(impl, backend, x, _pool_param(2, 2, 2))
        np.testing.assert_array_equal(backend.numpy(out)[0, 0], [[5, 7], [13, 15]])
        _, out, _, _ = _pool(impl, backend, x, _pool_param(3, 2, 1))
        np.testing.assert_array_equal(backend.numpy(out)[0, 0], [[9, 10, 11], [13, 14, 15]])


# ------------------------------------------------------------ ties
@pytest.mark.parametrize("impl", list(POOLS))
def test_ties_go_to_first_maximum_in_row_major_order(backend, impl) -> None:
    # Window 0: all equal -> top-left. Window 1: max 3 at (0,1) and (1,0) -> (0,1).
    x = np.array([[[[1.0, 1.0, 0.0, 3.0], [1.0, 1.0, 3.0, 2.0]]]])
    _, _, dx, _ = _pool(impl, backend, x, _pool_param(2, 2, 2), dout=np.array([[[[5.0, 7.0]]]]))
    np.testing.assert_array_equal(backend.numpy(dx)[0, 0], [[5, 0, 0, 7], [0, 0, 0, 0]])


@pytest.mark.parametrize("impl", list(POOLS))
def test_overlapping_windows_accumulate_at_shared_maximum(backend, impl) -> None:
    # The centre is the maximum of all four 2x2 stride-1 windows of a 3x3 image.
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    _, _, dx, _ = _pool(impl, backend, x, _pool_param(2, 2, 1), dout=dout)
    expected = np.zeros((3, 3))
    expected[1, 1] = 10.0
    np.testing.assert_array_equal(backend.numpy(dx)[0, 0], expected)


@st.composite
def _pool_problem(draw):
    ph, pw, stride = (draw(st.integers(1, 3)) for _ in range(3))
    ho, wo = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    shape = (n, c, (ho - 1) * stride + ph, (wo - 1) * stride + pw)
    seed = draw(st.integers(0, 2**32 - 1))
    # Few distinct integers: most windows hold ties.
    levels = draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, shape).astype(np.float64)
    dout = rng.standard_normal((n, c, ho, wo))
    return x, dout, _pool_param(ph, pw, stride)


@settings(max_examples=60, deadline=None)
@given(_pool_problem())
def test_naive_and_fast_agree_with_ties(problem) -> None:
    x, dout, pp = problem
    out_n, cache_n = L.max_pool_forward_naive(x, pp)
    out_f, cache_f = L.max_pool_forward_fast(x, pp)
    np.testing.assert_array_equal(out_f, out_n)
    dx_n = L.max_pool_backward_naive(dout, cache_n)
    dx_f = L.max_pool_backward_fast(dout, cache_f)
    assert rel_error(dx_f, dx_n) < 1e-10
    # Each window sends its whole gradient to exactly one element.
    np.testing.assert_allclose(dx_f.sum(), dout.sum(), rtol=1e-10, atol=1e-12)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(problem=_pool_problem())
def test_fast_pool_on_every_backend_matches_numpy_naive(backend, problem) -> None:
    x, dout, pp = problem
    out_n, cache_n = L.max_pool_forward_naive(x, pp)
    _, out, dx, _ = _pool("fast", backend, x, pp, dout)
    np.testing.assert_array_equal(backend.numpy(out), out_n)
    assert rel_error(dx, L.max_pool_backward_naive(dout, cache_n)) < 1e-10


@pytest.mark.parametrize(("shape", "ph", "pw", "stride"), GEOMETRIES, ids=GEOMETRY_IDS)
@pytest.mark.parametrize("per_chunk", [1, 2])
def test_fast_pool_batch_chunks_match_naive(
    backend, host_policy, chunk_spans, shape, ph, pw, stride, per_chunk
):
    """Chunks of 1-2 images (an uneven last one) give the naive results, ties included."""
    per_image = shape[1] * shape[2] * shape[3]
    host_policy(pool_chunk_elements=per_chunk * per_image)
    shape = (5, *shape[1:])  # 5 images: chunks do not divide the batch evenly
    rng = np.random.default_rng(12)
    x = rng.integers(0, 3, shape).astype(np.float64)  # many ties
    pp = _pool_param(ph, pw, stride)
    out_n, cache_n = L.max_pool_forward_naive(x, pp)
    dout = rng.standard_normal(out_n.shape)
    _, out, dx, _ = _pool("fast", backend, x, pp, dout)
    np.testing.assert_array_equal(backend.numpy(out), out_n)
    np.testing.assert_allclose(
        backend.numpy(dx), L.max_pool_backward_naive(dout, cache_n), rtol=1e-12, atol=1e-12
    )
    chunk_spans.assert_chunks(out, per_chunk, shape[0])  # forward and backward


# ------------------------------------------------------------ parity and dtypes
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", list(POOLS))
def test_pool_parity_with_numpy(other_backend, numpy_case, impl, dtype) -> None:
    host = np.random.default_rng(3).standard_normal((2, 3, 7, 6))
    pp = _pool_param(3, 2, 2)
    _, ref_out, ref_dx, dout = _pool(impl, numpy_case, host, pp, dtype=dtype)
    x, out, dx, _ = _pool(impl, other_backend, host, pp, dout, dtype=dtype)
    assert_close(out, ref_out, like=x, rtol=TOL[dtype], err_msg="out")
    assert_close(dx, ref_dx, like=x, rtol=TOL[dtype], err_msg="dx")


@pytest.mark.parametrize("impl", list(POOLS))
def test_pool_keeps_float32_and_backend(backend, impl) -> None:
    host = np.random.default_rng(4).standard_normal((2, 2, 4, 4))
    _, out, dx, _ = _pool(impl, backend, host, _pool_param(2, 2, 2), dtype="float32")
    for arr in (out, dx):
        assert arr.dtype == backend.xp.float32
        assert backends.backend_of(arr) == backend.name


# ------------------------------------------------------------ against torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize(("shape", "ph", "pw", "stride"), GEOMETRIES, ids=GEOMETRY_IDS)
def test_fast_pool_matches_torch_max_pool2d(shape, ph, pw, stride) -> None:
    import torch

    host = np.random.default_rng(5).standard_normal(shape)
    pp = _pool_param(ph, pw, stride)
    out, cache = L.max_pool_forward_fast(host, pp)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    dx = L.max_pool_backward_fast(dout, cache)

    xt = torch.tensor(host, requires_grad=True)
    ot = torch.nn.functional.max_pool2d(xt, (ph, pw), stride)
    ot.backward(torch.tensor(dout))
    assert rel_error(out, ot.detach().numpy()) < 1e-12
    assert rel_error(dx, xt.grad.numpy()) < 1e-12


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("impl", list(POOLS))
def test_pool_errors_name_the_problem(backend, impl) -> None:
    forward, backward = POOLS[impl]
    x = backend.asarray(np.zeros((2, 3, 5, 6)))
    with pytest.raises(ValueError, match=r"x must be 4-d \(N, C, H, W\).*shape \(5, 6\)"):
        forward(backend.asarray(np.zeros((5, 6))), _pool_param(2, 2, 2))
    with pytest.raises(ValueError, match=r"does not tile the input height.*\(height 5 - pool 2\)"):
        forward(x, _pool_param(2, 2, 2))
    with pytest.raises(ValueError, match=r"pool_param\['stride'\] must be a positive int, got 0"):
        forward(x, _pool_param(1, 2, 0))
    with pytest.raises(ValueError, match=r"pool_param\['pool_height'\] must be a positive int"):
        forward(x, _pool_param(-1, 2, 1))
    with pytest.raises(ValueError, match=r"pool_param lacks 'stride'"):
        forward(x, {"pool_height": 2, "pool_width": 2})
    with pytest.raises(ValueError, match=r"pool window \(7x2\) is larger than the input height 5"):
        forward(x, _pool_param(7, 2, 1))
    with pytest.raises(TypeError, match=r"x must be a real floating array.*int"):
        forward(backend.asarray(np.zeros((1, 1, 2, 2), dtype=np.int64)), _pool_param(2, 2, 2))
    _, cache = forward(x, _pool_param(3, 2, 2))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 2, 3\)"):
        backward(backend.asarray(np.zeros((2, 3, 3, 3))), cache)


# ------------------------------------------------------------ conv sandwiches
def _sandwich_inputs(backend, pool: bool):
    rng = np.random.default_rng(7)
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)))
    w = backend.asarray(rng.standard_normal((4, 3, 3, 3)))
    b = backend.asarray(rng.standard_normal(4))
    conv_param = {"stride": 1, "pad": 1}
    if pool:

        def forward(x, w, b):
            return L.conv_relu_pool_forward(x, w, b, conv_param, _pool_param(2, 2, 2))

        return (x, w, b), forward, L.conv_relu_pool_backward
    return (x, w, b), lambda x, w, b: L.conv_relu_forward(x, w, b, conv_param), L.conv_relu_backward


@pytest.mark.parametrize("pool", [False, True], ids=["conv_relu", "conv_relu_pool"])
def test_conv_sandwich_gradients(backend, pool) -> None:
    args, forward, backward = _sandwich_inputs(backend, pool)
    out, cache = forward(*args)
    dout = backend.asarray(np.random.default_rng(8).standard_normal(tuple(out.shape)))
    grads = backward(dout, cache)
    for i, analytic in enumerate(grads):

        def f(v, i=i):
            return forward(*(v if j == i else a for j, a in enumerate(args)))[0]

        # The sandwich is piecewise linear, so a larger step adds no truncation
        # error and divides the forward's round-off (summed over all outputs) by more.
        numeric = eval_numerical_gradient_array(f, args[i], dout, h=1e-4)
        assert rel_error(analytic, numeric) < 1e-7, ("dx", "dw", "db")[i]


@pytest.mark.parametrize("pool", [False, True], ids=["conv_relu", "conv_relu_pool"])
def test_conv_sandwich_matches_its_parts(backend, pool) -> None:
    (x, w, b), forward, _ = _sandwich_inputs(backend, pool)
    out, _ = forward(x, w, b)
    a, _ = L.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    expected = backend.numpy(a).clip(min=0)
    if pool:
        expected = expected.reshape(2, 4, 3, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_allclose(backend.numpy(out), expected, rtol=1e-10, atol=1e-12)


def test_fast_pool_empty_batch(backend) -> None:
    x = backend.asarray(np.zeros((0, 2, 4, 4)))
    out, cache = L.max_pool_forward_fast(x, _pool_param(2, 2, 2))
    dx = L.max_pool_backward_fast(backend.asarray(np.zeros((0, 2, 2, 2))), cache)
    assert tuple(out.shape) == (0, 2, 2, 2) and tuple(dx.shape) == (0, 2, 4, 4)


# (x shape, w shape, pool (ph, pw, stride), whether the fused pass runs)
# (2 channels: channels-last pairs; 5: flat windows)
CONV_POOL_CASES = {
    "fused": ((3, 2, 6, 6), (4, 2, 3, 3), (2, 2, 2), True),
    "fused-3x3-pool": ((2, 2, 6, 6), (3, 2, 3, 3), (3, 3, 3), True),
    "fused-flat": ((3, 5, 4, 4), (6, 5, 5, 5), (2, 2, 2), True),  # junk rows 3/5: no rows
    "transposed-conv": ((3, 5, 4, 4), (2, 5, 5, 5), (2, 2, 2), False),  # F <= C
    "kernel-rows": ((3, 5, 6, 6), (6, 5, 3, 3), (2, 2, 2), False),
    "overlapping-pool": ((3, 2, 6, 6), (4, 2, 3, 3), (2, 2, 1), False),
}


@pytest.mark.parametrize("case", list(CONV_POOL_CASES))
@pytest.mark.parametrize("per_chunk", [None, 1], ids=["one-chunk", "chunks-of-1"])
@pytest.mark.parametrize("need_dx", [True, False], ids=["dx", "no-dx"])
def test_conv_relu_pool_equals_the_unfused_chain_exactly(
    backend, host_policy, case, per_chunk, need_dx
) -> None:
    """relu after the pool is relu before it, gradients included, whether the
    fused per-chunk pass runs or the chain does: integer inputs give exact ties,
    zeros and windows without a positive entry; a NaN pixel gives NaN windows.
    Integer-valued data also makes every product and sum exact, so the fused
    path's other orientation of the products cannot round differently."""
    x_shape, w_shape, (ph, pw, stride), fused = CONV_POOL_CASES[case]
    if per_chunk is not None:
        host_policy(chunk_elements=1, chunk_images=per_chunk)
    rng = np.random.default_rng(9)
    x_host = rng.integers(-2, 3, x_shape).astype(np.float64)
    x_host[0, 0, 2, 3] = np.nan
    x = backend.asarray(x_host)
    w = backend.asarray(rng.integers(-1, 2, w_shape).astype(np.float64))
    b_host = rng.integers(-1, 2, w_shape[0]).astype(np.float64)
    b_host[1] = -20.0  # filter 1: nothing positive
    b = backend.asarray(b_host)
    cp, pp = {"stride": 1, "pad": 1}, _pool_param(ph, pw, stride)
    out, cache = L.conv_relu_pool_forward(x, w, b, cp, pp)
    # Arrays that cannot be written (JAX) always run the chain, on its functional routes.
    assert isinstance(cache, _conv_pool.ConvPoolCache) == (fused and backends.writes_in_place(x))
    a, conv_cache = L.conv_forward_fast(x, w, b, cp)
    s, relu_cache = L.relu_forward(a)
    ref, pool_cache = L.max_pool_forward_fast(s, pp)
    np.testing.assert_array_equal(backend.numpy(out), backend.numpy(ref))
    assert np.nansum(backend.numpy(out)[1:, 1]) == 0 and np.isnan(backend.numpy(out)).any()
    dout = backend.asarray(rng.integers(-3, 4, tuple(out.shape)).astype(np.float64))
    got = L.conv_relu_pool_backward(dout, cache, need_dx=need_dx)
    ds = L.max_pool_backward_fast(dout, pool_cache)
    want = L.conv_backward_fast(L.relu_backward(ds, relu_cache), conv_cache, need_dx=need_dx)
    assert (got[0] is None) == (not need_dx)
    for name, g, e in zip(("dx", "dw", "db"), got, want, strict=True):
        if g is not None:
            np.testing.assert_array_equal(backend.numpy(g), backend.numpy(e), err_msg=name)


@pytest.mark.parametrize("per_chunk", [None, 1], ids=["one-chunk", "chunks-of-1"])
@pytest.mark.parametrize("c, f", [(2, 4), (5, 6), (16, 20)], ids=["pairs", "flat", "last"])
def test_conv_relu_pool_matches_the_unfused_chain_on_real_data(
    backend, host_policy, monkeypatch, per_chunk, c, f
):
    """On real-valued float64 data the fused path agrees with the chain to
    rounding, on each column layout ("last": channels-last, one output a row)."""
    if per_chunk is not None:
        host_policy(chunk_elements=1, chunk_images=per_chunk)
    if c == 16:
        monkeypatch.setattr(L.conv, "LOWERING", "channels_last")
    if c == 5:
        monkeypatch.setattr(L.conv, "LOWERING", "flat")  # not kernel rows, which run unfused
    rng = np.random.default_rng(10)
    x = backend.asarray(rng.standard_normal((3, c, 8, 8)))
    w = backend.asarray(rng.standard_normal((f, c, 3, 3)))
    b = backend.asarray(rng.standard_normal(f))
    cp, pp = {"stride": 1, "pad": 1}, _pool_param(2, 2, 2)
    out, cache = L.conv_relu_pool_forward(x, w, b, cp, pp)
    assert isinstance(cache, _conv_pool.ConvPoolCache) == backends.writes_in_place(x)
    a, conv_cache = L.conv_forward_fast(x, w, b, cp)
    pooled, pool_cache = L.max_pool_forward_fast(a, pp)
    ref, relu_cache = L.relu_forward(pooled)
    np.testing.assert_allclose(backend.numpy(out), backend.numpy(ref), rtol=1e-13, atol=1e-13)
    dout = backend.asarray(rng.standard_normal(tuple(out.shape)))
    got = L.conv_relu_pool_backward(dout, cache)
    dpool = L.max_pool_backward_fast(L.relu_backward(dout, relu_cache), pool_cache)
    want = L.conv_backward_fast(dpool, conv_cache)
    for name, g, e in zip(("dx", "dw", "db"), got, want, strict=True):
        np.testing.assert_allclose(
            backend.numpy(g), backend.numpy(e), rtol=1e-12, atol=1e-12, err_msg=name
        )


def test_fused_conv_relu_pool_checks_dout(backend) -> None:
    x = backend.asarray(np.ones((2, 2, 4, 4)))
    w, b = backend.asarray(np.ones((3, 2, 3, 3))), backend.asarray(np.zeros(3))
    _, cache = L.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, _pool_param(2, 2, 2))
    assert isinstance(cache, _conv_pool.ConvPoolCache) == backends.writes_in_place(x)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 2, 2\)"):
        L.conv_relu_pool_backward(backend.asarray(np.ones((2, 3, 4, 4))), cache)
