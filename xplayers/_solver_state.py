"""A Solver's training state as one structure of plain values and arrays, and its checks.

``Solver.state_dict()`` returns a dict with exactly the keys ``STATE_KEYS``:

- ``epoch``, ``iteration``: ints >= 0, the epochs and iterations trained so far;
- ``num_train``: int >= 1, the rows of X_train the minibatches were drawn from;
- ``rng``: ``{"batch": ..., "eval": ...}``, the ``bit_generator.state`` of the
  minibatch and accuracy-subset generators (NumPy PCG64 dicts of ints);
- ``loss_history``, ``train_acc_history``, ``val_acc_history``: lists of floats;
  ``acc_iterations``: ints, one per accuracy check like the accuracy histories;
- ``best_val_acc``: float;
- ``optim_configs``: ``{param: {name: value}}``, each parameter's optimizer
  config: numbers (learning rate, Adam's ``t``, ...) and state arrays
  (velocity, cache, m, v) of the parameter's shape and dtype;
- ``best_params``: ``{param: array}`` of the best check ({} before the first);
- ``best_norm_params``: None before the first check (or for a model without
  normalisation layers' statistics), else one dict of running-statistic
  arrays per normalisation layer, those of the best check.

Arrays are copies on the model's backend and device: the state does not change
as training goes on, and training never writes into a state it was given.
The model's own parameters and statistics are the model's state
(``model.state_dict()``); a checkpoint holds both.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import backends
from ._checks import short
from .optim import STATE_ARRAYS

STATE_KEYS = (
    "epoch",
    "iteration",
    "num_train",
    "rng",
    "loss_history",
    "train_acc_history",
    "val_acc_history",
    "acc_iterations",
    "best_val_acc",
    "optim_configs",
    "best_params",
    "best_norm_params",
)
#: The keys that are the Solver's public attributes of the same name, kept as they are.
AS_KEPT = tuple(k for k in STATE_KEYS if k not in ("num_train", "rng", "best_norm_params"))
#: The generators' streams, by their key under ``rng``.
STREAMS = ("batch", "eval")


def streams(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """The minibatch and the accuracy-subset generators of ``seed``: two streams, so an
    extra ``check_accuracy`` call never shifts the batches."""
    batch, accuracy = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(batch), np.random.default_rng(accuracy)


def device_copies(tree: Any) -> Any:
    """``tree`` (a dict or list of arrays and other values) with every array copied where
    it lives (no host round trip); the other values are kept as they are."""
    if isinstance(tree, dict):
        return {k: device_copies(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [device_copies(v) for v in tree]
    if backends.is_array(tree):
        return backends.get_namespace(array=tree).asarray(tree, copy=True)
    return tree


def norm_arrays(model: Any) -> list[dict[str, Any]] | None:
    """The arrays (running statistics) of the model's normalisation dicts, not copied;
    None for a model without ``norm_params``."""
    norm = getattr(model, "norm_params", None)
    if norm is None:
        return None
    return [{k: v for k, v in p.items() if backends.is_array(v)} for p in norm]


def restore(model: Any, params: dict[str, Any], norm: list[dict] | None) -> None:
    """Copies of ``params`` (and of the statistics ``norm``) into the model."""
    # Copies: the caller may write into the model's arrays (gradient checks do).
    model.params = device_copies(params)
    live = getattr(model, "norm_params", None)
    if live is not None and norm is not None:
        for dst, src in zip(live, norm, strict=True):
            dst.update(device_copies(src))


# ------------------------------------------------------------------ checking
# ``where`` is the path of the value in its structure, e.g. "state['epoch']".
def _fail(kind: type[Exception], where: str, what: str, value: Any) -> Exception:
    return kind(f"{where} must be {what}, got {short(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _count(value: Any, where: str, low: int = 0) -> int:
    if not _is_int(value) or value < low:
        raise _fail(ValueError if _is_int(value) else TypeError, where, f"an int >= {low}", value)
    return int(value)


def _number(value: Any, where: str) -> float:
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise _fail(TypeError, where, "a number", value)
    return float(value)


def _items(value: Any, where: str, check: Callable[[Any, str], Any]) -> list:
    if not isinstance(value, (list, tuple)):
        raise _fail(TypeError, where, "a list", value)
    return [check(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(TypeError, where, "a dict", value)
    return value


def _same_keys(found: dict, expected: Any, where: str) -> None:
    """KeyError naming the keys ``found`` lacks or has beyond ``expected``."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    problems = [f"lacks {missing}"] * bool(missing) + [f"has unknown keys {extra}"] * bool(extra)
    if problems:
        raise KeyError(f"{where} {' and '.join(problems)} (its keys are {list(expected)})")


def _bounded(obj: dict, key: str, bits: int, where: str) -> int:
    value = obj[key]
    if not _is_int(value) or not 0 <= value < 2**bits:
        kind = ValueError if _is_int(value) else TypeError
        raise _fail(kind, f"{where}[{key!r}]", f"an integer in [0, 2**{bits})", value)
    return int(value)


def pcg64_state(value: Any, where: str) -> dict[str, Any]:
    """A PCG64 ``bit_generator.state`` (NumPy's default generator) of integers within
    its bounds, as plain ints; TypeError, KeyError or ValueError naming ``where``."""
    _dict(value, where)
    if value.get("bit_generator") != "PCG64":
        raise _fail(ValueError, where, "a PCG64 generator state", value.get("bit_generator"))
    _same_keys(value, ("bit_generator", "state", "has_uint32", "uinteger"), where)
    inner = _dict(value["state"], f"{where}['state']")
    _same_keys(inner, ("state", "inc"), f"{where}['state']")
    return {
        "bit_generator": "PCG64",
        "state": {k: _bounded(inner, k, 128, f"{where}['state']") for k in ("state", "inc")},
        "has_uint32": _bounded(value, "has_uint32", 1, where),
        "uinteger": _bounded(value, "uinteger", 32, where),
    }


class _Placed:
    """Arrays checked against the model's params and moved, as copies, to their place."""

    def __init__(self, params: dict[str, Any]) -> None:
        first = next(iter(params.values()))
        self.backend, self.device = backends.backend_of(first), backends.device_of(first)
        self.params = params

    def array(self, value: Any, where: str, like: Any = None) -> Any:
        """``value`` (an array of any backend) as a copy on the model's backend and
        device; of ``like``'s shape and dtype when given."""
        if not backends.is_array(value):
            raise _fail(TypeError, where, "an array", value)
        if like is not None:
            want = (backends.numpy_dtype(like.dtype), tuple(like.shape))
            got = (backends.numpy_dtype(value.dtype), tuple(value.shape))
            if got != want:
                raise ValueError(
                    f"{where} must be {want[0]} of shape {want[1]} like the model's, "
                    f"got {got[0]} of shape {got[1]}"
                )
        moved = backends.asarray(value, self.backend, device=self.device)
        return device_copies(moved) if moved is value else moved

    def like_params(self, value: dict, where: str) -> dict[str, Any]:
        """One array per param, each like its param."""
        _same_keys(value, self.params, where)
        return {k: self.array(v, f"{where}[{k!r}]", self.params[k]) for k, v in value.items()}

    def config(self, value: Any, where: str, param: str, rule: Any) -> dict:
        """An optimizer config: state arrays like their param (for a built-in ``rule``,
        only its own), the other values kept (copied)."""
        out = {}
        for k, v in _dict(value, where).items():
            at = f"{where}[{k!r}]"
            if not backends.is_array(v):
                out[k] = copy.deepcopy(v)
                continue
            if isinstance(rule, str) and k not in STATE_ARRAYS.get(rule, (k,)):
                raise KeyError(f"{at}: update rule {rule!r} keeps the arrays {STATE_ARRAYS[rule]}")
            out[k] = self.array(v, at, self.params[param])
        return out

    def norm(self, value: Any, where: str, live: list[dict] | None) -> list[dict] | None:
        """None, or one dict of arrays per normalisation layer of the model, each of the
        shape and dtype of the statistic it replaces (where the model has it yet)."""
        if value is None:
            return None
        layers = _items(value, where, _dict)
        if len(layers) != len(live or []):
            raise ValueError(
                f"{where} has {len(layers)} layers, the model {len(live or [])} (its "
                "normalisation layers)"
            )
        return [
            {
                k: self.array(v, f"{where}[{i}][{k!r}]", _array_or_none(now.get(k)))
                for k, v in layer.items()
            }
            for i, (layer, now) in enumerate(zip(layers, live, strict=True))
        ]


def _array_or_none(value: Any) -> Any:
    return value if backends.is_array(value) else None


def checked(state: Any, model: Any, rule: Any, num_train: int) -> dict[str, Any]:
    """``state`` (see the module docstring) checked against ``model`` and the solver's
    update ``rule`` (a name, or a callable), its arrays copied to the model's backend and
    device.

    TypeError (a wrong type), KeyError (missing or unknown keys) or ValueError (out of
    bounds, a wrong shape or dtype) naming the key; a ``num_train`` other than the
    solver's is a warning (the run will not repeat the one the state comes from).
    Nothing is changed: a bad state leaves the solver as it was.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict from Solver.state_dict(), got {short(state)}")
    _same_keys(state, STATE_KEYS, "state")
    placed = _Placed(model.params)
    rng = _dict(state["rng"], "state['rng']")
    _same_keys(rng, STREAMS, "state['rng']")
    configs = _dict(state["optim_configs"], "state['optim_configs']")
    _same_keys(configs, model.params, "state['optim_configs']")
    best = _dict(state["best_params"], "state['best_params']")
    histories = ("loss_history", "train_acc_history", "val_acc_history")
    out = {
        "epoch": _count(state["epoch"], "state['epoch']"),
        "iteration": _count(state["iteration"], "state['iteration']"),
        "num_train": _count(state["num_train"], "state['num_train']", 1),
        "rng": {k: pcg64_state(rng[k], f"state['rng'][{k!r}]") for k in STREAMS},
        **{k: _items(state[k], f"state[{k!r}]", _number) for k in histories},
        "acc_iterations": _items(state["acc_iterations"], "state['acc_iterations']", _count),
        "best_val_acc": _number(state["best_val_acc"], "state['best_val_acc']"),
        "optim_configs": {
            p: placed.config(c, f"state['optim_configs'][{p!r}]", p, rule)
            for p, c in configs.items()
        },
        "best_params": placed.like_params(best, "state['best_params']") if best else {},
        "best_norm_params": placed.norm(
            state["best_norm_params"],
            "state['best_norm_params']",
            getattr(model, "norm_params", None),
        ),
    }
    lengths = {k: len(out[k]) for k in ("train_acc_history", "val_acc_history", "acc_iterations")}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the state's accuracy histories differ in length: {lengths}")
    if not math.isfinite(out["best_val_acc"]):
        raise _fail(ValueError, "state['best_val_acc']", "finite", out["best_val_acc"])
    if out["num_train"] != num_train:
        warnings.warn(
            f"the state was trained on {out['num_train']} rows of X_train, this Solver's "
            f"X_train has {num_train}: the run will not repeat the original one",
            stacklevel=3,
        )
    return out
