"""The backend registry: detection, default choice, transfers, RNG, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xplayers
import xplayers.backends as backends


def test_numpy_is_always_available() -> None:
    assert "numpy" in xplayers.available_backends()
    assert set(xplayers.available_backends()) <= set(backends.BACKEND_NAMES)


def test_default_backend_and_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XPLAYERS_BACKEND", raising=False)
    expected = "cupy" if "cupy" in xplayers.available_backends() else "numpy"
    assert xplayers.default_backend() == expected
    for name in xplayers.available_backends():
        monkeypatch.setenv("XPLAYERS_BACKEND", name)
        assert xplayers.default_backend() == name  # read at each call
    monkeypatch.setenv("XPLAYERS_BACKEND", "nope")
    with pytest.raises(xplayers.BackendError, match=r"unknown backend 'nope'.*available here"):
        xplayers.default_backend()


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(xplayers.BackendError) as err:
        xplayers.asarray([1.0], backend="tensorflow")
    msg = str(err.value)
    assert "'tensorflow'" in msg and "numpy" in msg and "available" in msg
    assert isinstance(err.value, ValueError)


def test_unavailable_backend_says_why() -> None:
    missing = [n for n in backends.BACKEND_NAMES if n not in xplayers.available_backends()]
    if not missing:
        pytest.skip("every backend is available here")
    with pytest.raises(xplayers.BackendError, match=rf"{missing[0]}.*not available here \("):
        backends.get_backend(missing[0])


def test_describe_gives_device_or_reason() -> None:
    rows = {name: (ok, info) for name, ok, info in backends.describe()}
    assert set(rows) == set(backends.BACKEND_NAMES)
    assert rows["numpy"] == (True, "cpu")
    for name, (ok, info) in rows.items():
        assert ok == (name in xplayers.available_backends())
        if ok:
            adapter = backends.get_backend(name)
            assert info == adapter.device_name(adapter.default_device())
        else:
            assert info == backends.unavailable_reason(name)


def test_asarray_roundtrip_and_dtype(backend) -> None:
    host = np.arange(12, dtype=np.float64).reshape(3, 4)
    x = xplayers.asarray(host, backend=backend.name, dtype="float32")
    assert backends.backend_of(x) == backend.name
    assert x.dtype == backend.xp.float32
    back = xplayers.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host.astype(np.float32))
    # An array already on the backend with the right dtype is returned as it is.
    assert xplayers.asarray(x, backend=backend.name) is x


def test_asarray_copies_across_libraries_only(backend) -> None:
    """Like numpy.asarray: a numpy array asked for as numpy is not copied."""
    host = np.zeros(3)
    x = xplayers.asarray(host, backend=backend.name)
    host[0] = 5.0
    assert float(x[0]) == (5.0 if backend.name == "numpy" else 0.0)


def test_to_backend_moves_trees(backend) -> None:
    tree = {"W1": np.ones((2, 2)), "y": np.arange(3), "layers": [np.zeros(1), 7], "name": "x"}
    moved = xplayers.to_backend(tree, backend.name)
    assert backends.backend_of(moved["W1"]) == backend.name
    assert backends.backend_of(moved["layers"][0]) == backend.name
    assert moved["layers"][1] == 7 and moved["name"] == "x"
    assert backend.xp.isdtype(moved["y"].dtype, "integral")
    again = xplayers.to_backend(moved, "numpy")
    np.testing.assert_array_equal(again["W1"], tree["W1"])
    np.testing.assert_array_equal(again["y"], tree["y"])


def test_get_namespace_matches_array_api_compat(backend) -> None:
    from array_api_compat import array_namespace

    x = backend.asarray(np.ones(3))
    assert xplayers.get_namespace(x) is array_namespace(x)


def test_mixed_backends_raise_naming_both(other_backend) -> None:
    a = np.ones(3)
    b = other_backend.asarray(np.ones(3))
    with pytest.raises(xplayers.BackendError) as err:
        xplayers.get_namespace(x=a, w=b)
    msg = str(err.value)
    assert "x is a numpy" in msg and f"w is a {other_backend.name}" in msg


def test_non_array_is_rejected() -> None:
    with pytest.raises(xplayers.BackendError, match="x is a list"):
        xplayers.get_namespace(x=[1, 2])


def test_seeded_uniform_repeats_and_stays_on_backend(backend) -> None:
    x = backend.asarray(np.zeros((50, 40)), dtype="float32")
    u1 = backends.uniform_like(x, seed=3)
    u2 = backends.uniform_like(x, seed=3)
    u3 = backends.uniform_like(x, seed=4)
    assert backends.backend_of(u1) == backend.name and u1.dtype == x.dtype
    h1, h2, h3 = backend.numpy(u1), backend.numpy(u2), backend.numpy(u3)
    np.testing.assert_array_equal(h1, h2)
    assert not np.array_equal(h1, h3)
    assert 0.0 <= h1.min() and h1.max() < 1.0
    assert abs(h1.mean() - 0.5) < 0.03  # 2000 uniforms: std of the mean ~0.0065


def test_strided_view_reads_overlapping_windows(backend) -> None:
    """Windows of 3 overlapping by 1 along each row of a (2, 7) array, as a view."""
    host = np.arange(14.0).reshape(2, 7)
    view = backends.strided_view(backend.asarray(host), (2, 3, 3), (7, 2, 1))
    if backend.name in ("array_api_strict", "jax"):  # the standard has no such view
        assert view is None
        return
    assert backends.backend_of(view) == backend.name
    expected = np.stack([np.stack([row[2 * u : 2 * u + 3] for u in range(3)]) for row in host])
    np.testing.assert_array_equal(backend.numpy(view), expected)


def test_cpu_backends_draw_the_same_masks(other_backend) -> None:
    """numpy, torch-cpu and array_api_strict share host-drawn numbers for a seed."""
    if other_backend.name not in ("torch", "array_api_strict"):
        pytest.skip("device backends draw on the device")
    ref = backends.uniform_like(np.zeros((4, 5)), seed=11)
    x = other_backend.asarray(np.zeros((4, 5)))
    if not backends.get_backend(other_backend.name).on_cpu(x):
        pytest.skip("this torch runs on CUDA")
    np.testing.assert_array_equal(other_backend.numpy(backends.uniform_like(x, seed=11)), ref)


def test_import_needs_no_torch_or_cuda() -> None:
    """`import xplayers` imports no optional library and initialises no GPU."""
    code = (
        "import sys, xplayers; "
        "print(sorted(m for m in ('torch', 'cupy', 'array_api_strict', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_users_backends_folder_does_not_shadow_xplayers(tmp_path: Path) -> None:
    """The adapters install as xplayers.backends: a `backends` package in the user's
    working directory is the user's own and leaves xplayers working."""
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "__init__.py").write_text("raise ImportError('the user's own')\n")
    code = "import xplayers, xplayers.backends as b; print(b.__name__, xplayers.default_backend())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.split() == ["xplayers.backends", "numpy"]


def test_available_backends_without_torch(tmp_path: Path) -> None:
    """A machine with no torch (simulated by a module that fails to import) still works."""
    (tmp_path / "torch.py").write_text("raise ImportError('no torch here')\n")
    code = "import xplayers; print(xplayers.available_backends())"
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "'numpy'" in out.stdout and "'torch'" not in out.stdout


@pytest.mark.parametrize(
    "probe, reason",
    [
        ("return False", "no CUDA device answers"),
        ("raise RuntimeError('cudaErrorNoDevice')", "CUDA failed: cudaErrorNoDevice"),
    ],
)
def test_cupy_without_a_gpu_is_unavailable_not_a_crash(tmp_path: Path, probe, reason) -> None:
    """CuPy imports on machines without a driver; detection must say so and move on."""
    pkg = tmp_path / "cupy"
    (pkg / "cuda").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import cuda\n")
    (pkg / "cuda" / "__init__.py").write_text(f"def is_available():\n    {probe}\n")
    code = (
        "import xplayers, xplayers.backends as backends; print(xplayers.available_backends()); "
        "print(dict((n, i) for n, ok, i in backends.describe())['cupy']); "
        "print(xplayers.default_backend())"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("XPLAYERS_BACKEND", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    listed, why, default = out.stdout.strip().splitlines()
    assert "cupy" not in listed and reason in why and default == "numpy"


def test_is_host_means_numpy_data(backend) -> None:
    """Host data in NumPy's form (arrays and scalars) is read with no transfer; the
    other libraries' arrays are not host data, even in host memory (torch on the
    CPU): the Solver moves them as arrays of their library."""
    x = backend.asarray(np.arange(3.0))
    numpy = backend.name == "numpy"
    assert backends.is_host(x) is numpy
    assert backends.is_host(x[0]) is numpy  # numpy indexes to a numpy scalar
    assert backends.is_host(backend.xp.sum(x)) is numpy
    assert backends.is_host(backends.to_numpy(x)) and backends.is_host(np.float32(1))
    assert not backends.is_host(1.0) and not backends.is_host([1.0])


def test_synchronize_waits_on_an_arrays_device(backend, monkeypatch) -> None:
    x = backend.asarray(np.ones(2))
    adapter = backends.get_backend(backend.name)
    waited, entered, arrays = [], [], []
    real_context, real_wait = adapter.device_context, adapter.wait_for
    monkeypatch.setattr(adapter, "synchronize", lambda: waited.append(backend.name))
    monkeypatch.setattr(adapter, "device_context", lambda d: entered.append(d) or real_context(d))
    monkeypatch.setattr(adapter, "wait_for", lambda a: arrays.append(a) or real_wait(a))
    backends.synchronize(x)
    assert arrays == [x]
    if type(adapter).wait_for is backends.Backend.wait_for:  # the device's queue, on its device
        assert (waited, entered) == ([backend.name], [x.device])
    else:  # JAX: the array's own readiness (block_until_ready)
        assert (waited, entered) == ([], [])
    backends.synchronize(backend.name)
    assert waited[-1:] == [backend.name]
    with pytest.raises(backends.BackendError, match="backend names or arrays, got list"):
        backends.synchronize([x])
