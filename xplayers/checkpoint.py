"""Checkpoints and saved models: safetensors files that never run code.

A checkpoint is one safetensors file. Its tensors are the model's parameters
and batch-norm running statistics and, when a Solver wrote it, the optimizer
state arrays and the best parameters so far; its metadata is one JSON
document with the format version, the model's class and constructor
arguments, and the solver's settings, counters, histories and generator
states as plain integers (``xplayers._checkpoint_layout`` has the layout).
Neither part can hold code, so loading any file, whatever it contains, only
ever reads numbers: no pickle is involved in saving or loading.

Files are written atomically (``xplayers._checkpoint_writer``): a reader sees
the old file or the new one, whole. Reading checks every field
(``_checkpoint_reader``) and the tensors against each other
(``_checkpoint_fit``) before a model is built.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors

from . import backends, models  # noqa: F401 - models: defining the built-in classes registers them
from ._checkpoint_fit import check_consistent
from ._checkpoint_layout import FORMAT, VERSION, CheckpointError, CheckpointMismatch
from ._checkpoint_reader import clip, unpack
from ._checkpoint_writer import SUFFIX, checkpoint_name_of, epoch_path, write
from ._checks import short
from ._model_registry import MODEL_CLASSES

__all__ = [
    "FORMAT",
    "SUFFIX",
    "VERSION",
    "CheckpointError",
    "CheckpointMismatch",
    "checkpoint_name_of",
    "epoch_path",
    "load",
    "load_model",
    "save",
]


def save(path: str | os.PathLike, model: Any, solver: Any = None, info: dict | None = None) -> Path:
    """Write ``model`` (and the state of ``solver``, to resume it) to ``path``, atomically.

    ``info`` is free JSON data kept with the checkpoint (the command line
    records the dataset a run used). Returns the path written.
    """
    return write(path, model, solver, info)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """The validated content of a checkpoint, arrays as host numpy arrays.

    Returns ``{"format", "version", "info", "model": {"class", "init_args",
    "reg", "params", "norm_params"}, "solver": None or {"settings",
    "update_rule", "epoch", "iteration", "num_train", "rng", "loss_history",
    "train_acc_history", "val_acc_history", "acc_iterations",
    "best_val_acc", "optim_configs", "best_params", "best_norm_params"}}``.
    FileNotFoundError if there is no file; CheckpointError naming the file
    and the field for anything that is not a whole, consistent checkpoint of
    this format (``_checkpoint_reader`` and ``_checkpoint_fit`` list the checks).
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {name!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name!r} is not a file")
    with open(path, "rb") as f:
        head = f.read(2)
    if not head:
        raise CheckpointError(f"checkpoint {name!r} is empty (0 bytes)")
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        raise CheckpointError(
            f"{name!r} is a pickle, not a safetensors checkpoint: pickles can run code "
            "when loaded, so xplayers never loads them (checkpoints of xplayers before "
            f"format version {VERSION} were pickles: retrain, or convert them yourself "
            "if you trust the file)"
        )
    metadata, tensors = _read(path, name)
    state = unpack(name, tensors, metadata)
    check_consistent(name, state)
    return state


#: The tensor dtypes of a checkpoint (safetensors' names): the floating ones xplayers computes in.
TENSOR_DTYPES = ("F16", "F32", "F64")
_MAX_NDIM = 8


def _read(path: Path, name: str) -> tuple[dict[str, str] | None, dict[str, np.ndarray]]:
    """The metadata and the tensors of a safetensors file; a tensor of a dtype or rank no
    checkpoint holds is refused before it is read."""
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata()
            layout = {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}
            odd = [
                k
                for k, (dtype, shape) in layout.items()
                if dtype not in TENSOR_DTYPES or len(shape) > _MAX_NDIM
            ]
            tensors = {} if odd else {k: f.get_tensor(k) for k in layout}
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{name!r} is not a readable safetensors checkpoint (truncated, or another "
            f"kind of file): {clip(str(exc))}"
        ) from None
    if odd:
        dtype, shape = layout[odd[0]]
        raise CheckpointError(
            f"checkpoint {name!r} is malformed: tensor {short(odd[0])} is {short(dtype)} of "
            f"{len(shape)} dimensions; a checkpoint holds {', '.join(TENSOR_DTYPES)} tensors "
            f"of at most {_MAX_NDIM} dimensions"
        )
    return metadata, tensors


def load_model(path: str | os.PathLike, backend: str | None = None, device: Any = None) -> Any:
    """The model saved at ``path``, rebuilt on ``backend`` (default: the default backend),
    holding the best parameters of the run (its last ones if no solver wrote the file).

    Only model classes already defined in this process (subclasses of
    ``xplayers.models.Model``) that can tell their shapes from their arguments
    (``Model.state_shapes``) are rebuilt, and only once ``load`` has found the
    file's constructor arguments to describe its tensors: the model costs what
    the file holds. Nothing is imported by name.
    """
    state = load(path)
    name, m = str(path), state["model"]
    cls = MODEL_CLASSES.get(m["class"])
    if cls is None:
        raise CheckpointError(
            f"checkpoint {name!r} holds a {short(m['class'])}, which is not a model class defined "
            f"here (known: {sorted(MODEL_CLASSES)}); import the module that defines it first"
        )
    if m["init_args"] is None or cls.state_shapes(m["init_args"]) is None:
        raise CheckpointError(
            f"checkpoint {name!r}: its {m['class']} "
            + (
                "does not record its constructor arguments"
                if m["init_args"] is None
                else "cannot tell its parameters' shapes from its arguments (no _state_shapes)"
            )
            + ": build the model yourself and use Solver.resume"
        )
    kwargs = {**m["init_args"], "backend": backend}
    if "device" in inspect.signature(cls).parameters:
        kwargs["device"] = device
    else:
        _check_default_device(backend, device)
    saved = np.random.get_state()  # noqa: NPY002 (unseeded models draw from it)
    try:
        model = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {name!r}: its {m['class']} arguments {short(m['init_args'])} do not "
            f"build a model: {clip(str(exc))}"
        ) from None
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    solver = state["solver"]
    params, norm = m["params"], m["norm_params"]
    if solver is not None and solver["best_params"]:
        params = solver["best_params"]
        norm = norm if solver["best_norm_params"] is None else solver["best_norm_params"]
    model.load_state_dict({"params": params, "norm_params": norm, "reg": m["reg"]})
    return model


def _check_default_device(backend: str | None, device: Any) -> None:
    """Models without a ``device`` argument live on the backend's default device."""
    if device is None:
        return
    adapter = backends.get_backend(backend)
    default = adapter.default_device()
    if str(device) not in (str(default), adapter.device_name(default)):
        raise ValueError(
            f"device {device!r} is not available for models of backend {adapter.name!r} "
            f"here: they live on its default device {adapter.device_name(default)!r}"
        )
