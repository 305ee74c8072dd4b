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
from ._checkpoint_layout import CheckpointError, CheckpointMismatch, model_class_name


def save_solver(solver: Any) -> None:
    """Write ``{checkpoint_name}_epoch_{epoch}.safetensors`` if the solver has a name.

    Without ``keep_checkpoints`` the file of the previous check is removed
    once the new one is in place, so only the latest stays.
    """
    if solver.checkpoint_name is None:
        return
    path = checkpoint.epoch_path(solver.checkpoint_name, solver.epoch)
    checkpoint.save(path, solver.model, solver, info=solver.checkpoint_info)
    previous, solver.last_checkpoint = solver.last_checkpoint, path
    if not solver.keep_checkpoints and previous is not None and previous != path:
        previous.unlink(missing_ok=True)


def check_fits(name: str, state: dict, model: Any, dtypes: bool = True) -> None:
    """CheckpointError naming every difference between the file's model and ``model``:
    its class, parameter names, shapes and (with ``dtypes``) dtypes."""
    saved = state["model"]
    problems = []
    cls = model_class_name(type(model))
    if saved["class"] != cls:
        problems.append(f"the file holds a {saved['class']}, the model is a {cls}")
    params = model.params
    missing = sorted(set(saved["params"]) - set(params))
    extra = sorted(set(params) - set(saved["params"]))
    if missing:
        problems.append(f"params {missing} are in the file but not in the model")
    if extra:
        problems.append(f"params {extra} are in the model but not in the file")
    for k, v in saved["params"].items():
        if k not in params:
            continue
        ours = tuple(params[k].shape)
        if tuple(v.shape) != ours:
            problems.append(f"{k} has shape {tuple(v.shape)} in the file, {ours} in the model")
        ours_dtype = backends.numpy_dtype(params[k].dtype)
        if dtypes and v.dtype != ours_dtype:
            problems.append(f"{k} is {v.dtype} in the file, {ours_dtype} in the model")
    ours_norm = len(getattr(model, "norm_params", []))
    if len(saved["norm_params"]) != ours_norm:
        problems.append(
            f"the file has {len(saved['norm_params'])} normalisation layers, the model {ours_norm}"
        )
    if problems:
        raise CheckpointMismatch(
            f"checkpoint {name!r} does not fit the model: {'; '.join(problems)}"
        )


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
    name = str(path)
    state = checkpoint.load(path)
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
            stacklevel=3,
        )
    try:
        solver._batch_rng.bit_generator.state = s["rng"]["batch"]
        solver._eval_rng.bit_generator.state = s["rng"]["eval"]
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {name!r} has an invalid generator state: {exc}"
        ) from None
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
    solver.last_checkpoint = Path(path)


def resume(cls: type, path: str | os.PathLike, model: Any, data: dict, kwargs: dict) -> Any:
    """``Solver.resume``: a solver of class ``cls`` continuing the run saved at ``path``."""
    name = str(path)
    state = checkpoint.load(path)
    s = _solver_state(name, state)
    check_fits(name, state, model)
    settings = {**s["settings"], "update_rule": s["update_rule"], "checkpoint_info": state["info"]}
    if s["update_rule"] is None and "update_rule" not in kwargs:
        raise ValueError(
            f"checkpoint {name!r} was trained with the callable update rule "
            f"{s['update_rule_repr']!r}: pass it again as update_rule=..."
        )
    settings.update(kwargs)
    if settings["num_epochs"] < s["epoch"]:
        raise ValueError(
            f"num_epochs={settings['num_epochs']} is fewer than the {s['epoch']} epochs "
            f"checkpoint {name!r} has already trained"
        )
    solver = cls(model, data, **settings)
    load_into(solver, path)
    return solver
