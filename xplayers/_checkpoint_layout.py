"""How a model and a solver map onto one safetensors file, and back, validated.

Arrays become tensors named by what they are (``params/W1``,
``norm/0/running_mean``, ``optim/W1/m``, ``best/W1``, ``best_norm/0/...``);
everything else is one JSON document under the metadata key ``xplayers``:
the format and its version, the model's class and constructor arguments, and
the solver's settings, counters, histories and generator states as plain
numbers. The JSON lists every tensor the file must hold, so a file with a
missing or an extra tensor is malformed, not half-loaded.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import backends

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
_HISTORIES = ("loss_history", "train_acc_history", "val_acc_history")


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


def model_class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


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
    rule = solver.update_rule_name
    configs = {}
    for p, config in solver.optim_configs.items():
        arrays = _array_group(tensors, f"optim/{p}", config)
        values = {k: v for k, v in config.items() if k not in arrays}
        configs[p] = {"arrays": arrays, "values": jsonable(values, f"optim_configs[{p!r}]")}
    best_norm = solver._best_norm_params
    state = {
        "settings": {k: getattr(solver, k) for k in RESUMABLE},
        "update_rule": rule if isinstance(rule, str) else None,
        "update_rule_repr": getattr(rule, "__qualname__", repr(rule)),
        "epoch": solver.epoch,
        "iteration": solver.iteration,
        "num_train": solver._train.n,
        "rng": {
            "batch": solver._batch_rng.bit_generator.state,
            "eval": solver._eval_rng.bit_generator.state,
        },
        **{k: list(getattr(solver, k)) for k in _HISTORIES},
        "acc_iterations": list(solver.acc_iterations),
        "best_val_acc": solver.best_val_acc,
        "optim_configs": configs,
        "best_params": _array_group(tensors, "best", solver.best_params),
        "best_norm_params": None
        if best_norm is None
        else _norm_groups(tensors, "best_norm", best_norm),
    }
    return jsonable(state, "solver state")


# -------------------------------------------------------------------- loading
class _Reader:
    """Checks one file's JSON and tensors; every complaint names the file."""

    def __init__(self, path: str, tensors: dict[str, np.ndarray]) -> None:
        self.path = path
        self.tensors = tensors
        self.used: set[str] = set()

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path!r} is malformed: {what}")

    def get(self, obj: dict, key: str, kind: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where} lacks {key!r}")
        return self.check(obj[key], kind, f"{where}[{key!r}]")

    def check(self, value: Any, kind: str, where: str) -> Any:
        """``kind``: int, count (int >= 0), number, str, dict, list, optional variants with '?'."""
        if kind.endswith("?"):
            if value is None:
                return None
            kind = kind[:-1]
        is_int = isinstance(value, int) and not isinstance(value, bool)
        ok = {
            "int": is_int,
            "count": is_int and value >= 0,
            "number": is_int or isinstance(value, float),
            "str": isinstance(value, str),
            "dict": isinstance(value, dict),
            "list": isinstance(value, list),
            "any": True,
        }[kind]
        if not ok:
            raise self.fail(f"{where} must be {_KIND_TEXT[kind]}, got {value!r:.80}")
        return value

    def items(self, obj: dict, key: str, kind: str, where: str) -> list:
        values = self.get(obj, key, "list", where)
        return [self.check(v, kind, f"{where}[{key!r}][{i}]") for i, v in enumerate(values)]

    def arrays(self, prefix: str, names: Any, where: str) -> dict[str, np.ndarray]:
        names = self.check(names, "list", where)
        out = {}
        for i, name in enumerate(names):
            self.check(name, "str", f"{where}[{i}]")
            key = f"{prefix}/{name}"
            if key not in self.tensors:
                raise self.fail(f"{where} names {name!r} but the file has no tensor {key!r}")
            self.used.add(key)
            out[name] = self.tensors[key]
        return out

    def norm_arrays(self, prefix: str, groups: Any, where: str) -> list[dict[str, np.ndarray]]:
        groups = self.check(groups, "list", where)
        return [self.arrays(f"{prefix}/{i}", g, f"{where}[{i}]") for i, g in enumerate(groups)]


_KIND_TEXT = {
    "int": "an integer",
    "count": "an integer >= 0",
    "number": "a number",
    "str": "a string",
    "dict": "a JSON object",
    "list": "a list",
}


def unpack(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> dict:
    """The validated content of a file: see ``xplayers.checkpoint.load``."""
    r = _Reader(path, tensors)
    if not metadata or META_KEY not in metadata:
        raise CheckpointError(
            f"{path!r} is a safetensors file but not an xplayers checkpoint "
            f"(its metadata has no {META_KEY!r} entry)"
        )
    try:
        meta = json.loads(metadata[META_KEY])
    except ValueError as exc:
        raise r.fail(f"its {META_KEY!r} metadata is not JSON ({exc})") from None
    r.check(meta, "dict", "the metadata")
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path!r} is not an xplayers checkpoint (format {meta.get('format')!r})"
        )
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {meta.get('version')!r}; "
            f"this xplayers reads version {VERSION}"
        )
    m = r.get(meta, "model", "dict", "metadata")
    model = {
        "class": r.get(m, "class", "str", "model"),
        "init_args": r.get(m, "init_args", "dict?", "model"),
        "reg": r.get(m, "reg", "number", "model"),
        "params": r.arrays("params", m.get("params"), "model['params']"),
        "norm_params": r.norm_arrays("norm", m.get("norm_params"), "model['norm_params']"),
    }
    s = r.get(meta, "solver", "dict?", "metadata")
    out = {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "solver": None if s is None else _unpack_solver(r, s),
        "info": r.get(meta, "info", "dict", "metadata"),
    }
    extra = sorted(set(tensors) - r.used)
    if extra:
        raise r.fail(f"tensors {extra} are not listed in its metadata")
    return out


def _unpack_solver(r: _Reader, s: dict) -> dict[str, Any]:
    where = "solver"
    settings = r.get(s, "settings", "dict", where)
    for key, kind in (
        ("optim_config", "dict"),
        ("lr_decay", "number"),
        ("batch_size", "count"),
        ("num_epochs", "count"),
        ("num_train_samples", "count?"),
        ("num_val_samples", "count?"),
        ("print_every", "count"),
        ("seed", "count?"),
    ):
        r.get(settings, key, kind, "solver['settings']")
    configs = {}
    for p, c in r.get(s, "optim_configs", "dict", where).items():
        at = f"solver['optim_configs'][{p!r}]"
        r.check(c, "dict", at)
        configs[p] = {
            **r.get(c, "values", "dict", at),
            **r.arrays(f"optim/{p}", c.get("arrays"), f"{at}['arrays']"),
        }
    rng = r.get(s, "rng", "dict", where)
    states = {k: r.get(rng, k, "dict", "solver['rng']") for k in ("batch", "eval")}
    best_norm = r.get(s, "best_norm_params", "list?", where)
    return {
        "settings": settings,
        "update_rule": r.get(s, "update_rule", "str?", where),
        "update_rule_repr": r.get(s, "update_rule_repr", "str", where),
        "epoch": r.get(s, "epoch", "count", where),
        "iteration": r.get(s, "iteration", "count", where),
        "num_train": r.get(s, "num_train", "count", where),
        "rng": {k: _rng_state(r, v, k) for k, v in states.items()},
        **{k: r.items(s, k, "number", where) for k in _HISTORIES},
        "acc_iterations": r.items(s, "acc_iterations", "count", where),
        "best_val_acc": r.get(s, "best_val_acc", "number", where),
        "optim_configs": configs,
        "best_params": r.arrays("best", s.get("best_params"), "solver['best_params']"),
        "best_norm_params": None
        if best_norm is None
        else r.norm_arrays("best_norm", best_norm, "solver['best_norm_params']"),
    }


def _rng_state(r: _Reader, state: dict, name: str) -> dict[str, Any]:
    """A PCG64 state (NumPy's default generator) made of plain integers."""
    where = f"solver['rng'][{name!r}]"
    if state.get("bit_generator") != "PCG64":
        raise r.fail(f"{where} is not a PCG64 generator state: {state.get('bit_generator')!r}")
    inner = r.get(state, "state", "dict", where)
    for key in ("state", "inc"):
        r.get(inner, key, "count", f"{where}['state']")
    for key in ("has_uint32", "uinteger"):
        r.get(state, key, "count", where)
    return state
