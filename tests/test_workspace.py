"""The conv work arrays kept between calls: bounded, measurable, releasable."""

from __future__ import annotations

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers.layers import conv_backward_fast, conv_forward_fast

X_SHAPE, W_SHAPE = (8, 3, 16, 16), (4, 3, 3, 3)


def _conv(backend) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal(X_SHAPE), "float32")
    w = backend.asarray(rng.standard_normal(W_SHAPE), "float32")
    b = backend.asarray(rng.standard_normal(W_SHAPE[0]), "float32")
    out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    grads = conv_backward_fast(backend.asarray(np.ones(tuple(out.shape)), "float32"), cache)
    return [backend.numpy(a) for a in (out, *grads)]


@pytest.fixture(autouse=True)
def _empty_workspace():
    backends.release_workspace()
    yield
    backends.release_workspace()


def test_host_work_arrays_are_kept_then_released(numpy_case) -> None:
    assert backends.work_policy(np.zeros(1)).keep_workspace
    _conv(numpy_case)
    kept = backends.workspace_bytes()
    assert 0 < kept <= backends.workspace_limit()
    assert backends.release_workspace() == kept
    assert backends.workspace_bytes() == 0


def test_the_limit_bounds_what_is_kept_and_changes_no_result(numpy_case, monkeypatch) -> None:
    reference = _conv(numpy_case)
    unbounded = backends.workspace_bytes()
    backends.release_workspace()
    monkeypatch.setenv(backends.WORKSPACE_ENV, str(unbounded / 2 / (1 << 20)))
    bounded = _conv(numpy_case)
    assert 0 < backends.workspace_bytes() <= unbounded // 2
    monkeypatch.setenv(backends.WORKSPACE_ENV, "0")
    backends.release_workspace()
    nothing_kept = _conv(numpy_case)
    assert backends.workspace_bytes() == 0
    for ref, a, b in zip(reference, bounded, nothing_kept, strict=True):
        np.testing.assert_array_equal(a, ref)
        np.testing.assert_array_equal(b, ref)


@pytest.mark.parametrize("text", ["lots", "-1", "nan"])
def test_a_bad_limit_is_named(monkeypatch, text) -> None:
    monkeypatch.setenv(backends.WORKSPACE_ENV, text)
    with pytest.raises(ValueError, match=rf"XPLAYERS_WORKSPACE_MB.*{text!r}"):
        backends.workspace_limit()
