"""Crafted checkpoints: every loader refuses them with a short CheckpointError, before
building anything; a file never chooses where to write; the file is read once."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from crafted_checkpoints import CRAFTS, craft, read, write

import xplayers
from xplayers import checkpoint
from xplayers.checkpoint import CheckpointError
from xplayers.data import get_digits_data
from xplayers.models import FullyConnectedNet, Model, ThreeLayerConvNet, TwoLayerNet
from xplayers.solver import Solver

#: Crafts whose values are fine on their own and wrong only for the data resumed on.
_DATA_BOUND = {"settings_batch_size_huge"}


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    d = get_digits_data(image=False)
    return {"X_train": d["X_train"][:200], "y_train": d["y_train"][:200],
            "X_val": d["X_val"][:100], "y_val": d["y_val"][:100]}  # fmt: skip


def _net() -> FullyConnectedNet:
    return FullyConnectedNet([16, 8], input_dim=64, num_classes=10, weight_scale=0.1, seed=0,
                             normalization="batchnorm", backend="numpy")  # fmt: skip


@pytest.fixture(scope="module")
def good(small, tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    solver = Solver(_net(), small, update_rule="adam", num_epochs=2, batch_size=50, seed=1,
                    checkpoint_name=folder / "run", verbose=False)  # fmt: skip
    solver.train()
    return solver.last_checkpoint


def _refused(call, path, field: str) -> str:
    with pytest.raises(CheckpointError) as info:
        call()
    message = str(info.value)
    assert str(path) in message and field in message, message
    assert "\n" not in message and len(message) < 1200, message[:2000]
    return message


@pytest.mark.parametrize("name", sorted(CRAFTS))
def test_every_loader_refuses_a_crafted_file_before_building(name, good, small, tmp_path) -> None:
    path = craft(good, name, tmp_path)
    field = CRAFTS[name][1]
    tracemalloc.start()
    try:
        if name in _DATA_BOUND:
            xplayers.load_model(path, backend="numpy")
        else:
            _refused(lambda: checkpoint.load(path), path, field)
            _refused(lambda: xplayers.load_model(path, backend="numpy"), path, field)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB"  # the file is 20 KB
    _refused(lambda: Solver.resume(path, _net(), small, verbose=False), path, field)
    if name not in _DATA_BOUND:  # load_checkpoint keeps the solver's own settings
        _refused(lambda: Solver(_net(), small, verbose=False).load_checkpoint(path), path, field)
    assert not (tmp_path / "elsewhere").exists()


def test_resume_writes_where_the_caller_says_only(good, small, tmp_path) -> None:
    solver = Solver.resume(good, _net(), small, num_epochs=3, verbose=False)
    solver.train()
    assert solver.last_checkpoint == good and solver.epoch == 3  # no name: nothing written
    solver = Solver.resume(good, _net(), small, num_epochs=3, verbose=False,
                           checkpoint_name=tmp_path / "next", keep_checkpoints=False)  # fmt: skip
    solver.train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next_epoch_3.safetensors"]
    assert good.is_file()  # not the caller's: never removed


def test_resume_reads_the_file_once(good, small, monkeypatch) -> None:
    reads = []
    real = checkpoint.load
    monkeypatch.setattr(checkpoint, "load", lambda path: reads.append(path) or real(path))
    solver = Solver.resume(good, _net(), small, verbose=False)
    assert reads == [good] and solver.epoch == 2


def test_messages_stay_short_and_name_the_field(good, tmp_path) -> None:
    meta, tensors = read(good)
    meta["model"]["init_args"]["hidden_dims"] = [12000, 12000]
    path = write(tmp_path / "wide.safetensors", meta, tensors)
    message = _refused(lambda: xplayers.load_model(path), path, "init_args")
    assert "params W1 has shape (64, 16) in the file, (64, 12000) in its init_args" in message
    assert "params W2 has shape (16, 8) in the file, (12000, 12000) in its init_args" in message
    meta["model"]["class"] = "x" * 100_000
    path = write(tmp_path / "long.safetensors", meta, tensors)
    assert len(_refused(lambda: xplayers.load_model(path), path, "xxx")) < 600


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (FullyConnectedNet, {"hidden_dims": [5, 4], "input_dim": 6, "num_classes": 3}),
        (FullyConnectedNet, {"hidden_dims": [5], "input_dim": 6, "normalization": "batchnorm"}),
        (FullyConnectedNet, {"hidden_dims": [], "input_dim": 6, "normalization": "layernorm"}),
        (TwoLayerNet, {"input_dim": 6, "hidden_dim": 5, "num_classes": 3, "dtype": "float64"}),
        (ThreeLayerConvNet, {"input_dim": [2, 6, 8], "num_filters": 3, "filter_size": 3}),
    ],
)
def test_state_shapes_are_those_of_the_built_model(cls, args) -> None:
    shapes = cls.state_shapes(args)
    model = cls(**args, backend="numpy")
    assert list(shapes.params) == [(k, tuple(v.shape)) for k, v in model.params.items()]
    norm = list(shapes.norm)
    assert len(norm) == len(model.norm_params) and shapes.dtype == model.dtype
    if getattr(model, "normalization", None) == "batchnorm":
        assert norm == [{"running_mean": (5,), "running_var": (5,)}]


def test_state_shapes_refuse_bad_arguments_and_unknown_classes() -> None:
    for bad, match in [
        ({"hidden_dims": [4, "x"]}, r"hidden_dims\[1\] must be a positive integer"),
        ({"hidden_dims": [4], "input_dim": 0}, "input_dim must be positive"),
        ({"hidden_dims": [4], "dropout": float("nan")}, "dropout must be a finite number"),
        ({"hidden_dims": [4], "dtype": "int32"}, "floating dtype"),
        ({"hidden_dims": [4], "backend": "numpy"}, "chosen by the caller"),
        ({"hidden_dims": [4], "colour": 1}, "colour"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            list(FullyConnectedNet.state_shapes(bad).params)

    class Own(FullyConnectedNet):
        def __init__(self, width: int) -> None:
            super().__init__([width], input_dim=4, num_classes=2, backend="numpy")

    class Same(FullyConnectedNet):
        pass

    assert Own.state_shapes({"width": 3}) is None and Model.state_shapes({}) is None
    same = Same.state_shapes({"hidden_dims": [3], "input_dim": 4})
    assert next(same.params) == ("W1", (4, 3))


def test_load_model_refuses_a_class_that_cannot_tell_its_shapes(tmp_path) -> None:
    class Sized(TwoLayerNet):
        def __init__(self, hidden: int) -> None:
            super().__init__(input_dim=4, hidden_dim=hidden, num_classes=2, backend="numpy")

    path = checkpoint.save(tmp_path / "s.safetensors", Sized(3))
    assert checkpoint.load(path)["model"]["init_args"] == {"hidden": 3}
    _refused(lambda: xplayers.load_model(path), path, "cannot tell its parameters' shapes")
