"""The checkpoint format of the Solver: what a file holds and how it is written.

``checkpoint_name`` is the path of ONE file, rewritten after every accuracy
check (the first iteration and each epoch end) by writing a temporary file in
the same folder and ``os.replace``-ing it, so a crash never leaves a torn
file. It holds the model's ``state_dict()``, the per-parameter optimizer
configs (host numpy arrays), the solver's settings, epoch and iteration
counters, both generators' states, the histories and the best parameters.
``keep_checkpoints=True`` also keeps a copy per epoch as
``<stem>_epoch_<e><suffix>`` (CS231n's naming). Resuming continues a run
exactly: on the same backend and seed the rest of the run gives
bit-identical losses and params.

Checkpoints are pickles: load only files you wrote yourself.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

from . import backends

__all__ = ["load_into", "read_checkpoint", "save_solver", "solver_state"]

CHECKPOINT_FORMAT = "xplayers-solver-checkpoint"
CHECKPOINT_VERSION = 1
#: Settings a checkpoint records and Solver.resume reuses unless overridden.
RESUMABLE = (
    "update_rule",
    "optim_config",
    "lr_decay",
    "batch_size",
    "num_epochs",
    "num_train_samples",
    "num_val_samples",
    "print_every",
)


def solver_state(solver: Any) -> dict[str, Any]:
    """Everything a checkpoint holds, as host numpy arrays and Python values."""
    model = solver.model
    if hasattr(model, "state_dict"):
        model_state = model.state_dict()
    else:
        model_state = {"params": backends.to_backend(model.params, "numpy")}
    best_norm = solver._best_norm_params
    rule = solver.update_rule_name
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_class": type(model).__name__,
        "model": model_state,
        "settings": {
            **{k: getattr(solver, k) for k in RESUMABLE if k != "update_rule"},
            "update_rule": rule if isinstance(rule, str) else None,
            "update_rule_repr": getattr(rule, "__qualname__", repr(rule)),
            "seed": solver.seed,
        },
        "optim_configs": backends.to_backend(solver.optim_configs, "numpy"),
        "epoch": solver.epoch,
        "iteration": solver.iteration,
        "num_train": solver._train.n,
        "rng": {
            "batch": solver._batch_rng.bit_generator.state,
            "eval": solver._eval_rng.bit_generator.state,
        },
        "loss_history": list(solver.loss_history),
        "train_acc_history": list(solver.train_acc_history),
        "val_acc_history": list(solver.val_acc_history),
        "acc_iterations": list(solver.acc_iterations),
        "best_val_acc": solver.best_val_acc,
        "best_params": backends.to_backend(solver.best_params, "numpy"),
        "best_norm_params": None
        if best_norm is None
        else [
            {k: v for k, v in backends.to_backend(p, "numpy").items() if backends.is_array(v)}
            for p in best_norm
        ],
    }


def save_solver(solver: Any) -> None:
    """Write the solver's checkpoint (and the per-epoch copy) if it has a checkpoint_name."""
    if solver.checkpoint_name is None:
        return
    path = Path(solver.checkpoint_name)
    state = solver_state(solver)
    _atomic_pickle(state, path)
    if solver.keep_checkpoints:
        kept = path.with_name(f"{path.stem}_epoch_{solver.epoch}{path.suffix}")
        _atomic_pickle(state, kept)


def load_into(solver: Any, path: str | os.PathLike) -> None:
    """Load a checkpoint into this solver and its model, to continue with ``train()``.

    The model must have the same architecture (parameter names and shapes)
    as the one saved; it keeps its current backend.
    """
    state = read_checkpoint(path)
    model = solver.model
    backend = solver._backend()
    if hasattr(model, "load_state_dict"):
        model.load_state_dict(state["model"])
    else:
        model.params = backends.to_backend(state["model"]["params"], backend)
    if state["num_train"] != solver._train.n:
        warnings.warn(
            f"checkpoint {str(path)!r} was trained on {state['num_train']} rows, X_train "
            f"has {solver._train.n}: the run will not repeat the original one",
            stacklevel=2,
        )
    solver.optim_configs = backends.to_backend(state["optim_configs"], backend)
    solver.epoch = state["epoch"]
    solver.iteration = state["iteration"]
    solver._batch_rng.bit_generator.state = state["rng"]["batch"]
    solver._eval_rng.bit_generator.state = state["rng"]["eval"]
    solver._pending = []
    solver.loss_history = list(state["loss_history"])
    solver.train_acc_history = list(state["train_acc_history"])
    solver.val_acc_history = list(state["val_acc_history"])
    solver.acc_iterations = list(state["acc_iterations"])
    solver.best_val_acc = state["best_val_acc"]
    solver.best_params = backends.to_backend(state["best_params"], backend)
    best_norm = state["best_norm_params"]
    solver._best_norm_params = (
        None if best_norm is None else [backends.to_backend(p, backend) for p in best_norm]
    )


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict saved by a Solver checkpoint (host numpy arrays). Trusted files only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    with open(path, "rb") as f:
        state = pickle.load(f)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not an xplayers Solver checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {state.get('version')}, "
            f"this xplayers reads version {CHECKPOINT_VERSION}"
        )
    return state


def _atomic_pickle(obj: Any, path: Path) -> None:
    """Write ``obj`` to ``path`` so that readers see the old file or the new one, whole."""
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
