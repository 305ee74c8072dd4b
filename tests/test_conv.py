"""Convolution layer: gradients, naive == fast, backend parity, torch agreement, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from asserts import assert_close
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xplayers.backends as backends
from xplayers.gradcheck import eval_numerical_gradient_array, rel_error
from xplayers.layers import conv
from xplayers.layers.conv import (
    conv_backward_fast,
    conv_backward_naive,
    conv_forward_fast,
    conv_forward_naive,
)


def _lowered(lowering, fn):
    """fn with the fast convolution's column layout forced to ``lowering``."""

    def run(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(conv, "LOWERING", lowering)
            return fn(*args, **kwargs)

    return run


IMPLS = {
    "naive": (conv_forward_naive, conv_backward_naive),
    "fast": (_lowered("flat", conv_forward_fast), _lowered("flat", conv_backward_fast)),
    "fast_channels_last": (
        _lowered("channels_last", conv_forward_fast),
        _lowered("channels_last", conv_backward_fast),
    ),
}
FAST = [IMPLS["fast"], IMPLS["fast_channels_last"]]

# x shape, w shape, stride, pad: odd sizes, pad 0, stride 2 and 3, strides that
# leave rows over (accepted with truncate=True, floored as torch does) and
# non-square shapes.
GRAD_SHAPES = [
    ((2, 3, 5, 5), (2, 3, 3, 3), 1, 1),
    ((2, 2, 7, 6), (3, 2, 3, 2), 2, 0),
    ((1, 2, 6, 7), (2, 2, 2, 3), 1, 0),
    ((2, 1, 7, 8), (2, 1, 3, 3), 2, 1),
    ((1, 2, 8, 7), (2, 2, 3, 3), 3, 2),
    ((2, 3, 6, 6), (2, 3, 3, 3), 1, 1),  # channels-last pairs: stride 1, few channels, even Wo
]


def cparam(xs, ws, stride, pad):
    """conv_param for a case; ``truncate`` only where the stride leaves rows over."""
    spans = (xs[2] + 2 * pad - ws[2], xs[3] + 2 * pad - ws[3])
    param = {"stride": stride, "pad": pad}
    if any(span % stride for span in spans):
        param["truncate"] = True
    return param


def reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int):
    """Textbook loops in numpy float64: the independent reference."""
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - hh) // stride + 1
    wo = (wd + 2 * pad - ww) // stride + 1
    out = np.zeros((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp_[:, :, i * stride : i * stride + hh, j * stride : j * stride + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def make(rng, xs, ws, dtype=np.float64):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    return x, w, b


def fast_and_naive(backend, rng, xs, ws, param):
    """[out, dx, dw, db] of the fast layer on ``backend`` and of the naive one in numpy,
    for random x, w, b of these shapes and a random dout."""
    x, w, b = make(rng, xs, ws)
    out_n, cache_n = conv_forward_naive(x, w, b, param)
    dout = rng.standard_normal(out_n.shape)
    expected = [out_n, *conv_backward_naive(dout, cache_n)]
    out, cache = conv_forward_fast(*(backend.asarray(a) for a in (x, w, b)), param)
    return [out, *conv_backward_fast(backend.asarray(dout), cache)], expected


@pytest.mark.parametrize("impl", list(IMPLS))
def test_forward_matches_reference(backend, impl):
    fwd, _ = IMPLS[impl]
    rng = np.random.default_rng(0)
    for xs, ws, s, p in GRAD_SHAPES:
        x, w, b = make(rng, xs, ws)
        out, _ = fwd(
            backend.asarray(x), backend.asarray(w), backend.asarray(b), cparam(xs, ws, s, p)
        )
        np.testing.assert_allclose(
            backend.numpy(out), reference_conv(x, w, b, s, p), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", range(len(GRAD_SHAPES)))
def test_numerical_gradients(backend, impl, case):
    fwd, bwd = IMPLS[impl]
    xs, ws, s, p = GRAD_SHAPES[case]
    rng = np.random.default_rng(case)
    x, w, b = (backend.asarray(a) for a in make(rng, xs, ws))
    param = cparam(xs, ws, s, p)
    out, cache = fwd(x, w, b, param)
    dout = backend.asarray(rng.standard_normal(tuple(out.shape)))
    dx, dw, db = bwd(dout, cache)
    args = {"x": x, "w": w, "b": b}
    for name, grad in (("x", dx), ("w", dw), ("b", db)):

        def f(v, name=name):
            return fwd(**{**args, name: v}, conv_param=param)[0]

        num = eval_numerical_gradient_array(f, args[name], dout)
        err = rel_error(backend.numpy(grad), backend.numpy(num))
        assert err < 1e-7, f"d{name} of {impl} on {backend.name}: rel error {err:.2e}"


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    f=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    hh=st.integers(1, 4),
    ww=st.integers(1, 4),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_naive_equals_fast(n, c, f, h, w, hh, ww, stride, pad, seed):
    assume(hh <= h + 2 * pad and ww <= w + 2 * pad)
    rng = np.random.default_rng(seed)
    x, wt, b = make(rng, (n, c, h, w), (f, c, hh, ww))
    param = {"stride": stride, "pad": pad, "truncate": True}
    out_n, cache_n = conv_forward_naive(x, wt, b, param)
    dout = rng.standard_normal(out_n.shape)
    grads_n = conv_backward_naive(dout, cache_n)
    for fwd, bwd in FAST:
        out_f, cache_f = fwd(x, wt, b, param)
        np.testing.assert_allclose(out_f, out_n, rtol=1e-10, atol=1e-10)
        for gn, gf in zip(grads_n, bwd(dout, cache_f), strict=True):
            assert gf.shape == gn.shape
            np.testing.assert_allclose(gf, gn, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_parity_with_numpy(other_backend, numpy_case, impl, dtype, tol):
    fwd, bwd = IMPLS[impl]
    rng = np.random.default_rng(1)
    for xs, ws, s, p in GRAD_SHAPES:
        x, w, b = make(rng, xs, ws, dtype)
        dout = rng.standard_normal(reference_conv(x, w, b, s, p).shape).astype(dtype)
        results = []
        for case in (numpy_case, other_backend):
            args = [case.asarray(a) for a in (x, w, b)]
            out, cache = fwd(*args, cparam(xs, ws, s, p))
            results.append([out, *bwd(case.asarray(dout), cache)])
        for name, ref, got in zip(("out", "dx", "dw", "db"), *results, strict=True):
            assert_close(got, ref, like=args[0], rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_dtype_and_namespace_preserved(backend, impl):
    fwd, bwd = IMPLS[impl]
    rng = np.random.default_rng(2)
    for xs, ws, s, p in GRAD_SHAPES[:2]:
        x, w, b = (backend.asarray(a, "float32") for a in make(rng, xs, ws))
        out, cache = fwd(x, w, b, cparam(xs, ws, s, p))
        grads = bwd(backend.asarray(np.ones(tuple(out.shape)), "float32"), cache)
        for name, a in zip(("out", "dx", "dw", "db"), (out, *grads), strict=True):
            assert a.dtype == backend.xp.float32, f"{name} is {a.dtype}"
            assert backends.backend_of(a) == backend.name
            assert a.device == x.device
        assert tuple(grads[0].shape) == xs and tuple(grads[1].shape) == ws


@pytest.mark.parametrize("case", [*GRAD_SHAPES, ((4, 3, 12, 10), (5, 3, 3, 3), 1, 1)])
def test_fast_matches_torch(case, conv_lowering):
    torch = pytest.importorskip("torch")
    xs, ws, s, p = case
    rng = np.random.default_rng(3)
    x, w, b = make(rng, xs, ws)
    out, cache = conv_forward_fast(x, w, b, cparam(xs, ws, s, p))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    for ours, t in zip(conv_backward_fast(dout, cache), (tx, tw, tb), strict=True):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------- errors
def _args(xs=(2, 3, 8, 8), ws=(4, 3, 3, 3), bs=(4,)):
    rng = np.random.default_rng(4)
    return rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(bs)


@pytest.mark.parametrize("fwd", [conv_forward_naive, conv_forward_fast])
@pytest.mark.parametrize(
    "kwargs, param, exc, match",
    [
        ({"xs": (3, 8, 8)}, None, ValueError, r"x must be 4-d .*shape \(3, 8, 8\)"),
        ({"ws": (4, 2, 3, 3)}, None, ValueError, r"w has 2 input channels but x has 3"),
        ({"ws": (4, 3, 3)}, None, ValueError, r"w must be 4-d"),
        ({"bs": (3,)}, None, ValueError, r"b must have shape \(4,\).*shape \(3,\)"),
        ({"ws": (4, 3, 11, 3)}, None, ValueError, r"larger than the padded input height 10"),
        ({}, {"stride": 0, "pad": 1}, ValueError, r"stride.*positive int, got 0"),
        ({}, {"stride": 1, "pad": -1}, ValueError, r"pad.*non-negative int, got -1"),
        ({}, {"stride": 1}, ValueError, r"conv_param must be a dict with 'stride' and 'pad'"),
    ],
)
def test_bad_inputs_raise_clear_errors(fwd, kwargs, param, exc, match):
    x, w, b = _args(**kwargs)
    with pytest.raises(exc, match=match):
        fwd(x, w, b, param or {"stride": 1, "pad": 1})


def test_dtype_mismatch_and_integer_input_raise():
    x, w, b = _args()
    with pytest.raises(TypeError, match=r"w is float64 but x is float32"):
        conv_forward_fast(x.astype(np.float32), w, b, {"stride": 1, "pad": 1})
    with pytest.raises(TypeError, match=r"x must be a real floating array.*int64"):
        conv_forward_fast(x.astype(np.int64), w, b, {"stride": 1, "pad": 1})


@pytest.mark.parametrize("impl", list(IMPLS))
def test_bad_dout_raises(impl):
    fwd, bwd = IMPLS[impl]
    x, w, b = _args()
    _, cache = fwd(x, w, b, {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 4, 8, 8\)"):
        bwd(np.zeros((2, 4, 7, 8)), cache)


def test_mixed_backends_raise_backend_error():
    torch = pytest.importorskip("torch")
    x, w, b = _args()
    with pytest.raises(backends.BackendError, match=r"x is a numpy.*w is a torch"):
        conv_forward_fast(x, torch.tensor(w), b, {"stride": 1, "pad": 1})


# ------------------------------------------------- stride tiling / truncate
@pytest.mark.parametrize("fwd", [conv_forward_naive, conv_forward_fast])
def test_stride_that_does_not_tile_raises(fwd):
    # The benchmark's third shape: 16 + 2*1 - 3 = 15 is odd, stride 2.
    x, w, b = _args((2, 3, 16, 16), (4, 3, 3, 3))
    match = (
        r"stride 2 does not tile the padded input height.*= 15 leaves a remainder of 1"
        r".*shape \(2, 3, 16, 16\).*shape \(4, 3, 3, 3\).*stride=2, pad=1"
        r".*conv_param\['truncate'\] = True"
    )
    with pytest.raises(ValueError, match=match):
        fwd(x, w, b, {"stride": 2, "pad": 1})
    x, w, b = _args((2, 3, 9, 8), (4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"padded input width.*remainder of 2"):
        fwd(x, w, b, {"stride": 3, "pad": 0})
    with pytest.raises(ValueError, match=r"truncate'\] must be True or False, got 1"):
        fwd(x, w, b, {"stride": 1, "pad": 0, "truncate": 1})


TRUNCATE_SHAPES = [
    ((3, 4, 16, 16), (5, 4, 3, 3), 2, 1),
    ((2, 3, 9, 11), (4, 3, 3, 2), 3, 1),
    ((2, 2, 10, 7), (3, 2, 4, 4), 4, 2),
]


@pytest.mark.parametrize("case", TRUNCATE_SHAPES)
def test_truncate_matches_torch_and_naive(backend, case):
    torch = pytest.importorskip("torch")
    xs, ws, s, p = case
    rng = np.random.default_rng(5)
    x, w, b = make(rng, xs, ws)
    param = {"stride": s, "pad": p, "truncate": True}
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
    dout = rng.standard_normal(tuple(tout.shape))
    tout.backward(torch.tensor(dout))
    expected = [tout.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()]
    for fwd, bwd in IMPLS.values():
        out, cache = fwd(*(backend.asarray(a) for a in (x, w, b)), param)
        got = [out, *bwd(backend.asarray(dout), cache)]
        for ours, ref in zip(got, expected, strict=True):
            np.testing.assert_allclose(backend.numpy(ours), ref, rtol=1e-10, atol=1e-10)


# ------------------------------------------------ chunking and fast paths
CHUNK_SHAPES = [
    ((7, 3, 6, 5), (2, 3, 3, 3), 1, 1),  # F <= C, stride 1: dx by the transposed conv
    ((7, 2, 6, 5), (4, 2, 3, 2), 1, 0),  # F > C: dx by col2im
    ((5, 3, 9, 8), (4, 3, 3, 3), 2, 1),  # stride 2, truncated width
    ((5, 2, 8, 7), (2, 2, 2, 3), 3, 2),  # stride 3 with gaps
]


@pytest.mark.parametrize("case", CHUNK_SHAPES)
@pytest.mark.parametrize("per_chunk", [1, 2, 3])
def test_fast_batch_chunks_match_naive(
    backend, host_policy, chunk_spans, case, per_chunk, conv_lowering
):
    """Tiny chunks (1-3 images, an uneven last one) give the one-chunk results."""
    host_policy(chunk_images=per_chunk, min_chunk_elements=0)
    xs, ws, s, p = case
    got, expected = fast_and_naive(backend, np.random.default_rng(6), xs, ws, cparam(xs, ws, s, p))
    for ours, ref in zip(got, expected, strict=True):
        np.testing.assert_allclose(backend.numpy(ours), ref, rtol=1e-10, atol=1e-10)
    chunk_spans.assert_chunks(got[0], per_chunk, xs[0])  # forward and backward


def test_matmul_into_fast_path_equals_portable(monkeypatch, host_policy, conv_lowering):
    """numpy's matmul(out=) route and the portable ``out[...] = a @ b`` agree."""
    host_policy(chunk_images=2, min_chunk_elements=0)
    rng = np.random.default_rng(7)
    x, w, b = make(rng, (5, 3, 7, 7), (4, 3, 3, 3))
    dout = rng.standard_normal((5, 4, 7, 7))
    param = {"stride": 1, "pad": 1}

    def run():
        out, cache = conv_forward_fast(x, w, b, param)
        return [out, *conv_backward_fast(dout, cache)]

    fast = run()
    monkeypatch.setattr(
        type(backends.get_backend("numpy")), "matmul_into", backends.Backend.matmul_into
    )
    portable = run()
    for a, p_ in zip(fast, portable, strict=True):
        np.testing.assert_allclose(a, p_, rtol=1e-13, atol=1e-13)
    c = np.empty((3, 5))
    a_, b_ = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    assert backends.matmul_into(a_, b_.T, c) is c
    np.testing.assert_allclose(c, a_ @ b_.T, rtol=1e-13)


@pytest.mark.parametrize("case", GRAD_SHAPES[:4], ids=str)
def test_backward_without_dx_gives_the_same_param_grads(backend, case, conv_lowering):
    """need_dx=False (a first layer) skips dx and leaves dw and db unchanged."""
    xs, ws, stride, pad = case
    x, w, b = (backend.asarray(a) for a in make(np.random.default_rng(8), xs, ws))
    out, cache = conv_forward_fast(x, w, b, cparam(xs, ws, stride, pad))
    dout = backend.asarray(np.random.default_rng(9).standard_normal(tuple(out.shape)))
    _, dw, db = conv_backward_fast(dout, cache)
    no_dx, dw2, db2 = conv_backward_fast(dout, cache, need_dx=False)
    assert no_dx is None
    np.testing.assert_array_equal(backend.numpy(dw2), backend.numpy(dw))
    np.testing.assert_array_equal(backend.numpy(db2), backend.numpy(db))


def test_work_arrays_are_private_to_each_thread(conv_lowering):
    """Work arrays outlive a call, per thread: concurrent convs must not share them."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(10)
    # One geometry, two inputs: a shared cache would hand both threads the same arrays.
    cases = [make(rng, (6, 3, 9, 9), (4, 3, 3, 3)) for _ in range(2)]
    param = {"stride": 1, "pad": 1}

    def run(args):
        out, cache = conv_forward_fast(*args, param)
        return [out, *conv_backward_fast(out, cache)]

    expected = [run(args) for args in cases]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(20):
            got = list(pool.map(run, cases))
            for exp, res in zip(expected, got, strict=True):
                for e, r in zip(exp, res, strict=True):
                    np.testing.assert_array_equal(r, e)


# ----------------------------------------------------------- column layouts
@pytest.mark.parametrize(
    "xs, ws, stride, pad, expected",
    [
        ((2, 16, 16, 16), (8, 16, 3, 3), 2, 1, "channels_last"),  # Wo 8
        ((2, 64, 24, 24), (8, 64, 3, 3), 2, 1, "channels_last"),  # Wo 12
        ((2, 32, 8, 8), (8, 32, 1, 1), 2, 0, "channels_last"),  # 1x1, Wo 4
        ((2, 64, 32, 32), (8, 64, 3, 3), 2, 1, "flat"),  # Wo 16
        ((2, 8, 16, 16), (8, 8, 3, 3), 2, 1, "flat"),  # too few channels
        ((2, 64, 8, 8), (8, 64, 3, 3), 1, 1, "channels_last"),  # stride 1, Wo 8
        ((2, 64, 16, 16), (8, 64, 3, 3), 1, 1, "rows"),  # stride 1, few filters
        ((2, 64, 16, 16), (130, 64, 3, 3), 1, 1, "flat"),  # more filters than rows_max_f
        ((2, 8, 5, 5), (8, 8, 5, 5), 1, 0, "flat"),  # one output row: junk rows 4/5
        ((2, 8, 4, 4), (8, 8, 3, 3), 1, 1, "rows"),  # junk rows 1/5 (images share padding)
        ((2, 8, 8, 8), (8, 8, 3, 3), 1, 3, "flat"),  # pad not below the kernel
        ((2, 3, 8, 8), (8, 3, 3, 3), 1, 1, "flat"),  # C 3: pairs only fused, no rows
        ((2, 5, 8, 8), (8, 5, 3, 3), 1, 1, "rows"),  # C above the policy's pairs_max_c
        ((2, 5, 7, 7), (8, 5, 3, 3), 1, 0, "flat"),  # junk rows 2/7 (no padding to share)
        ((2, 8, 8, 8), (4, 8, 1, 1), 1, 0, "pointwise"),  # 1x1, 64 outputs
        ((2, 8, 15, 15), (4, 8, 1, 1), 2, 0, "pointwise"),  # 1x1 strided, 64 outputs
        ((2, 8, 4, 4), (4, 8, 1, 1), 1, 0, "flat"),  # 1x1, 16 outputs
        ((2, 8, 8, 8), (4, 8, 1, 1), 1, 1, "flat"),  # 1x1 padded
    ],
)
def test_auto_layout_choice_and_its_results(backend, monkeypatch, xs, ws, stride, pad, expected):
    """ "auto" picks the lowering the docs promise, and each gives the naive results."""
    used = []
    modules = (conv._conv_channels_last, conv._conv_flat, conv._conv_rows, conv._conv_pointwise)
    for module in modules:
        for name in ("forward", "backward"):
            real, label = getattr(module, name), f"{module.__name__.rsplit('.', 1)[1]}.{name}"
            monkeypatch.setattr(
                module, name, lambda *a, _r=real, _n=label, **k: used.append(_n) or _r(*a, **k)
            )
    rng = np.random.default_rng(11)
    got, expected_all = fast_and_naive(backend, rng, xs, ws, cparam(xs, ws, stride, pad))
    assert conv.fast_layout(xs, ws, stride, pad) == expected
    if not backends.writes_in_place(got[0]):
        assert used == []  # the functional route (JAX) has no column layouts
    elif expected == "flat":
        assert used[0] == "_conv_flat.forward" and "_conv_channels_last.backward" not in used
    else:
        assert used == [f"_conv_{expected}.forward", f"_conv_{expected}.backward"]
    for ours, ref in zip(got, expected_all, strict=True):
        np.testing.assert_allclose(backend.numpy(ours), ref, rtol=1e-10, atol=1e-10)


def test_pairs_only_where_the_conv_is_fused_with_its_pool(backend) -> None:
    """Few channels at stride 1: flat windows for a plain conv, channels-last pairs
    for one fused with its pool (what each measured fastest at)."""
    xs, ws = (2, 3, 8, 8), (4, 3, 3, 3)
    assert conv.fast_layout(xs, ws, 1, 1) == "flat"
    assert conv.fast_layout(xs, ws, 1, 1, fused=True) == "channels_last"
    x, w, b = (backend.asarray(a) for a in make(np.random.default_rng(16), xs, ws))
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    _, cache = conv.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    from xplayers.layers import conv_relu_pool_forward

    _, fused = conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, pool)
    if not backends.writes_in_place(x):
        assert cache[-1] is None  # the functional route (JAX) plans no layout
        return
    assert isinstance(cache[-1].lowering, conv._conv_flat.FlatWindows)
    assert fused.plan.lowering.tile == 2


def test_unknown_layout_raises(monkeypatch):
    monkeypatch.setattr(conv, "LOWERING", "nhwc")
    x, w, b = _args()
    with pytest.raises(ValueError, match=r"LOWERING must be one of .*'channels_last'.*got 'nhwc'"):
        conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})


@pytest.mark.parametrize(
    "xs, ws, stride, pad",
    [
        ((0, 3, 6, 6), (2, 3, 3, 3), 1, 1),  # F <= C: the transposed backward
        ((0, 2, 6, 6), (4, 2, 3, 3), 2, 1),  # F > C: col2im
    ],
)
def test_empty_batch(backend, conv_lowering, xs, ws, stride, pad):
    """N = 0 gives empty out and dx and zero dw and db, of the right shapes."""
    x, w, b = (backend.asarray(a) for a in make(np.random.default_rng(13), xs, ws))
    param = cparam(xs, ws, stride, pad)
    out, cache = conv_forward_fast(x, w, b, param)
    dx, dw, db = conv_backward_fast(backend.asarray(np.zeros(tuple(out.shape))), cache)
    assert out.shape[0] == 0 and tuple(dx.shape) == xs
    np.testing.assert_array_equal(backend.numpy(dw), np.zeros(ws))
    np.testing.assert_array_equal(backend.numpy(db), np.zeros(ws[0]))


def test_channels_last_windows_without_strided_views(backend, monkeypatch):
    """The portable window copies give the same bits as the one strided-view copy."""
    rng = np.random.default_rng(14)
    cases = [
        ((3, 4, 9, 8), (5, 4, 3, 3), 2, 1),
        ((2, 3, 10, 7), (3, 3, 4, 4), 4, 2),
        ((2, 3, 6, 8), (4, 3, 3, 2), 1, 1),  # pairs
    ]
    monkeypatch.setattr(conv, "LOWERING", "channels_last")
    adapter = type(backends.get_backend(backend.name))
    for xs, ws, stride, pad in cases:
        args = [backend.asarray(a) for a in make(rng, xs, ws)]
        param = cparam(xs, ws, stride, pad)
        results = []
        for hook in (adapter.strided_view, backends.Backend.strided_view):
            monkeypatch.setattr(adapter, "strided_view", hook)
            out, cache = conv_forward_fast(*args, param)
            grads = conv_backward_fast(backend.asarray(np.cos(backend.numpy(out))), cache)
            results.append([backend.numpy(a) for a in (out, *grads)])
        for a, b in zip(*results, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "xs, ws, stride, pad, tile",
    [
        ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, 2),
        ((2, 3, 6, 7), (4, 3, 3, 2), 1, 0, 3),
        ((2, 2, 11, 11), (3, 2, 3, 3), 2, 1, 2),  # strided tiles: their own col2im
        ((1, 2, 11, 15), (2, 2, 3, 4), 3, 2, 2),
    ],
)
def test_channels_last_tiles_give_the_naive_results(
    backend, monkeypatch, xs, ws, stride, pad, tile
):
    """Rows of columns serving 2 or 3 neighbouring outputs, at stride 1 (whose dx
    goes through flat windows' col2im) and above (the tiles' own col2im)."""
    monkeypatch.setattr(conv, "LOWERING", "channels_last")
    monkeypatch.setattr(conv, "_tile", lambda *_: tile)
    rng = np.random.default_rng(15)
    x, w, b = make(rng, xs, ws)
    param = cparam(xs, ws, stride, pad)
    args = [backend.asarray(a) for a in (x, w, b)]
    out, cache = conv_forward_fast(*args, param)
    # Arrays that cannot be written (JAX) have no lowerings: there this checks their route.
    assert not backends.writes_in_place(out) or cache[-1].lowering.tile == tile
    dout = rng.standard_normal(tuple(out.shape))
    ref, ref_cache = conv_forward_naive(x, w, b, param)
    np.testing.assert_allclose(backend.numpy(out), ref, rtol=1e-12, atol=1e-12)
    got = conv_backward_fast(backend.asarray(dout), cache)
    want = conv_backward_naive(dout, ref_cache)
    for name, g, e in zip(("dx", "dw", "db"), got, want, strict=True):
        np.testing.assert_allclose(backend.numpy(g), e, rtol=1e-10, atol=1e-10, err_msg=name)


def test_channels_last_tile_must_divide_wo() -> None:
    x = np.zeros((1, 2, 5, 5))
    work = backends.workspace(np, x, ("tile-test",))
    policy = backends.work_policy(x)
    with pytest.raises(ValueError, match="tile must be a positive divisor of Wo=5, got 2"):
        conv._conv_channels_last.ChannelsLast(x, (3, 3), 1, 1, (5, 5), work, policy, np, tile=2)


@pytest.mark.parametrize("by_product", [True, False])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("transposed", [False, True])
def test_chunk_bias_sums_equal_the_reduction(backend, axis, transposed, by_product) -> None:
    """sum_along (the conv chunks' bias gradients, a product with ones where the
    policy says, else the reduction) is the sum along the axis, also of a
    transposed view (the fused layer's layout)."""
    from xplayers.layers._chunks import sum_along

    host = np.random.default_rng(9).standard_normal((37, 6))
    a = backend.asarray(host)
    xp = backend.xp
    policy = dataclasses.replace(backends.work_policy(a), sum_by_product=by_product)
    if transposed:
        a, host = xp.matrix_transpose(a), host.T
    got = sum_along(a, axis, policy, xp)
    assert tuple(got.shape) == (host.shape[1 - axis],)
    np.testing.assert_allclose(backend.numpy(got), host.sum(axis=axis), rtol=1e-12, atol=1e-12)
