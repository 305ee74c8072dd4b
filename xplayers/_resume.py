"""A Solver's checkpoints: writing them during training, and resuming from one.

Resuming is exact: the checkpoint holds the parameters, the optimizer state,
the batch-norm statistics, the counters, the histories and both generators'
states, so on the same backend the rest of the run gives bit-identical losses
and parameters.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from . import backends, checkpoint
from ._checkpoint_fit import check_fits
from ._checkpoint_layout import CheckpointError
from ._checkpoint_reader import short


def save_solver(solver: Any) -> None:
    """Write ``{checkpoint_name}_epoch_{epoch}.safetensors`` if the solver has a name.

    Without ``keep_checkpoints`` the file of the previous check is removed
    once the new one is in place, so only the latest stays; a file of another
    name (one a run under another name was resumed from) is never removed.
    """
    if solver.checkpoint_name is None:
        return
    path = checkpoint.epoch_path(solver.checkpoint_name, solver.epoch)
    checkpoint.save(path, solver.model, solver, info=solver.checkpoint_info)
    previous, solver.last_checkpoint = solver.last_checkpoint, path
    name = checkpoint.checkpoint_name_of
    if (
        not solver.keep_checkpoints
        and previous is not None
        and previous != path
        and name(previous) == name(path)
    ):
        previous.unlink(missing_ok=True)


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
    backend, device = solver._backend(), solver._device()
    m = state["model"]
    if hasattr(model, "load_state_dict"):
        model.load_state_dict({k: m[k] for k in ("params", "norm_params", "reg")})
    else:
        model.params = backends.to_backend(m["params"], backend, device=device)
    if s["num_train"] != solver._train.n:
        warnings.warn(
            f"checkpoint {name!r} was trained on {s['num_train']} rows, X_train has "
            f"{solver._train.n}: the run will not repeat the original one",
            stacklevel=4,
        )
    # The file's generator states are checked integers within PCG64's bounds.
    solver._batch_rng.bit_generator.state = s["rng"]["batch"]
    solver._eval_rng.bit_generator.state = s["rng"]["eval"]
    solver.optim_configs = backends.to_backend(s["optim_configs"], backend, device=device)
    solver.epoch, solver.iteration = s["epoch"], s["iteration"]
    solver._pending = []
    solver.loss_history = [float(v) for v in s["loss_history"]]
    solver.train_acc_history = [float(v) for v in s["train_acc_history"]]
    solver.val_acc_history = [float(v) for v in s["val_acc_history"]]
    solver.acc_iterations = list(s["acc_iterations"])
    solver.best_val_acc = float(s["best_val_acc"])
    solver.best_params = backends.to_backend(s["best_params"], backend, device=device)
    solver._best_norm_params = backends.to_backend(s["best_norm_params"], backend, device=device)
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
    if "batch_size" not in kwargs and solver.batch_size > solver._train.n:
        # Each step draws batch_size row indices: a file must not choose the allocation.
        raise CheckpointError(
            f"checkpoint {name!r}: solver['settings']['batch_size'] = {solver.batch_size} is "
            f"larger than the {solver._train.n} rows of X_train (Solver.resume(..., "
            "batch_size=...) overrides it)"
        )
    _apply(solver, name, state)
    return solver
