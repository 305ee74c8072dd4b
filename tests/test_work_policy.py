"""Each adapter states its work policy, and the layers follow it: the conv's
column layout, chunk sizes, reductions and product orientation are the
policy's answers, asked once per conv call."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import layers as L
from xplayers.backends._policy import DEVICE
from xplayers.layers import _conv_channels_last, _conv_flat, _conv_pool, _conv_rows, conv


def _answer(monkeypatch, backend, **fields) -> list[int]:
    """backend's adapter answers its usual policy with ``fields`` replaced; returns
    the list that grows by one per question."""
    adapter = type(backends.get_backend(backend.name))
    real = adapter.work_policy
    asked: list[int] = []

    def answer(self, x):
        asked.append(1)
        return dataclasses.replace(real(self, x), **fields)

    monkeypatch.setattr(adapter, "work_policy", answer)
    return asked


def _in_place_only(backend) -> None:
    """The lowerings, chunks and formulations are those of the in-place fast path;
    a library whose arrays cannot be written (JAX) takes the functional route."""
    if not backends.get_backend(backend.name).writes_in_place:
        pytest.skip(
            f"{backend.name} arrays cannot be written: the functional route has no lowering"
        )


def _problem(backend, xs, ws, seed=0):
    rng = np.random.default_rng(seed)
    host = [rng.standard_normal(s) for s in (xs, ws, ws[:1])]
    return host, [backend.asarray(a) for a in host]


# ----------------------------------------------------------------- adapters
@pytest.mark.parametrize("forgotten", [["on_cpu"], ["work_policy"], ["on_cpu", "work_policy"]])
def test_an_adapter_that_forgets_a_required_hook_fails_where_defined(forgotten) -> None:
    full = {"on_cpu": lambda self, x: False, "work_policy": lambda self, x: DEVICE}
    hooks = {name: hook for name, hook in full.items() if name not in forgotten}
    with pytest.raises(TypeError, match=f"adapter Forgetful must define {', '.join(forgotten)}:"):
        type("Forgetful", (backends.Backend,), hooks)
    assert type("Complete", (backends.Backend,), full)().work_policy(None) is DEVICE
    # A subclass of an adapter keeps its parent's answers.
    assert type("Tuned", (type(backends.get_backend("numpy")),), {})().on_cpu(np.zeros(1))


def test_each_adapter_answers_for_where_its_arrays_live(backend) -> None:
    """Host arrays get chunks and kept work arrays, device arrays one chunk and
    the library's pool; the conv lowering thresholds are stated either way."""
    x = backend.asarray(np.zeros((2, 3)))
    # Arrays that cannot be written (JAX, on any device) keep no work arrays either.
    on_cpu = backends.get_backend(backend.name).on_cpu(x) and backends.writes_in_place(x)
    policy = backends.work_policy(x)
    assert policy.keep_workspace == on_cpu
    assert (policy.chunk_elements is not None) == on_cpu
    assert (policy.pool_chunk_elements is not None) == on_cpu
    assert policy.channels_last_max_wo >= 1 and policy.pairs_max_c >= 0


# ------------------------------------------------------------------- conv
#: One of each lowering, with even outputs (a 2x2 pool tiles them).
GEOMETRIES = [
    ((3, 16, 15, 15), (8, 16, 3, 3), 2, 1),  # channels-last
    ((3, 3, 8, 8), (6, 3, 3, 3), 1, 1),  # pairs where fused with the pool, else flat
    ((3, 4, 11, 11), (6, 4, 3, 3), 2, 1),  # flat windows, strided
    ((3, 6, 4, 4), (4, 6, 3, 3), 1, 0),  # flat windows, transposed backward (junk rows 1/2)
    ((3, 6, 8, 8), (4, 6, 3, 3), 1, 1),  # kernel rows
    ((3, 8, 8, 8), (6, 8, 1, 1), 1, 0),  # pointwise
]
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


@pytest.mark.parametrize("xs, ws, stride, pad", GEOMETRIES)
def test_the_policy_is_asked_once_per_conv_call(backend, monkeypatch, xs, ws, stride, pad):
    _in_place_only(backend)
    asked = _answer(monkeypatch, backend)
    _, (x, w, b) = _problem(backend, xs, ws)
    param = {"stride": stride, "pad": pad}
    out, cache = L.conv_forward_fast(x, w, b, param)
    # Arrays that cannot be written (JAX) take functional routes with nothing to ask.
    once = 1 if backends.writes_in_place(x) else 0
    assert len(asked) == once
    L.conv_backward_fast(backend.asarray(np.ones(tuple(out.shape))), cache)
    assert len(asked) == once  # the backward follows the forward's plan
    out, cache = L.conv_relu_pool_forward(x, w, b, param, POOL)
    L.conv_relu_pool_backward(backend.asarray(np.ones(tuple(out.shape))), cache)
    if not once:
        assert asked == [] and not isinstance(cache, _conv_pool.ConvPoolCache)
        return
    # Fused: the conv's one question; else the pool's forward and backward ask too.
    fused = isinstance(cache, _conv_pool.ConvPoolCache)
    plan = cache.plan if fused else cache[0][-1]
    columns = isinstance(plan.lowering, (_conv_flat.FlatWindows, _conv_channels_last.ChannelsLast))
    assert fused == (columns and not plan.transposed)
    assert len(asked) == (2 if fused else 4)


@pytest.mark.parametrize(
    "fields, xs, ws, stride, expected",
    [
        ({}, (2, 16, 13, 13), (8, 16, 3, 3), 2, "channels_last"),
        ({"channels_last_min_c": None}, (2, 16, 13, 13), (8, 16, 3, 3), 2, "flat"),
        ({"channels_last_min_c": 32}, (2, 16, 13, 13), (8, 16, 3, 3), 2, "flat"),
        ({"channels_last_max_wo": 6}, (2, 16, 13, 13), (8, 16, 3, 3), 2, "flat"),
        ({"channels_last_min_c": 4}, (2, 4, 13, 13), (8, 4, 3, 3), 2, "channels_last"),
        ({}, (2, 3, 8, 8), (6, 3, 3, 3), 1, "flat"),  # pairs only fused with a pool
        ({"pairs_max_c": 0}, (2, 3, 8, 8), (6, 3, 3, 3), 1, "rows"),
        ({"pairs_max_c": 0, "rows_max_f": 0}, (2, 3, 8, 8), (6, 3, 3, 3), 1, "flat"),
        ({"pairs_max_c": 8}, (2, 6, 8, 8), (4, 6, 3, 3), 1, "flat"),  # no rows at C <= 8
        ({}, (2, 6, 8, 8), (4, 6, 3, 3), 1, "rows"),
        ({"rows_max_f": 3}, (2, 6, 8, 8), (4, 6, 3, 3), 1, "flat"),
        ({"rows_max_junk": 0.1}, (2, 6, 8, 8), (4, 6, 3, 3), 1, "flat"),  # junk 1/9
        ({"rows_max_junk": 0.2}, (2, 6, 8, 8), (4, 6, 3, 3), 1, "rows"),
        ({"channels_last_max_wo": 8}, (2, 16, 8, 8), (4, 16, 3, 3), 1, "channels_last"),
        ({"channels_last_max_wo": 7}, (2, 16, 8, 8), (4, 16, 3, 3), 1, "rows"),
    ],
)
def test_the_lowering_is_the_policys_answer(backend, monkeypatch, fields, xs, ws, stride, expected):
    """fast_layout and the layer itself take the layout the policy's thresholds
    give, and it computes the naive results."""
    _in_place_only(backend)
    _answer(monkeypatch, backend, **fields)
    used = []
    modules = {"channels_last": _conv_channels_last, "flat": _conv_flat, "rows": _conv_rows}
    for module in modules.values():
        real = module.forward
        monkeypatch.setattr(
            module, "forward", lambda *a, _r=real, _m=module: used.append(_m) or _r(*a)
        )
    host, (x, w, b) = _problem(backend, xs, ws)
    param = {"stride": stride, "pad": 1}
    assert conv.fast_layout(xs, ws, stride, 1, backends.work_policy(x)) == expected
    out, _ = L.conv_forward_fast(x, w, b, param)
    if backends.writes_in_place(x):
        assert used == [modules[expected]]
    else:
        assert used == []  # the functional route (JAX) has no column layouts
    np.testing.assert_allclose(
        backend.numpy(out), L.conv_forward_naive(*host, param)[0], rtol=1e-10, atol=1e-10
    )


def test_fast_layout_defaults_to_the_default_backends_policy(monkeypatch) -> None:
    xs, ws = (2, 16, 13, 13), (8, 16, 3, 3)
    assert conv.fast_layout(xs, ws, 2, 1) == "channels_last"
    adapter = type(backends.get_backend(backends.default_backend()))
    real = adapter.work_policy
    monkeypatch.setattr(
        adapter,
        "work_policy",
        lambda self, x: dataclasses.replace(real(self, x), channels_last_min_c=None),
    )
    assert conv.fast_layout(xs, ws, 2, 1) == "flat"


@pytest.mark.parametrize("xs, ws, stride, pad", GEOMETRIES)
def test_other_formulations_give_the_same_gradients(backend, monkeypatch, xs, ws, stride, pad):
    """Bias sums as reductions and weight gradients in the other orientation:
    the naive results, on every lowering."""
    _in_place_only(backend)
    _answer(monkeypatch, backend, sum_by_product=False, dw_columns_left=False)
    host, (x, w, b) = _problem(backend, xs, ws, seed=1)
    param = {"stride": stride, "pad": pad}
    out_n, cache_n = L.conv_forward_naive(*host, param)
    dout = np.random.default_rng(2).standard_normal(out_n.shape)
    out, cache = L.conv_forward_fast(x, w, b, param)
    got = L.conv_backward_fast(backend.asarray(dout), cache)
    want = L.conv_backward_naive(dout, cache_n)
    np.testing.assert_allclose(backend.numpy(out), out_n, rtol=1e-10, atol=1e-10)
    for name, g, e in zip(("dx", "dw", "db"), got, want, strict=True):
        np.testing.assert_allclose(backend.numpy(g), e, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("scale, most", [(1.0, 4), (0.5, 2)])
def test_channels_last_chunks_follow_the_policys_scale(
    backend, host_policy, chunk_spans, scale, most
) -> None:
    """Channels-last chunks hold ``channels_last_chunk_scale`` of the policy's
    elements: here 4 images' columns at scale 1, 2 at scale 0.5."""
    _in_place_only(backend)
    xs, ws = (8, 16, 13, 13), (8, 16, 3, 3)  # channels-last: 7x7 outputs
    per_image = 16 * 3 * 3 * 7 * 7
    host_policy(
        chunk_elements=4 * per_image,
        min_chunk_elements=0,
        chunk_images=64,
        channels_last_chunk_scale=scale,
    )
    _, (x, w, b) = _problem(backend, xs, ws)
    out, cache = L.conv_forward_fast(x, w, b, {"stride": 2, "pad": 1})
    L.conv_backward_fast(backend.asarray(np.ones(tuple(out.shape))), cache)
    chunk_spans.assert_chunks(out, most, xs[0])
    if backends.work_policy(x).chunk_elements is not None:
        assert max(n1 - n0 for n0, n1 in chunk_spans.calls[0]) == most
