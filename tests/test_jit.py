"""Every layer under ``jax.jit``: forward and backward trace (no value read back,
no device asked of a traced array, nothing written in place) and give the eager
results, on the default device and on a second one (outputs stay there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import layers as L
from xplayers._checks import LabelError

jax = pytest.importorskip("jax")

DEVICES = [None, "cpu:1"]
CP = {"stride": 2, "pad": 1, "truncate": True}  # strided, padded, a row left over
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
OVERLAP = {"pool_height": 3, "pool_width": 3, "stride": 1}


def _arrays(device: str | None, *host: np.ndarray) -> list[Any]:
    return [backends.asarray(a, "jax", device=device) for a in host]


def _assert_jit_equals_eager(fn: Callable, args: list[Any]) -> None:
    """fn(*args) under jax.jit equals fn(*args) run eagerly, every output on args[0]'s device."""
    eager = jax.tree_util.tree_leaves(fn(*args))
    traced = jax.tree_util.tree_leaves(jax.jit(fn)(*args))
    assert len(traced) == len(eager) > 0
    where = backends.device_label(args[0])
    for t, e in zip(traced, eager, strict=True):
        assert backends.device_label(t) == backends.device_label(e) == where
        np.testing.assert_allclose(np.asarray(t), np.asarray(e), rtol=1e-12, atol=1e-12)


def _conv_inputs(rng: np.random.Generator, xs: tuple, ws: tuple, param: dict) -> list:
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    x[0, 0, 1, 2] = np.nan  # non-finite values travel through the traced code too
    out, _ = L.conv_forward_naive(x, w, b, param)
    return [x, w, b, rng.standard_normal(out.shape)]


def _conv_step(param: dict, need_dx: bool) -> Callable:
    def step(x, w, b, dout):
        out, cache = L.conv_forward_fast(x, w, b, param)
        return out, L.conv_backward_fast(dout, cache, need_dx=need_dx)

    return step


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize(
    "xs, ws, param",
    [
        ((2, 3, 9, 8), (4, 3, 3, 3), CP),
        ((2, 3, 6, 6), (2, 3, 3, 3), {"stride": 1, "pad": 1}),
        ((2, 2, 5, 11), (3, 2, 2, 2), {"stride": 8, "pad": 1, "truncate": True}),
    ],
)
def test_fast_conv_traces(device, need_dx, xs, ws, param) -> None:
    host = _conv_inputs(np.random.default_rng(0), xs, ws, param)
    _assert_jit_equals_eager(_conv_step(param, need_dx), _arrays(device, *host))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pool", [POOL, OVERLAP], ids=["tiling", "overlapping"])
@pytest.mark.parametrize("impl", ["fast", "naive"])
def test_max_pool_traces(device, pool, impl) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, (2, 3, 6, 6)).astype(np.float64)  # ties
    x[0, 1, 2, 3] = np.nan
    forward = getattr(L, f"max_pool_forward_{impl}")
    backward = getattr(L, f"max_pool_backward_{impl}")
    dout = rng.standard_normal(tuple(forward(x, pool)[0].shape))
    dout[1, 2, 0, 0] = np.inf  # 0 * inf in the routing mask: NaN, as documented

    def step(x, dout):
        out, cache = forward(x, pool)
        return out, backward(dout, cache)

    _assert_jit_equals_eager(step, _arrays(device, x, dout))


@pytest.mark.parametrize("device", DEVICES)
def test_conv_relu_pool_traces(device) -> None:
    cp = {"stride": 1, "pad": 1}
    x, w, b, _ = _conv_inputs(np.random.default_rng(2), (2, 3, 6, 6), (4, 3, 3, 3), cp)
    dout = np.random.default_rng(3).standard_normal((2, 4, 3, 3))

    def step(x, w, b, dout):
        out, cache = L.conv_relu_pool_forward(x, w, b, cp, POOL)
        return out, L.conv_relu_pool_backward(dout, cache)

    _assert_jit_equals_eager(step, _arrays(device, x, w, b, dout))


@pytest.mark.parametrize("device", DEVICES)
def test_naive_conv_traces(device) -> None:
    """Small: the naive layer traces one sum per filter and output position."""
    param = {"stride": 2, "pad": 1}
    host = _conv_inputs(np.random.default_rng(5), (2, 2, 5, 5), (2, 2, 3, 3), param)

    def step(x, w, b, dout):
        out, cache = L.conv_forward_naive(x, w, b, param)
        return out, L.conv_backward_naive(dout, cache)

    _assert_jit_equals_eager(step, _arrays(device, *host))


@pytest.mark.parametrize("device", DEVICES)
def test_the_other_layers_trace(device) -> None:
    rng = np.random.default_rng(4)
    x2, w2, b2, g = (rng.standard_normal(s) for s in ((4, 6), (6, 5), (5,), (6,)))
    img, gc = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal(4)
    y = np.array([0, 4, 2, 4])

    def step(x2, w2, b2, g, img, gc, y):
        a, a_cache = L.affine_relu_forward(x2, w2, b2)
        bn, bn_cache = L.batchnorm_forward(x2, g, g, {"mode": "train"})
        ln, ln_cache = L.layernorm_forward(x2, g, g, {})
        dr, dr_cache = L.dropout_forward(x2, {"mode": "train", "p": 0.7, "seed": 3})
        sb, sb_cache = L.spatial_batchnorm_forward(img, gc, gc, {"mode": "train"})
        gshape = (1, 4, 1, 1)
        gn, gn_cache = L.spatial_groupnorm_forward(
            img, gc.reshape(gshape), gc.reshape(gshape), 2, {}
        )
        soft, dsoft = L.softmax_loss(a, y, label_range=(0, 4))
        svm, dsvm = L.svm_loss(a, y, label_range=(0, 4))
        return (
            L.affine_relu_backward(dsoft + dsvm, a_cache),
            L.batchnorm_backward(bn, bn_cache),
            L.batchnorm_backward_alt(bn, bn_cache),
            L.layernorm_backward(ln, ln_cache),
            L.dropout_backward(dr, dr_cache),
            L.spatial_batchnorm_backward(sb, sb_cache),
            L.spatial_groupnorm_backward(gn, gn_cache),
            soft,
            svm,
        )

    _assert_jit_equals_eager(step, _arrays(device, x2, w2, b2, g, img, gc, y))


@pytest.mark.parametrize("device", DEVICES)
def test_relu_keeps_zero_times_inf_under_jit(device) -> None:
    """dout's NaN and inf where x <= 0 give NaN (0 * inf), as eagerly and on numpy:
    XLA rewrites a bool mask's product into a select that would give 0."""
    x = np.array([-1.0, 0.0, 2.0, -3.0, 1.0])
    dout = np.array([np.inf, np.nan, np.inf, 2.0, np.nan])
    with np.errstate(invalid="ignore"):  # 0 * inf is the point
        want = L.relu_backward(dout, L.relu_forward(x)[1])
    np.testing.assert_array_equal(want, [np.nan, np.nan, np.inf, -0.0, np.nan])

    def step(x, dout):
        out, cache = L.relu_forward(x)
        return out, L.relu_backward(dout, cache)

    args = _arrays(device, x, dout)
    _assert_jit_equals_eager(step, args)
    np.testing.assert_array_equal(np.asarray(jax.jit(step)(*args)[1]), want)


def test_a_traced_label_check_asks_for_the_label_range() -> None:
    x, y = _arrays(None, np.zeros((2, 3)), np.array([0, 2]))
    with pytest.raises(LabelError, match=r"y is a jax int64 array .*inside jax.jit.*label_range"):
        jax.jit(L.softmax_loss)(x, y)
