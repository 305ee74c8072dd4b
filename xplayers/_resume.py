"""Resuming a Solver from a checkpoint (``_checkpoint_writer`` writes them).

Resuming is exact: the checkpoint holds the model's state (parameters and
batch-norm statistics) and the solver's ``state_dict()`` (optimizer state,
counters, histories, both generators' states, the best parameters), so on the
same backend the rest of the run gives bit-identical losses and parameters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import backends, checkpoint
from ._checkpoint_fit import check_fits
from ._checkpoint_layout import CheckpointError
from ._checks import short
from ._solver_state import STATE_KEYS


def _solver_state(name: str, state: dict) -> dict:
    if state["solver"] is None:
        raise CheckpointError(
            f"checkpoint {name!r} holds a model but no solver state to resume "
            "(xplayers.load_model reads it)"
        )
    return state["solver"]


def load_into(solver: Any, path: str | os.PathLike) -> None:
    """Load the checkpoint at ``path`` into ``solver`` and its model, to continue with
    ``train()``; the model keeps its backend."""
    _apply(solver, str(path), checkpoint.load(path))


def _apply(solver: Any, name: str, state: dict) -> None:
    """Put a loaded checkpoint's state into ``solver`` and its model."""
    s = _solver_state(name, state)
    model = solver.model
    check_fits(name, state, model)
    # First the solver's state, checked against the model: a bad one leaves both as they were.
    solver.load_state_dict({k: s[k] for k in STATE_KEYS})
    m = state["model"]
    if hasattr(model, "load_state_dict"):
        model.load_state_dict({k: m[k] for k in ("params", "norm_params", "reg")})
    else:
        first = next(iter(model.params.values()))
        model.params = backends.to_backend(
            m["params"], backends.backend_of(first), device=backends.device_of(first)
        )
    solver.last_checkpoint = Path(name)


def resume(cls: type, path: str | os.PathLike, model: Any, data: dict, kwargs: dict) -> Any:
    """``Solver.resume``: a solver of class ``cls`` continuing the run saved at ``path``.

    The file is read once. Its settings are the documented ones only (checked by
    the reader); where to write checkpoints, and whether to keep them, come from
    ``kwargs``, never from the file.
    """
    name = str(path)
    state = checkpoint.load(path)
    s = _solver_state(name, state)
    check_fits(name, state, model)
    settings = {**s["settings"], "update_rule": s["update_rule"], "checkpoint_info": state["info"]}
    if s["update_rule"] is None and "update_rule" not in kwargs:
        raise ValueError(
            f"checkpoint {name!r} was trained with the callable update rule "
            f"{short(s['update_rule_repr'])}: pass it again as update_rule=..."
        )
    settings.update(kwargs)
    if settings["num_epochs"] < s["epoch"]:
        raise ValueError(
            f"num_epochs={settings['num_epochs']} is fewer than the {s['epoch']} epochs "
            f"checkpoint {name!r} has already trained"
        )
    solver = cls(model, data, **settings)
    if "batch_size" not in kwargs and solver.batch_size > solver.num_train:
        # Each step draws batch_size row indices: a file must not choose the allocation.
        raise CheckpointError(
            f"checkpoint {name!r}: solver['settings']['batch_size'] = {solver.batch_size} is "
            f"larger than the {solver.num_train} rows of X_train (Solver.resume(..., "
            "batch_size=...) overrides it)"
        )
    _apply(solver, name, state)
    return solver
