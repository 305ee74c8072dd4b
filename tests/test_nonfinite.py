"""NaN and infinity in a convolution's x or dout: the fast layer puts them where
the naive one does, on every lowering, forward and backward, and so does the
fused conv-relu-pool against the naive chain. Each lowering multiplies some
values by zeros the formula does not have (shifted filter copies, junk
columns, the padding of dout's columns), and 0 * inf and 0 * NaN are NaN."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import layers as L
from xplayers.layers import _conv_channels_last, _conv_flat, _conv_pool, _conv_rows, conv

# name: (x shape, w shape, stride, pad, conv.LOWERING, forced tile or None)
LOWERINGS = {
    "flat-stride-1": ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, "flat", None),  # F > C: dx by col2im
    "flat-transposed": ((2, 4, 6, 6), (3, 4, 3, 3), 1, 1, "flat", None),  # F <= C
    "flat-stride-2": ((2, 3, 7, 8), (4, 3, 3, 3), 2, 0, "flat", None),  # junk, truncated
    "channels-last": ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, "channels_last", None),
    "pairs": ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, "channels_last", None),  # what _tile picks
    "tiles-of-3": ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, "channels_last", 3),
    "strided-tiles": ((2, 3, 11, 11), (4, 3, 3, 3), 2, 1, "channels_last", 2),
    "stride-past-input": ((2, 3, 5, 11), (4, 3, 2, 2), 8, 1, "flat", None),  # compacted
    "rows": ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, "rows", None),  # junk rows, dout's padding
    "rows-5x5-unpadded": ((2, 3, 8, 7), (4, 3, 5, 4), 1, 0, "rows", None),
    "pointwise": ((2, 3, 6, 6), (4, 3, 1, 1), 1, 0, "pointwise", None),
    "pointwise-stride-2": ((2, 3, 7, 6), (4, 3, 1, 1), 2, 0, "pointwise", None),  # truncated
}


def _plan_of(name: str):
    """(tile, transposed, compacted) the lowering must run with."""
    return {
        "flat-transposed": (None, True, False),
        "pairs": (2, False, False),
        "tiles-of-3": (3, False, False),
        "strided-tiles": (2, False, False),
        "channels-last": (1, False, False),
        "stride-past-input": (None, False, True),
    }.get(name, (None, False, False))


def _module_of(name: str) -> str:
    """The module whose lowering ``name`` must run on."""
    for prefix in ("rows", "pointwise", "channels"):
        if name.startswith(prefix):
            return "_conv_" + prefix.replace("channels", "channels_last")
    return "_conv_channels_last" if "tiles" in name or name == "pairs" else "_conv_flat"


def _spoil(a: np.ndarray, bad: float) -> np.ndarray:
    """a with ``bad`` in the middle and the first corner of image 0, at the last
    corner of image 1 and -``bad`` next to the last column of image 1."""
    a = a.copy()
    a[0, 0, min(2, a.shape[2] - 1), min(2, a.shape[3] - 1)] = bad
    a[0, 1, 0, 0] = bad
    a[1, -1, -1, -1] = bad
    a[1, 0, 0, a.shape[3] - 2] = -bad
    return a


def assert_same_values(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """NaN, +inf and -inf at the same places; the finite values close."""
    assert got.shape == want.shape, what
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(got), test(want), err_msg=f"{what}: {test.__name__}")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10, err_msg=what)


def assert_same_results(backend, got: list, want: list) -> None:
    """out, dx, dw, db on ``backend`` against numpy's, by ``assert_same_values``."""
    for what, g, e in zip(("out", "dx", "dw", "db"), got, want, strict=True):
        assert_same_values(backend.numpy(g), e, what)


@pytest.fixture(autouse=True)
def _quiet():
    """NumPy warns on every invalid product; the values are what is tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["x", "dout"])
@pytest.mark.parametrize("name", list(LOWERINGS))
def test_fast_conv_puts_nan_and_inf_where_naive_does(backend, monkeypatch, name, where, bad):
    _check_lowering(backend, monkeypatch, name, where, bad)


def _never_read_back(*_):
    raise AssertionError("a value was read back to choose a path")


@pytest.mark.parametrize("where", ["x", "dout"])
@pytest.mark.parametrize("name", list(LOWERINGS))
def test_a_policy_that_reads_nothing_back_takes_the_exact_paths(backend, monkeypatch, name, where):
    """On a GPU a finiteness check would wait for the device inside the training
    step: a policy with ``probe_values=False`` runs the zero-free paths always,
    never asks, and gets the naive layer's NaN and inf."""
    policy_of = backends.work_policy
    monkeypatch.setattr(
        backends, "work_policy", lambda x: dataclasses.replace(policy_of(x), probe_values=False)
    )
    for module in (_conv_flat, _conv_channels_last, _conv_rows):
        monkeypatch.setattr(module, "all_finite", _never_read_back)
    _check_lowering(backend, monkeypatch, name, where, np.nan)


def _check_lowering(backend, monkeypatch, name: str, where: str, bad: float) -> None:
    """Lowering ``name`` on ``backend`` with ``bad`` in x or dout equals the naive layer."""
    xs, ws, stride, pad, lowering, tile = LOWERINGS[name]
    monkeypatch.setattr(conv, "LOWERING", lowering)
    if tile is not None:
        monkeypatch.setattr(conv, "_tile", lambda *_: tile)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    param = {"stride": stride, "pad": pad, "truncate": True}
    x = _spoil(x, bad) if where == "x" else x
    want, cache = conv.conv_forward_naive(x, w, b, param)
    dout = rng.standard_normal(want.shape)
    dout = _spoil(dout, bad) if where == "dout" else dout
    want_grads = conv.conv_backward_naive(dout, cache)
    assert not all(np.isfinite(v).all() for v in (want, *want_grads))  # the case bites

    out, cache = conv.conv_forward_fast(*(backend.asarray(a) for a in (x, w, b)), param)
    plan = cache[-1]
    if backends.writes_in_place(out):
        want_tile, want_transposed, want_compact = _plan_of(name)
        assert getattr(plan.lowering, "tile", None) == want_tile
        assert plan.transposed == want_transposed
        assert (plan.bands is not None) == want_compact
        assert type(plan.lowering).__module__.endswith(_module_of(name))
    else:
        assert plan is None  # JAX: the functional route, the same for every geometry
    grads = conv.conv_backward_fast(backend.asarray(dout), cache)
    assert_same_results(backend, [out, *grads], [want, *want_grads])


# x shape, w shape: the fused pass on channels-last pairs and on flat windows
FUSED = {"pairs": ((2, 3, 6, 6), (4, 3, 3, 3)), "flat": ((2, 5, 4, 4), (6, 5, 5, 5))}


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["x", "dout"])
@pytest.mark.parametrize("name", list(FUSED))
def test_fused_conv_relu_pool_puts_nan_and_inf_where_the_naive_chain_does(
    backend, name, where, bad
):
    xs, ws = FUSED[name]
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    x = _spoil(x, bad) if where == "x" else x
    cp, pp = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    a, conv_cache = L.conv_forward_naive(x, w, b, cp)
    s, relu_cache = L.relu_forward(a)
    want, pool_cache = L.max_pool_forward_naive(s, pp)
    dout = rng.standard_normal(want.shape)
    dout = _spoil(dout, bad) if where == "dout" else dout
    ds = L.relu_backward(L.max_pool_backward_naive(dout, pool_cache), relu_cache)
    want_grads = L.conv_backward_naive(ds, conv_cache)

    out, cache = L.conv_relu_pool_forward(*(backend.asarray(v) for v in (x, w, b)), cp, pp)
    # Arrays that cannot be written (JAX) run the chain on its functional routes.
    assert isinstance(cache, _conv_pool.ConvPoolCache) == backends.writes_in_place(out)
    grads = L.conv_relu_pool_backward(backend.asarray(dout), cache)
    assert_same_results(backend, [out, *grads], [want, *want_grads])
