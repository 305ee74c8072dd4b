"""What only JAX asks of the backends: immutable arrays, x64, committed placement.

The layers, models and Solver run on JAX through the ``backend`` fixture
("jax" and "jax:cpu:1"); here are the adapter's own promises: float64
without x64 is a clear error (never JAX's silent float32), arrays of two
devices in one call are refused (JAX would move an uncommitted one), results
stay on their inputs' device, and xplayers never flips JAX's configuration.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import xplayers
import xplayers.backends as backends
import xplayers.layers as layers

pytestmark = pytest.mark.skipif(
    backends.unavailable_reason("jax") is not None, reason="jax is not installed"
)


def _run_without_x64(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_float64_without_x64_is_an_error_saying_how_to_enable_it() -> None:
    code = """
import numpy as np, jax, xplayers
from xplayers.models import FullyConnectedNet
assert not jax.config.jax_enable_x64
for call in (
    lambda: xplayers.asarray(np.ones(3), backend="jax", dtype="float64"),
    lambda: xplayers.asarray(np.ones(3), backend="jax"),
    lambda: FullyConnectedNet([4], input_dim=3, num_classes=2, dtype="float64", backend="jax"),
):
    try:
        call()
    except xplayers.BackendError as exc:
        print("ERR", exc)
    else:
        print("NO ERROR")
x = xplayers.asarray(np.ones(3), backend="jax", dtype="float32")
print("DTYPE", x.dtype, "X64", jax.config.jax_enable_x64)
"""
    out = _run_without_x64(code)
    assert out.returncode == 0, out.stderr
    errors = [line for line in out.stdout.splitlines() if line.startswith("ERR")]
    assert len(errors) == 3, out.stdout
    for line in errors:
        assert "dtype='float64'" in line and "JAX_ENABLE_X64=1" in line and "jax_enable_x64" in line
    # float32 works, and xplayers left JAX's global setting alone.
    assert "DTYPE float32 X64 False" in out.stdout


def test_jax_is_listed_and_labels_its_devices() -> None:
    assert "jax" in xplayers.available_backends()
    labels = backends.devices("jax")
    assert labels[:2] == ["cpu:0", "cpu:1"]  # conftest asks for two host devices
    assert backends.resolve_device("jax", "cpu") == backends.resolve_device("jax", "cpu:0")
    with pytest.raises(backends.BackendError, match=r"no device 'cpu:9'.*cpu:0"):
        backends.resolve_device("jax", "cpu:9")


def test_arrays_are_committed_to_the_device_asked_for() -> None:
    x = xplayers.asarray(np.ones((2, 3), np.float32), backend="jax", device="cpu:1")
    assert backends.device_label(x) == "cpu:1" and x.committed
    assert not backends.writes_in_place(x)
    assert backends.writes_in_place(np.ones(2))


def test_two_devices_in_one_call_name_both_even_uncommitted() -> None:
    import jax.numpy as jnp

    x = xplayers.asarray(np.ones((2, 3), np.float32), backend="jax", device="cpu:1")
    w = jnp.ones((3, 4), dtype=jnp.float32)  # uncommitted, on cpu:0: JAX would move it
    b = jnp.zeros(4, dtype=jnp.float32)
    with pytest.raises(backends.BackendError, match=r"cpu:1.*cpu:0|cpu:0.*cpu:1") as err:
        layers.affine_forward(x, w, b)
    assert "x is a jax float32 array of shape (2, 3) on cpu:1" in str(err.value)
    assert "w is a jax float32 array of shape (3, 4) on cpu:0" in str(err.value)


def test_results_and_seeded_masks_stay_on_the_inputs_device() -> None:
    x = xplayers.asarray(np.ones((4, 5), np.float32), backend="jax", device="cpu:1")
    first = backends.uniform_like(x, seed=3)
    assert backends.device_label(first) == "cpu:1" and first.dtype == x.dtype
    np.testing.assert_array_equal(
        backends.to_numpy(first), backends.to_numpy(backends.uniform_like(x, seed=3))
    )
    assert not np.array_equal(
        backends.to_numpy(first), backends.to_numpy(backends.uniform_like(x, seed=4))
    )
    out, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 3})
    assert backends.device_label(out) == "cpu:1"


def test_synchronize_blocks_until_an_array_is_ready() -> None:
    x = xplayers.asarray(np.ones(3, np.float32), backend="jax")
    y = x * 2
    backends.synchronize(y)
    backends.synchronize("jax")
    assert y.is_ready()


@pytest.mark.parametrize("model", ["fc", "cnn"])
def test_parity_with_numpy_on_both_jax_devices(model) -> None:
    from xplayers import parity

    report = parity.compare(["numpy", "jax", "jax:cpu:1"], model=model, iterations=4)
    assert report.cases == ["numpy:cpu", "jax:cpu:0", "jax:cpu:1"]
    for case in report.cases[1:]:  # XLA's own kernels: rounding, far inside float64's 1e-8
        assert max(report.loss[case]) <= 1e-10 and max(report.params[case]) <= 1e-10
    assert report.passed


def test_the_command_line_trains_on_the_second_jax_device() -> None:
    from subprocess_helpers import parse_number, run_cli

    proc = run_cli("train", "--backend", "jax", "--device", "cpu:1", "--epochs", "5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("backend: jax (device: cpu:1)"), proc.stdout.splitlines()[0]
    assert parse_number(r"val accuracy:\s+([0-9.]+)", proc.stdout) >= 0.9
