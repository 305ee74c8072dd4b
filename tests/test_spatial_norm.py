"""Spatial batch norm and spatial group norm on every backend."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from asserts import assert_close

import xplayers.backends as backends
from xplayers import layers as L
from xplayers.gradcheck import eval_numerical_gradient_array, rel_error

TOL = {"float64": 1e-10, "float32": 1e-5}
SHAPE = (4, 6, 3, 5)  # N, C, H, W
GROUPS = 3


def _host(seed: int = 0):
    rng = np.random.default_rng(seed)
    c = SHAPE[1]
    # Channels with different offsets and scales, so per-channel statistics matter.
    offset, scale = rng.uniform(-3, 3, (1, c, 1, 1)), rng.uniform(0.5, 3, (1, c, 1, 1))
    x = offset + scale * rng.standard_normal(SHAPE)
    return x, rng.standard_normal(c), rng.standard_normal(c)


def _bn(backend, dtype="float64", seed=0, bn_param=None):
    x, gamma, beta = (backend.asarray(a, dtype) for a in _host(seed))
    bn_param = {"mode": "train"} if bn_param is None else bn_param
    return (x, gamma, beta), lambda x, g, b: L.spatial_batchnorm_forward(x, g, b, bn_param)


def _gn(backend, dtype="float64", seed=0):
    x, gamma, beta = _host(seed)
    args = (
        backend.asarray(x, dtype),
        backend.asarray(gamma.reshape(1, -1, 1, 1), dtype),
        backend.asarray(beta.reshape(1, -1, 1, 1), dtype),
    )
    return args, lambda x, g, b: L.spatial_groupnorm_forward(x, g, b, GROUPS, {})


LAYERS = {
    "spatial_batchnorm": (_bn, L.spatial_batchnorm_backward),
    "spatial_groupnorm": (_gn, L.spatial_groupnorm_backward),
}


def _run(name, backend, dtype="float64"):
    make, backward = LAYERS[name]
    args, forward = make(backend, dtype)
    out, cache = forward(*args)
    dout = backend.asarray(np.random.default_rng(1).standard_normal(SHAPE), dtype)
    return args, forward, out, dout, backward(dout, cache)


# ------------------------------------------------------------ gradients
@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_match_numerical(backend, name) -> None:
    args, forward, _, dout, grads = _run(name, backend)
    for i, analytic in enumerate(grads):
        assert tuple(analytic.shape) == tuple(args[i].shape)

        def f(v, i=i):
            return forward(*(v if j == i else a for j, a in enumerate(args)))[0]

        numeric = eval_numerical_gradient_array(f, args[i], dout)
        assert rel_error(analytic, numeric) < 1e-5, ("dx", "dgamma", "dbeta")[i]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_parity_with_numpy(other_backend, numpy_case, name, dtype) -> None:
    _, _, ref_out, _, ref_grads = _run(name, numpy_case, dtype)
    # dx = inv_std * (dxhat - mean - xhat * mean) cancels to entries far below
    # the largest, whose float32 rounding differs between reduction orders:
    # assert_close compares those relative to the largest entry.
    args, _, out, _, grads = _run(name, other_backend, dtype)
    assert_close(out, ref_out, like=args[0], rtol=TOL[dtype], err_msg="out")
    for g, ref in zip(grads, ref_grads, strict=True):
        assert_close(g, ref, like=args[0], rtol=TOL[dtype], err_msg="gradient")


@pytest.mark.parametrize("name", list(LAYERS))
def test_float32_stays_float32(backend, name) -> None:
    _, _, out, _, grads = _run(name, backend, "float32")
    for arr in (out, *grads):
        assert arr.dtype == backend.xp.float32
        assert backends.backend_of(arr) == backend.name


# ------------------------------------------------------------ semantics
def test_spatial_batchnorm_normalises_each_channel(backend) -> None:
    (x, gamma, beta), forward = _bn(backend)
    out = backend.numpy(forward(x, gamma, beta)[0])
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), backend.numpy(beta), atol=1e-10)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), np.abs(backend.numpy(gamma)), rtol=1e-4)


def test_spatial_batchnorm_running_stats_and_test_mode(backend) -> None:
    host_x, gamma, beta = _host()
    bn_param = {"mode": "train", "momentum": 0.7}
    (x, g, b), forward = _bn(backend, bn_param=bn_param)
    forward(x, g, b)
    rm, rv = 0.3 * host_x.mean(axis=(0, 2, 3)), 0.3 * host_x.var(axis=(0, 2, 3))
    for key, expected in (("running_mean", rm), ("running_var", rv)):
        stat = bn_param[key]
        assert tuple(stat.shape) == (SHAPE[1],)
        assert backends.backend_of(stat) == backend.name and stat.dtype == x.dtype
        np.testing.assert_allclose(backend.numpy(stat), expected, rtol=1e-12)

    bn_param["mode"] = "test"
    out, cache = forward(x, g, b)
    shape = (1, -1, 1, 1)
    expected = (host_x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + 1e-5)
    expected = expected * gamma.reshape(shape) + beta.reshape(shape)
    np.testing.assert_allclose(backend.numpy(out), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.numpy(bn_param["running_mean"]), rm, rtol=1e-12)
    with pytest.raises(ValueError, match="needs a cache from a forward pass in 'train' mode"):
        L.spatial_batchnorm_backward(backend.asarray(np.ones(SHAPE)), cache)


def test_spatial_batchnorm_running_mean_converges(numpy_case) -> None:
    rng = np.random.default_rng(2)
    bn_param = {"mode": "train"}
    ones, zeros = np.ones(3), np.zeros(3)
    for _ in range(60):
        x = np.array([1.0, -2.0, 5.0]).reshape(1, 3, 1, 1) + rng.standard_normal((8, 3, 4, 4))
        L.spatial_batchnorm_forward(x, ones, zeros, bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], [1, -2, 5], atol=0.1)
    np.testing.assert_allclose(bn_param["running_var"], 1.0, atol=0.15)


def test_spatial_groupnorm_normalises_each_group(backend) -> None:
    (x, _, _), _ = _gn(backend)
    ones = backend.asarray(np.ones((1, SHAPE[1], 1, 1)))
    zeros = backend.asarray(np.zeros((1, SHAPE[1], 1, 1)))
    out, _ = L.spatial_groupnorm_forward(x, ones, zeros, GROUPS, {"eps": 1e-12})
    grouped = backend.numpy(out).reshape(SHAPE[0], GROUPS, -1)
    np.testing.assert_allclose(grouped.mean(axis=2), 0.0, atol=1e-10)
    np.testing.assert_allclose(grouped.std(axis=2), 1.0, rtol=1e-8)


def test_groupnorm_with_one_group_per_channel_is_instance_norm(numpy_case) -> None:
    x, _, _ = _host()
    c = SHAPE[1]
    out, _ = L.spatial_groupnorm_forward(x, np.ones((1, c, 1, 1)), np.zeros((1, c, 1, 1)), c, {})
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------ against torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("name", list(LAYERS))
def test_matches_torch_autograd(numpy_case, name) -> None:
    import torch
    import torch.nn.functional as F

    args, _, out, dout, grads = _run(name, numpy_case)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in args)
    if name == "spatial_batchnorm":
        ot = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    else:
        ot = F.group_norm(xt, GROUPS, gt.reshape(-1), bt.reshape(-1), eps=1e-5)
    ot.backward(torch.tensor(dout))
    assert rel_error(out, ot.detach().numpy()) < 1e-10
    for g, t in zip(grads, (xt, gt, bt), strict=True):
        assert rel_error(g, t.grad.numpy()) < 1e-9


# ------------------------------------------------------------ bad input
def test_errors_name_the_problem(backend) -> None:
    x = backend.asarray(np.zeros(SHAPE))
    c = SHAPE[1]
    vec, img = backend.asarray(np.ones(c)), backend.asarray(np.ones((1, c, 1, 1)))
    with pytest.raises(
        ValueError, match=r"G=4 groups must divide the 6 channels of x.*\[1, 2, 3, 6\]"
    ):
        L.spatial_groupnorm_forward(x, img, img, 4, {})
    with pytest.raises(ValueError, match=r"G \(the number of groups\) must be a positive int"):
        L.spatial_groupnorm_forward(x, img, img, 0, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(1, 6, 1, 1\).*shape \(6,\)"):
        L.spatial_groupnorm_forward(x, vec, img, 3, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\).*shape \(1, 6, 1, 1\)"):
        L.spatial_batchnorm_forward(x, img, vec, {"mode": "train"})
    with pytest.raises(ValueError, match=r"beta must have shape \(6,\) to match x's C=6"):
        L.spatial_batchnorm_forward(x, vec, backend.asarray(np.ones(5)), {"mode": "train"})
    with pytest.raises(ValueError, match=r"x must be 4-d \(N, C, H, W\)"):
        L.spatial_batchnorm_forward(backend.asarray(np.zeros((4, 6))), vec, vec, {})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be one of"):
        L.spatial_batchnorm_forward(x, vec, vec, {"mode": "eval"})
    bad_stat = {"mode": "test", "running_mean": backend.asarray(np.zeros(5))}
    with pytest.raises(ValueError, match=r"bn_param\['running_mean'\] must have shape \(6,\)"):
        L.spatial_batchnorm_forward(x, vec, vec, bad_stat)
    _, cache = L.spatial_groupnorm_forward(x, img, img, 3, {})
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 6, 3, 5\)"):
        L.spatial_groupnorm_backward(backend.asarray(np.zeros((4, 6, 5, 3))), cache)
