"""Reading a checkpoint's metadata back: every field checked for its type and bounds.

A file is data from anywhere, so nothing in it is trusted: the JSON is parsed
with a bound on its objects and lists, each field must have its type and lie
within its bounds (every integer fits 64 bits, save the generators' 128-bit
states; every number that is computed with is finite), the solver's settings
are the documented keys and no others, and an optimizer's config holds
numbers and, for a built-in rule, only that rule's state arrays.
``_checkpoint_fit`` then checks that the tensors agree with each other and
with the model's constructor arguments.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ._checkpoint_layout import (
    FORMAT,
    HISTORIES,
    META_KEY,
    RESUMABLE,
    VERSION,
    CheckpointError,
)
from ._checks import short
from ._solver_state import pcg64_state
from .optim import CONFIG_RANGES, STATE_ARRAYS

#: Every integer in a checkpoint fits an int64, but the generators' states.
INT_LIMIT = 2**63 - 1
#: JSON objects and lists in the metadata: a legitimate file has a few per
#: parameter; the bound keeps the parsed JSON within ~10x the size of its text.
MAX_CONTAINERS = 2**16

_STATE_NAMES = {name for names in STATE_ARRAYS.values() for name in names}


def clip(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (a message may quote a file's values)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(v: Any, low: int = -INT_LIMIT, high: int = INT_LIMIT) -> bool:
    return type(v) is int and low <= v <= high


def _is_real(v: Any) -> bool:
    return type(v) is float or _is_int(v)


_KINDS = {
    # kind: (test, text)
    "count": (lambda v: _is_int(v, 0), "an integer in [0, 2**63)"),
    "positive": (lambda v: _is_int(v, 1), "an integer in [1, 2**63)"),
    "number": (lambda v: _is_real(v) and math.isfinite(v), "a finite number"),
    "real": (_is_real, "a number (ints within 2**63)"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "dict": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, list), "a list"),
}


class Reader:
    """Checks one file's JSON and tensors; every complaint names the file and the field."""

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
        """``value`` if it is of ``kind`` (a key of _KINDS; ``kind?`` also takes None)."""
        if kind.endswith("?"):
            if value is None:
                return None
            kind = kind[:-1]
        test, text = _KINDS[kind]
        if not test(value):
            raise self.fail(f"{where} must be {text}, got {short(value)}")
        return value

    def items(self, obj: dict, key: str, kind: str, where: str) -> list:
        values = self.get(obj, key, "list", where)
        test = _KINDS[kind][0]
        if not all(map(test, values)):  # one pass; find the culprit only on failure
            i = next(i for i, v in enumerate(values) if not test(v))
            self.check(values[i], kind, f"{where}[{key!r}][{i}]")
        return values

    def keys(self, obj: dict, allowed: Any, where: str) -> None:
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            raise self.fail(
                f"{where} has unknown entries {short(unknown)} (known: {sorted(allowed)})"
            )

    def arrays(self, prefix: str, names: Any, where: str) -> dict[str, np.ndarray]:
        names = self.check(names, "list", where)
        out = {}
        for i, name in enumerate(names):
            self.check(name, "str", f"{where}[{i}]")
            key = f"{prefix}/{name}"
            if key not in self.tensors:
                raise self.fail(
                    f"{where} names {short(name)} but the file has no tensor {short(key)}"
                )
            self.used.add(key)
            out[name] = self.tensors[key]
        return out

    def norm_arrays(self, prefix: str, groups: Any, where: str) -> list[dict[str, np.ndarray]]:
        groups = self.check(groups, "list", where)
        return [self.arrays(f"{prefix}/{i}", g, f"{where}[{i}]") for i, g in enumerate(groups)]


def parse(r: Reader, metadata: dict[str, str] | None) -> dict:
    """The file's metadata JSON, parsed within bounds."""
    if not metadata or META_KEY not in metadata:
        raise CheckpointError(
            f"{r.path!r} is a safetensors file but not an xplayers checkpoint "
            f"(its metadata has no {META_KEY!r} entry)"
        )
    text = metadata[META_KEY]
    containers = text.count("[") + text.count("{")
    if containers > MAX_CONTAINERS:
        raise r.fail(
            f"its metadata holds {containers} JSON lists and objects (at most {MAX_CONTAINERS})"
        )
    try:
        meta = json.loads(text)
    except RecursionError:
        raise r.fail(f"its {META_KEY!r} metadata is nested too deeply") from None
    except ValueError as exc:
        raise r.fail(f"its {META_KEY!r} metadata is not JSON ({clip(str(exc))})") from None
    return r.check(meta, "dict", "the metadata")


def unpack(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> dict:
    """The content of a file, each field checked: see ``xplayers.checkpoint.load``."""
    r = Reader(path, tensors)
    meta = parse(r, metadata)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path!r} is not an xplayers checkpoint (format {short(meta.get('format'))})"
        )
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {short(meta.get('version'))}; "
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
        raise r.fail(f"tensors {short(extra)} are not listed in its metadata")
    return out


#: The settings a checkpoint records (``RESUMABLE``) and the kind of each.
_SETTINGS = {
    "optim_config": "dict",
    "lr_decay": "number",
    "batch_size": "positive",
    "num_epochs": "count",
    "num_train_samples": "count?",
    "num_val_samples": "count?",
    "print_every": "positive",
    "seed": "count?",
}
assert tuple(_SETTINGS) == RESUMABLE


def _unpack_solver(r: Reader, s: dict) -> dict[str, Any]:
    where = "solver"
    rule = r.get(s, "update_rule", "str?", where)
    if rule is not None and rule not in STATE_ARRAYS:
        raise r.fail(f"solver['update_rule'] {short(rule)} is none of {sorted(STATE_ARRAYS)}")
    settings = _settings(r, r.get(s, "settings", "dict", where))
    configs = {}
    for p, c in r.get(s, "optim_configs", "dict", where).items():
        at = f"solver['optim_configs'][{short(p)}]"
        r.check(c, "dict", at)
        r.keys(c, ("arrays", "values"), at)
        arrays = r.arrays(f"optim/{p}", c.get("arrays"), f"{at}['arrays']")
        if rule is not None:
            r.keys(arrays, STATE_ARRAYS[rule], f"{at}['arrays'] of {rule}")
        configs[p] = {**_optim_values(r, r.get(c, "values", "dict", at), at), **arrays}
    rng = r.get(s, "rng", "dict", where)
    r.keys(rng, ("batch", "eval"), "solver['rng']")
    best_norm = r.get(s, "best_norm_params", "list?", where)
    out = {
        "settings": settings,
        "update_rule": rule,
        "update_rule_repr": r.get(s, "update_rule_repr", "str", where),
        "epoch": r.get(s, "epoch", "count", where),
        "iteration": r.get(s, "iteration", "count", where),
        "num_train": r.get(s, "num_train", "positive", where),
        "rng": {
            k: _rng_state(r, r.get(rng, k, "dict", "solver['rng']"), k) for k in ("batch", "eval")
        },
        **{k: r.items(s, k, "real", where) for k in HISTORIES},
        "acc_iterations": r.items(s, "acc_iterations", "count", where),
        "best_val_acc": r.get(s, "best_val_acc", "number", where),
        "optim_configs": configs,
        "best_params": r.arrays("best", s.get("best_params"), "solver['best_params']"),
        "best_norm_params": None
        if best_norm is None
        else r.norm_arrays("best_norm", best_norm, "solver['best_norm_params']"),
    }
    if settings["num_epochs"] < out["epoch"]:
        raise r.fail(
            f"solver['settings']['num_epochs'] = {settings['num_epochs']} is fewer than the "
            f"{out['epoch']} epochs solver['epoch'] says were trained"
        )
    checks = {k: len(out[k]) for k in ("train_acc_history", "val_acc_history", "acc_iterations")}
    if len(set(checks.values())) > 1:
        raise r.fail(f"the accuracy histories differ in length: {checks}")
    return out


def _settings(r: Reader, settings: dict) -> dict[str, Any]:
    """The documented settings and no others: a file never chooses where to write, or
    whether to delete, only how to train."""
    where = "solver['settings']"
    r.keys(settings, _SETTINGS, where)
    out = {k: r.get(settings, k, kind, where) for k, kind in _SETTINGS.items()}
    if out["lr_decay"] <= 0:
        raise r.fail(f"{where}['lr_decay'] must be positive, got {out['lr_decay']!r}")
    out["optim_config"] = _optim_values(r, out["optim_config"], f"{where}['optim_config']")
    return out


def _optim_values(r: Reader, values: dict, where: str) -> dict[str, Any]:
    """The numbers of an optimizer config (``t``, Adam's step count, an integer), within
    the ranges the rules need; every rule computes with them, a callable one as well."""
    for k, v in values.items():
        at = f"{where}[{short(k)}]"
        if k in _STATE_NAMES:
            raise r.fail(f"{at} must be a state array, got {short(v)}")
        r.check(v, "count" if k == "t" else "number", at)
        low, high = CONFIG_RANGES.get(k, (-math.inf, math.inf))
        if not low <= v < high:
            raise r.fail(f"{at} must be in [{low}, {high}), got {v!r}")
    return values


def _rng_state(r: Reader, state: dict, name: str) -> dict[str, Any]:
    """A PCG64 state (NumPy's default generator) of integers within its own bounds."""
    try:
        return pcg64_state(state, f"solver['rng'][{name!r}]")
    except (TypeError, KeyError, ValueError) as exc:
        raise r.fail(clip(exc.args[0])) from None
