"""How a model and a solver map onto one safetensors file, and back, validated.

Arrays become tensors named by what they are (``params/W1``,
``norm/0/running_mean``, ``optim/W1/m``, ``best/W1``, ``best_norm/0/...``);
everything else is one JSON document under the metadata key ``xplayers``:
the format and its version, the model's class and constructor arguments, and
the solver's settings, counters, histories and generator states as plain
numbers. The JSON lists every tensor the file must hold, so a file with a
missing or an extra tensor is malformed, not half-loaded. Reading a file back
is ``_checkpoint_reader``'s (each field) and ``_checkpoint_fit``'s (the
tensors against each other and against a model).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import backends
from ._model_registry import model_class_name

META_KEY = "xplayers"
FORMAT = "xplayers-checkpoint"
VERSION = 2
#: Solver settings a checkpoint records and Solver.resume reuses unless overridden.
RESUMABLE = (
    "optim_config",
    "lr_decay",
    "batch_size",
    "num_epochs",
    "num_train_samples",
    "num_val_samples",
    "print_every",
    "seed",
)
HISTORIES = ("loss_history", "train_acc_history", "val_acc_history")
#: The entries of ``Solver.state_dict()`` written as JSON as they are (no arrays).
_PLAIN_STATE = (
    "epoch",
    "iteration",
    "num_train",
    "rng",
    *HISTORIES,
    "acc_iterations",
    "best_val_acc",
)


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, empty, foreign or malformed, or that does
    not fit the model it is loaded into; the message names the file and the problem."""


class CheckpointMismatch(CheckpointError):
    """A whole checkpoint whose model differs from the one it is loaded into (class,
    parameter names, shapes or dtypes); the message names each difference."""


# --------------------------------------------------------------------- saving
def _host(x: Any) -> np.ndarray:
    # safetensors' numpy writer takes the buffer as it lies in memory: a
    # transposed (non-contiguous) array would be saved scrambled.
    return np.ascontiguousarray(backends.to_numpy(x))


def _array_group(tensors: dict[str, np.ndarray], prefix: str, arrays: dict[str, Any]) -> list:
    """Add ``arrays``' array entries as ``{prefix}/{name}``; return their names."""
    names = [k for k, v in arrays.items() if backends.is_array(v)]
    for k in names:
        tensors[f"{prefix}/{k}"] = _host(arrays[k])
    return names


def _norm_groups(tensors: dict, prefix: str, norm_params: list[dict]) -> list[list[str]]:
    return [_array_group(tensors, f"{prefix}/{i}", p) for i, p in enumerate(norm_params)]


def jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON data (tuples as lists, NumPy scalars as numbers); TypeError if
    it holds anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} = {value!r} cannot be written to a checkpoint (not JSON data)")


def _init_args(model: Any) -> dict[str, Any] | None:
    """The constructor arguments to rebuild ``model`` (None if it has none to give)."""
    args = getattr(model, "init_args", None)
    if args is None:
        return None
    args = {k: v for k, v in args.items() if k not in ("backend", "device")}
    if "dtype" in args and hasattr(model, "dtype"):
        args["dtype"] = np.dtype(model.dtype).name
    try:
        return jsonable(args, "init_args")
    except TypeError:
        return None


def pack(
    model: Any, solver: Any = None, info: dict | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, metadata) of a safetensors file holding ``model`` (and ``solver``)."""
    tensors: dict[str, np.ndarray] = {}
    norm = getattr(model, "norm_params", [])
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": {
            "class": model_class_name(type(model)),
            "init_args": _init_args(model),
            "reg": float(getattr(model, "reg", 0.0)),
            "params": _array_group(tensors, "params", model.params),
            "norm_params": _norm_groups(tensors, "norm", norm),
        },
        "solver": None if solver is None else _pack_solver(solver, tensors),
        "info": jsonable(info or {}, "checkpoint info"),
    }
    return tensors, {META_KEY: json.dumps(meta)}


def _pack_solver(solver: Any, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The solver's settings and its ``state_dict()``: numbers in the JSON, arrays as
    tensors."""
    state = solver.state_dict()
    rule = solver.update_rule_name
    configs = {}
    for p, config in state["optim_configs"].items():
        arrays = _array_group(tensors, f"optim/{p}", config)
        values = jsonable({k: v for k, v in config.items() if k not in arrays}, f"config {p!r}")
        odd = [k for k, v in values.items() if type(v) not in (int, float)]
        if odd:  # what a reader accepts: a file never hands a rule a string
            raise TypeError(f"optim_configs[{p!r}] {odd} cannot be written: configs hold numbers")
        configs[p] = {"arrays": arrays, "values": values}
    best_norm = state["best_norm_params"]
    packed = {
        "settings": {k: getattr(solver, k) for k in RESUMABLE},
        "update_rule": rule if isinstance(rule, str) else None,
        "update_rule_repr": getattr(rule, "__qualname__", repr(rule)),
        **{k: state[k] for k in _PLAIN_STATE},
        "optim_configs": configs,
        "best_params": _array_group(tensors, "best", state["best_params"]),
        "best_norm_params": None
        if best_norm is None
        else _norm_groups(tensors, "best_norm", best_norm),
    }
    return jsonable(packed, "solver state")
