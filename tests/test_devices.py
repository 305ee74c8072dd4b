"""Placement, proven without a GPU: array_api_strict's devices refuse to mix, so a
model that trains on "device1" allocates nothing on the default device.

Also here: a float64 request on a device without float64 is a clear error, and
seeded dropout gives each layer of each step its own mask on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest

import xplayers
import xplayers.backends as backends
import xplayers.layers as layers
import xplayers.models.fc_net as fc_net
from xplayers.gradcheck import eval_numerical_gradient_array
from xplayers.models import FullyConnectedNet, ThreeLayerConvNet
from xplayers.solver import Solver

pytestmark = pytest.mark.skipif(
    backends.unavailable_reason("array_api_strict") is not None,
    reason="array_api_strict is not installed",
)
STRICT = "array_api_strict"


def _labels(tree) -> set[str]:
    """The device labels of every array in a (nested) dict/list of arrays."""
    if isinstance(tree, dict):
        return set().union(*map(_labels, tree.values())) if tree else set()
    if isinstance(tree, (list, tuple)):
        return set().union(*map(_labels, tree)) if tree else set()
    return {backends.device_label(tree)} if backends.is_array(tree) else set()


def _digits_like(n: int, shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    split = {}
    for part, rows in (("train", n), ("val", n // 4)):
        split[f"X_{part}"] = rng.standard_normal((rows, *shape)).astype(np.float32)
        split[f"y_{part}"] = rng.integers(0, 5, rows)
    return split


def test_asarray_and_to_backend_honour_the_device() -> None:
    x = xplayers.asarray(np.ones((2, 3)), backend=STRICT, device="device1")
    assert backends.device_label(x) == "device1"
    assert xplayers.device_of(x) == backends.resolve_device(STRICT, "device1")
    tree = {"a": x, "b": [np.zeros(2), x]}
    moved = xplayers.to_backend(tree, STRICT, device="device2")
    assert _labels(moved) == {"device2"}
    np.testing.assert_array_equal(backends.to_numpy(moved["b"][1]), np.ones((2, 3)))
    # An array already there is kept as it is; device=None leaves it where it lives.
    assert xplayers.asarray(x, backend=STRICT, device="device1") is x
    assert _labels(xplayers.to_backend(tree, STRICT)) == {"device1", "CPU_DEVICE"}


def test_a_fully_connected_net_with_batchnorm_and_dropout_trains_on_device1() -> None:
    data = _digits_like(120, (12,), seed=0)
    runs = {}
    for device in ("CPU_DEVICE", "device1"):
        model = FullyConnectedNet(
            [10, 10],
            input_dim=12,
            num_classes=5,
            normalization="batchnorm",
            dropout=0.7,
            dtype="float64",
            seed=3,
            backend=STRICT,
            device=device,
        )
        solver = Solver(model, data, update_rule="adam", num_epochs=2, batch_size=30, seed=1,
                        verbose=False)  # fmt: skip
        solver.train()
        # Parameters, Adam's moments, running statistics and the best params:
        # every array the run made lives where the model was put.
        assert _labels(model.params) == {device}
        assert _labels(solver.optim_configs) == {device}
        assert _labels(model.norm_params) == {device}
        assert _labels(solver.best_params) == {device}
        runs[device] = solver.loss_history, backends.to_numpy(model.params["W1"])
    # The same arithmetic on another device: the same run, bit for bit.
    assert runs["device1"][0] == runs["CPU_DEVICE"][0]
    np.testing.assert_array_equal(runs["device1"][1], runs["CPU_DEVICE"][1])


def test_a_three_layer_conv_net_trains_on_device1_from_host_data() -> None:
    data = _digits_like(40, (3, 8, 8), seed=1)
    model = ThreeLayerConvNet(
        input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=8, num_classes=5,
        weight_scale=0.1, seed=2, backend=STRICT, device="device1",
    )  # fmt: skip
    before = backends.to_numpy(model.params["W1"])
    solver = Solver(model, data, update_rule="sgd_momentum", num_epochs=1, batch_size=20,
                    optim_config={"learning_rate": 0.05}, verbose=False, seed=0)  # fmt: skip
    solver.train()
    assert _labels(model.params) == {"device1"} and _labels(solver.optim_configs) == {"device1"}
    assert not np.array_equal(backends.to_numpy(model.params["W1"]), before)
    assert all(np.isfinite(solver.loss_history))
    scores = model.loss(xplayers.asarray(data["X_val"], backend=STRICT, device="device1"))
    assert backends.device_label(scores) == "device1" and tuple(scores.shape) == (10, 5)


def test_float64_on_a_device_without_float64_is_a_clear_error() -> None:
    with pytest.raises(backends.BackendError, match=r"no_float64.*float64|float64.*no_float64"):
        xplayers.asarray(np.ones(3), backend=STRICT, device="no_float64")
    with pytest.raises(backends.BackendError, match="no_float64"):
        FullyConnectedNet([4], input_dim=3, num_classes=2, dtype="float64", backend=STRICT,
                          device="no_float64")  # fmt: skip
    # float32 is what that device holds: a model of it computes there.
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, seed=0, backend=STRICT,
                              device="no_float64")  # fmt: skip
    X = xplayers.asarray(np.ones((2, 3)), backend=STRICT, dtype="float32", device="no_float64")
    y = xplayers.asarray(np.array([0, 1]), backend=STRICT, device="no_float64")
    loss, grads = model.loss(X, y)
    assert _labels(grads) == {"no_float64"} and np.isfinite(float(loss))


def test_two_devices_in_one_call_name_both() -> None:
    x = xplayers.asarray(np.ones((2, 3)), backend=STRICT, device="device1")
    w = xplayers.asarray(np.ones((3, 4)), backend=STRICT, device="device2")
    b = xplayers.asarray(np.zeros(4), backend=STRICT, device="device2")
    with pytest.raises(backends.BackendError, match=r"device1.*device2|device2.*device1") as err:
        layers.affine_forward(x, w, b)
    assert "x is" in str(err.value) and "w is" in str(err.value)
    with pytest.raises(backends.BackendError, match=r"device1.*device2|device2.*device1"):
        eval_numerical_gradient_array(lambda v: v * 2, x, w[:2, :3])


def test_unknown_devices_name_the_devices_there_are() -> None:
    with pytest.raises(backends.BackendError, match=r"no device 'cuda:7'.*\['cpu'\]"):
        xplayers.asarray(np.ones(2), backend="numpy", device="cuda:7")
    with pytest.raises(backends.BackendError, match="device1"):
        FullyConnectedNet([4], input_dim=3, num_classes=2, backend=STRICT, device="device9")


def _step_masks(model, X, y, step: int, monkeypatch) -> list[np.ndarray]:
    """The dropout masks of one training step of ``model``, on the host."""
    masks = []
    forward = fc_net.dropout_forward

    def spy(x, param):
        out, cache = forward(x, param)
        masks.append(backends.to_numpy(cache[1]))
        return out, cache

    monkeypatch.setattr(fc_net, "dropout_forward", spy)
    model.begin_step(step)
    model.loss(X, y)
    monkeypatch.setattr(fc_net, "dropout_forward", forward)
    return masks


def test_each_dropout_layer_of_each_step_draws_its_own_mask(backend, monkeypatch) -> None:
    # On its own device RNG: statistics and reproducibility, never numpy's numbers.
    p, width, rows = 0.6, 50, 400

    def model() -> FullyConnectedNet:
        return FullyConnectedNet([width] * 3, input_dim=width, num_classes=4, dropout=p,
                                 seed=11, **backend.place)  # fmt: skip

    X = backend.asarray(np.random.default_rng(0).standard_normal((rows, width)), "float32")
    y = backend.asarray(np.arange(rows) % 4)
    first = _step_masks(model(), X, y, 0, monkeypatch)
    assert len(first) == 3
    for mask in first:
        assert set(np.unique(mask)) <= {0.0, np.float32(1 / p)}
        # 20,000 draws: the kept share is p within 5 standard deviations.
        assert abs(np.mean(mask > 0) - p) < 5 * np.sqrt(p * (1 - p) / mask.size)
    for i in range(3):
        for j in range(i):
            assert np.mean(first[i] == first[j]) < 0.7  # independent masks agree ~52%
    again = _step_masks(model(), X, y, 0, monkeypatch)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    later = _step_masks(model(), X, y, 1, monkeypatch)
    assert all(np.mean(a == b) < 0.7 for a, b in zip(first, later, strict=True))
