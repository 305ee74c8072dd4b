"""Checkpoints: safetensors + JSON, never pickle; exact round trips, validated loading."""

# The course seeds NumPy's legacy global state; the models must follow it.
# ruff: noqa: NPY002

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import safetensors.numpy

import xplayers
import xplayers.backends as backends
from xplayers import checkpoint
from xplayers.checkpoint import CheckpointError
from xplayers.data import get_digits_data
from xplayers.models import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from xplayers.solver import Solver, TrainingDiverged


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    d = get_digits_data(image=False)
    return {"X_train": d["X_train"][:200], "y_train": d["y_train"][:200],
            "X_val": d["X_val"][:100], "y_val": d["y_val"][:100]}  # fmt: skip


def _net(backend: str, **kw) -> FullyConnectedNet:
    args = dict(input_dim=64, num_classes=10, weight_scale=0.1, seed=0, backend=backend)
    return FullyConnectedNet(kw.pop("hidden_dims", [16]), **{**args, **kw})


def _trained(backend: str, data, tmp_path, **kw) -> Solver:
    model = _net(backend, normalization="batchnorm", hidden_dims=[16, 8])
    solver = Solver(model, data, update_rule="adam", num_epochs=2, batch_size=50, seed=1,
                    checkpoint_name=tmp_path / "run", verbose=False, **kw)  # fmt: skip
    solver.train()
    return solver


class Exploit:
    """A pickle whose loading would create ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _attack_file(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Exploit(marker)))
    return path, marker


def test_model_round_trip_is_exact_with_a_transposed_param(backend, tmp_path) -> None:
    model = _net(backend.name, hidden_dims=[8], device=backend.device)
    w = backend.asarray(np.arange(64 * 8, dtype=np.float32).reshape(8, 64) / 100)
    model.params["W1"] = w.T  # a non-contiguous (transposed) view
    path = checkpoint.save(tmp_path / "m.safetensors", model)
    state = checkpoint.load(path)
    assert state["solver"] is None and state["model"]["class"].endswith("FullyConnectedNet")
    np.testing.assert_array_equal(state["model"]["params"]["W1"], backend.numpy(w).T)
    rebuilt = xplayers.load_model(path, **backend.place)
    assert backends.backend_of(rebuilt.params["W1"]) == backend.name
    assert xplayers.device_of(rebuilt.params["W1"]) == xplayers.device_of(w)
    for k, v in model.params.items():
        np.testing.assert_array_equal(backend.numpy(rebuilt.params[k]), backend.numpy(v), k)
    X = backend.asarray(np.random.default_rng(0).standard_normal((5, 64)), "float32")
    # A contiguous W1 against a transposed view: the same numbers, another summation order.
    np.testing.assert_allclose(
        backend.numpy(rebuilt.loss(X)), backend.numpy(model.loss(X)), rtol=1e-5, atol=1e-5
    )


def test_load_model_rebuilds_each_model_class(tmp_path) -> None:
    models = [
        TwoLayerNet(input_dim=12, hidden_dim=7, num_classes=3, seed=1, backend="numpy"),
        ThreeLayerConvNet(
            input_dim=(1, 8, 8),
            num_filters=2,
            filter_size=3,
            hidden_dim=5,
            num_classes=3,
            dtype="float64",
            seed=2,
            backend="numpy",
        ),
        FullyConnectedNet(
            [6, 5],
            input_dim=12,
            num_classes=3,
            normalization="layernorm",
            dropout=0.5,
            reg=0.1,
            seed=3,
            backend="numpy",
        ),
    ]
    for i, model in enumerate(models):
        path = checkpoint.save(tmp_path / f"{i}.safetensors", model)
        rebuilt = xplayers.load_model(path, backend="numpy")
        assert type(rebuilt) is type(model)
        saved = checkpoint.load(path)["model"]["init_args"]
        assert saved == {
            k: v for k, v in model.init_args.items() if k not in ("backend", "device")
        } | {
            "dtype": model.dtype.name,
            **({"input_dim": list(model.init_args["input_dim"])} if i == 1 else {}),
        }
        assert rebuilt.reg == model.reg and rebuilt.dtype == model.dtype
        for k, v in model.params.items():
            np.testing.assert_array_equal(rebuilt.params[k], v)


def test_load_model_takes_the_best_params_and_bn_statistics(backend, small, tmp_path) -> None:
    solver = _trained(backend.name, small, tmp_path)
    rebuilt = xplayers.load_model(solver.last_checkpoint, backend=backend.name)
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(backend.numpy(rebuilt.params[k]), backend.numpy(v))
    for live, saved in zip(solver.model.norm_params, rebuilt.norm_params, strict=True):
        np.testing.assert_array_equal(
            backend.numpy(live["running_mean"]), backend.numpy(saved["running_mean"])
        )
    X = small["X_val"].astype(np.float32)
    assert Solver(rebuilt, small, verbose=False).check_accuracy(X, small["y_val"]) == (
        solver.best_val_acc
    )


def test_metadata_is_plain_json_with_integer_rng_state(small, tmp_path) -> None:
    solver = _trained("numpy", small, tmp_path)
    with safetensors.safe_open(str(solver.last_checkpoint), "numpy") as f:
        meta = json.loads(f.metadata()["xplayers"])
    assert meta["format"] == checkpoint.FORMAT and meta["version"] == checkpoint.VERSION
    rng = meta["solver"]["rng"]["batch"]
    assert rng["state"]["state"] == solver._batch_rng.bit_generator.state["state"]["state"]
    assert isinstance(rng["state"]["inc"], int)
    assert meta["model"]["init_args"]["hidden_dims"] == [16, 8]
    assert meta["solver"]["loss_history"] == solver.loss_history


def test_resume_refuses_a_model_that_does_not_fit(backend, small, tmp_path) -> None:
    path = _trained(backend.name, small, tmp_path).last_checkpoint
    wrong = _net(backend.name, hidden_dims=[16, 9], normalization="batchnorm", dtype="float64")
    with pytest.raises(CheckpointError, match="does not fit") as info:
        Solver.resume(path, wrong, small)
    msg = str(info.value)
    assert "W2 has shape (16, 8) in the file, (16, 9) in the model" in msg
    assert "W1 is float32 in the file, float64 in the model" in msg
    assert str(path) in msg
    other = TwoLayerNet(input_dim=64, hidden_dim=16, backend=backend.name)
    with pytest.raises(CheckpointError, match=r"FullyConnectedNet.*TwoLayerNet") as info:
        Solver.resume(path, other, small)
    assert "are in the file but not in the model" in str(info.value)


def test_keep_checkpoints_false_keeps_only_the_latest_and_stale_temps_go(small, tmp_path) -> None:
    stale = tmp_path / ".run_epoch_2.safetensors.abc123.tmp"  # left by a kill
    stale.write_bytes(b"partial")
    solver = _trained("numpy", small, tmp_path, keep_checkpoints=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_epoch_2.safetensors"]
    assert solver.last_checkpoint == tmp_path / "run_epoch_2.safetensors"


def test_name_with_the_suffix_is_not_doubled() -> None:
    assert checkpoint.epoch_path("a/run.safetensors", 3).as_posix() == "a/run_epoch_3.safetensors"
    assert checkpoint.checkpoint_name_of("a/run_epoch_12.safetensors") == "a/run"


def _write(path, tensors, meta) -> None:
    path.write_bytes(safetensors.numpy.save(tensors, metadata=meta))


def _good(tmp_path):
    path = checkpoint.save(tmp_path / "good.safetensors", _net("numpy"))
    with safetensors.safe_open(str(path), "numpy") as f:
        meta = json.loads(f.metadata()["xplayers"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return path, meta, tensors


def test_malformed_files_raise_checkpoint_error_naming_the_file(tmp_path) -> None:
    good, meta, tensors = _good(tmp_path)
    cases = {}
    cases["empty"] = (b"", "empty")
    cases["truncated"] = (good.read_bytes()[:-10], "truncated")
    cases["text"] = (b"hello world, not a checkpoint at all", "not a readable")
    for name, (data, match) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=match) as info:
            checkpoint.load(path)
        assert str(path) in str(info.value)

    foreign = tmp_path / "foreign.safetensors"
    _write(foreign, {"weight": np.zeros(3)}, None)
    with pytest.raises(CheckpointError, match="not an xplayers checkpoint"):
        checkpoint.load(foreign)

    no_model = {k: v for k, v in meta.items() if k != "model"}
    wrong_version = {**meta, "version": 99}
    bad_type = {**meta, "model": {**meta["model"], "reg": "lots"}}
    unlisted = {**meta, "model": {**meta["model"], "params": meta["model"]["params"][:-1]}}
    for name, (m, match) in {
        "no_model": (no_model, "lacks 'model'"),
        "version": (wrong_version, "format version 99"),
        "bad_type": (bad_type, r"\['reg'\] must be a finite number"),
        "unlisted": (unlisted, "not listed in its metadata"),
    }.items():
        path = tmp_path / f"{name}.safetensors"
        _write(path, tensors, {"xplayers": json.dumps(m)})
        with pytest.raises(CheckpointError, match=match) as info:
            checkpoint.load(path)
        assert str(path) in str(info.value), name
    missing = tmp_path / "missing_tensor.safetensors"
    _write(
        missing,
        {k: v for k, v in tensors.items() if k != "params/W1"},
        {"xplayers": json.dumps(meta)},
    )
    with pytest.raises(CheckpointError, match="no tensor 'params/W1'"):
        checkpoint.load(missing)
    with pytest.raises(FileNotFoundError, match="nope"):
        checkpoint.load(tmp_path / "nope.safetensors")
    assert issubclass(CheckpointError, ValueError)


def test_a_pickle_payload_never_runs(small, tmp_path) -> None:
    path, marker = _attack_file(tmp_path)
    with pytest.raises(CheckpointError, match="is a pickle"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="is a pickle"):
        xplayers.load_model(path)
    with pytest.raises(CheckpointError, match="is a pickle"):
        Solver.resume(path, _net("numpy"), small)
    with pytest.raises(CheckpointError, match="is a pickle"):
        Solver(_net("numpy"), small).load_checkpoint(path)
    assert not marker.exists()


def test_unknown_model_class_is_not_imported(tmp_path) -> None:
    _, meta, tensors = _good(tmp_path)
    meta["model"]["class"] = "os.system"
    path = tmp_path / "cls.safetensors"
    _write(path, tensors, {"xplayers": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="not a model class defined here"):
        xplayers.load_model(path)


def test_load_model_device(tmp_path) -> None:
    path = checkpoint.save(tmp_path / "m.safetensors", _net("numpy"))
    assert xplayers.load_model(path, backend="numpy", device="cpu").backend == "numpy"
    with pytest.raises(ValueError, match="device 'cuda:7'"):
        xplayers.load_model(path, backend="numpy", device="cuda:7")


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_divergence_at_the_first_iteration_restores_the_initial_params(backend, small) -> None:
    model = _net(backend.name)
    initial = {k: backend.numpy(v).copy() for k, v in model.params.items()}
    solver = Solver(model, small, optim_config={"learning_rate": 1e30}, batch_size=50,
                    num_epochs=1, verbose=False, print_every=1)  # fmt: skip
    model.params["W1"] = model.params["W1"] * float("inf")
    with pytest.raises(TrainingDiverged, match="iteration 1 of 4") as info:
        solver.train()
    assert "initial parameters" in str(info.value)
    initial["W1"] = backend.numpy(solver._initial[0]["W1"])  # what train() started from
    for k, v in initial.items():
        np.testing.assert_array_equal(backend.numpy(model.params[k]), v, k)


def test_unseeded_models_draw_the_courses_global_stream() -> None:
    np.random.seed(231)
    model = FullyConnectedNet([20, 30], input_dim=15, num_classes=10, weight_scale=5e-2,
                              dtype=np.float64, backend="numpy")  # fmt: skip
    np.random.seed(231)
    for i, shape in enumerate([(15, 20), (20, 30), (30, 10)], start=1):
        np.testing.assert_array_equal(model.params[f"W{i}"], np.random.normal(0, 5e-2, shape))
    np.random.seed(231)
    cnn = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                            dtype="float64", backend="numpy")  # fmt: skip
    np.random.seed(231)
    np.testing.assert_array_equal(cnn.params["W1"], np.random.normal(0, 1e-3, (3, 3, 3, 3)))
    np.testing.assert_array_equal(cnn.params["W2"], np.random.normal(0, 1e-3, (48, 7)))
