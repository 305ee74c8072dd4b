"""The Solver's training step compiled as one function with ``jax.jit`` (on JAX).

The step is a pure function of the Solver's explicit state (the arrays
``Solver.state_dict()`` and ``model.state_dict()`` hold):

    (params, norm statistics, optimizer configs, X, y, step)
        -> (loss, next params, next norm statistics, next optimizer configs)

It is traced through the model object itself: the traced arrays are put into
the model (``params``, the normalisation dicts, the step ``begin_step``
announces) for the call, and the model's own values are put back afterwards,
also when tracing fails. ``jax.jit`` compiles it once per input structure,
shape and dtype; each built-in rule's config starts complete
(``optim.initial_config``) and missing running statistics start as the zeros
batch norm would make (``Model.fill_norm_stats``), so the structure is the
same at every step.

A config's numbers (learning rate, ``t``, betas) go in as 0-d device arrays
(weakly typed: they take the parameters' dtype) and come back as such, so the
learning-rate decay between epochs changes a value, not the compiled function,
and a step needs nothing from the host but its batch. ``host_numbers`` turns
them back into Python numbers (an int stays an int) where the Solver reads its
state back. Other config values (a callable rule's strings) are constants of
the compiled function: other values, another function.

Randomness: dropout streams fold the traced step into ``jax.random`` keys
(``Model.stream_entropy``); a model without a seed gets ``free_seed`` for the
call (from the Solver's seed; fresh entropy without one), else its masks would
be drawn once, when the step is traced, and repeat at every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import backends
from ._solver_state import norm_arrays
from .optim import DEFAULTS, STATE_ARRAYS, initial_config

__all__ = ["CompiledStep", "compiles"]


def compiles(x: Any) -> bool:
    """True when the library of arrays like ``x`` compiles whole functions
    (``backends.compiler``: JAX); the other backends run the Solver's step eagerly."""
    return backends.compiler(x) is not None


def _is_number(value: Any) -> bool:
    # Concrete types: an ABC check (numbers.Real) on every array costs microseconds.
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class CompiledStep:
    """``model``'s training step with ``update_rule`` (``rule_name``: a built-in rule's
    name, or None for a callable), compiled with ``jax.jit``.

    ``loss_options`` are the keywords the model's loss gets besides X and y;
    ``seed`` (the Solver's) seeds the streams of a model without its own seed.
    ``traces`` counts the traces (one per input structure, shape and dtype).
    """

    def __init__(
        self,
        model: Any,
        update_rule: Callable,
        rule_name: str | None,
        loss_options: dict[str, Any],
        seed: int | None,
    ) -> None:
        self.model = model
        self.update_rule = update_rule
        self.rule_name = rule_name
        self.loss_options = loss_options
        self.free_seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        self.traces = 0
        #: config key -> the Python type its number had, per parameter.
        self._number_types: dict[str, dict[str, type]] = {}
        self._statics: dict[str, dict[str, Any]] = {}
        #: One jitted function per set of constant config values (by their repr).
        self._jitted: dict[str, Callable] = {}

    # ------------------------------------------------------------------ state
    def device_configs(self, configs: dict[str, dict]) -> dict[str, dict]:
        """``configs`` with each number a 0-d device array beside its parameter (weakly
        typed) and, for a built-in rule, every default and state array filled in."""
        keys = (*DEFAULTS[self.rule_name], *STATE_ARRAYS[self.rule_name]) if self.rule_name else ()
        out = {}
        for p, config in configs.items():
            w = self.model.params[p]
            if any(k not in config for k in keys):
                config = initial_config(self.rule_name, w, config)
            if not any(_is_number(v) for v in config.values()):
                out[p] = config  # as the last step left it: on the device already
                continue
            types = self._number_types.setdefault(p, {})
            placed = {}
            for key, value in config.items():
                if _is_number(value):
                    types[key] = int if isinstance(value, (int, np.integer)) else float
                    value = backends.device_scalar(value, w)
                placed[key] = value
            out[p] = placed
        return out

    def host_numbers(self, configs: dict[str, dict]) -> dict[str, dict]:
        """``configs`` with the numbers ``device_configs`` put on the device read back as
        Python numbers of their first type (one read-back each; arrays kept)."""
        out = {}
        for p, config in configs.items():
            types = self._number_types.get(p, {})
            out[p] = {
                k: types[k](v) if k in types and backends.is_array(v) else v
                for k, v in config.items()
            }
        return out

    # ------------------------------------------------------------------- step
    def __call__(
        self, configs: dict[str, dict], X: Any, y: Any, step: int
    ) -> tuple[Any, dict[str, dict]]:
        """One step: the model's params and statistics replaced by the next ones;
        returns (loss, next configs), the loss a 0-d device array. TypeError (saying
        to pass ``jit=False``) where the step reads a traced value back to Python."""
        model = self.model
        fill = getattr(model, "fill_norm_stats", None)
        if fill is not None and self.traces == 0:
            fill()
        placed = self.device_configs(configs)
        traced, statics = {}, {}
        for p, config in placed.items():
            traced[p] = {k: v for k, v in config.items() if backends.is_array(v)}
            statics[p] = {k: v for k, v in config.items() if k not in traced[p]}
        self._statics = statics
        jitted = self._jitted.get(repr(statics))
        if jitted is None:
            compile_fn = backends.compiler(X)
            jitted = self._jitted[repr(statics)] = compile_fn(self._pure)
        norm = norm_arrays(model)
        try:
            loss, params, norm, traced = jitted(model.params, norm, traced, X, y, step)
        except backends.tracing_errors(X) as exc:
            raise TypeError(
                "the training step cannot be compiled: the model's loss or the update rule "
                "reads a traced value back to Python (float(), bool(), an if on an array); "
                "pass Solver(..., jit=False) to run it eagerly. JAX says: "
                + str(exc).split("\n")[0]
            ) from exc
        model.params = _ordered(params, model.params)
        for live, stats in zip(getattr(model, "norm_params", None) or [], norm or [], strict=True):
            live.update(stats)
        # In the caller's key order (jax returns dicts sorted), new keys last.
        return loss, {p: _ordered({**traced[p], **statics[p]}, placed[p]) for p in placed}

    def _pure(
        self,
        params: dict[str, Any],
        norm: list[dict] | None,
        configs: dict[str, dict],
        X: Any,
        y: Any,
        step: Any,
    ) -> tuple[Any, dict, list | None, dict]:
        """The step as a function of arrays only (traced by ``jax.jit``)."""
        self.traces += 1
        model = self.model
        saved = _Swap(model)
        try:
            model.params = dict(params)
            for live, stats in zip(model.norm_params if norm else [], norm or [], strict=True):
                live.update(stats)
            if "seed" not in getattr(model, "dropout_param", {"seed": None}):
                model.dropout_param = {**model.dropout_param, "seed": self.free_seed}
            begin_step = getattr(model, "begin_step", None)
            if begin_step is not None:
                begin_step(step)
            loss, grads = model.loss(X, y, **self.loss_options)
            next_params, next_configs = {}, {}
            for p, w in params.items():
                config = {**configs[p], **self._statics[p]}
                next_params[p], next_config = self.update_rule(w, grads[p], config)
                statics = self._statics[p]
                next_configs[p] = {k: v for k, v in next_config.items() if k not in statics}
            return loss, next_params, norm_arrays(model), next_configs
        finally:
            saved.restore()


def _ordered(config: dict, like: dict) -> dict:
    return {**{k: config[k] for k in like if k in config}, **config}


class _Swap:
    """What tracing puts into a model, saved to be put back: its params, its
    normalisation dicts' contents, its dropout settings and its step."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.params = model.params
        self.norm = [dict(p) for p in getattr(model, "norm_params", None) or []]
        self.dropout = getattr(model, "dropout_param", None)
        self.step = getattr(model, "train_step", None)

    def restore(self) -> None:
        model = self.model
        model.params = self.params
        for live, saved in zip(getattr(model, "norm_params", None) or [], self.norm, strict=True):
            live.clear()
            live.update(saved)
        if self.dropout is not None:
            model.dropout_param = self.dropout
        if self.step is not None:
            model.train_step = self.step
