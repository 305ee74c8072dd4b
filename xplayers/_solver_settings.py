"""What a Solver is built from, checked: its keywords, its model and its data."""

from __future__ import annotations

import inspect
from typing import Any

from ._batches import Split
from ._checks import check_int

#: The Solver's keywords and their defaults (the CS231n ones, then xplayers').
DEFAULTS: dict[str, Any] = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": True,
    "seed": None,
    "progress": None,
    "keep_checkpoints": True,
    "checkpoint_info": None,
    "comm": None,
    "jit": None,
}


def solver_settings(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every keyword (given, else its default), the counts checked and made ints; an
    unknown keyword is a ValueError, a model without ``params`` and ``loss`` a TypeError."""
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unrecognized Solver arguments {unknown}; known: {sorted(DEFAULTS)}")
    if not hasattr(model, "params") or not hasattr(model, "loss"):
        raise TypeError(
            f"model must have 'params' and 'loss(X, y=None)', got {type(model).__name__}"
        )
    settings = {**DEFAULTS, **kwargs}
    settings["optim_config"] = dict(settings["optim_config"] or {})
    settings["lr_decay"] = float(settings["lr_decay"])
    for name, low in (("batch_size", 1), ("num_epochs", 0), ("print_every", 1)):
        settings[name] = check_int(name, settings[name], low)
    settings["verbose"] = bool(settings["verbose"])
    settings["keep_checkpoints"] = bool(settings["keep_checkpoints"])
    if settings["jit"] is not None and not isinstance(settings["jit"], bool):
        raise TypeError(
            f"jit must be None (compile the step where the backend compiles: JAX), True or "
            f"False (run it eagerly), got {settings['jit']!r:.60}"
        )
    return settings


def data_splits(data: dict[str, Any]) -> tuple[Split, Split]:
    """The training and validation splits of ``data`` (X_train, y_train, X_val, y_val)."""
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
    if missing:
        raise KeyError(f"data lacks {missing}; it must hold X_train, y_train, X_val, y_val")
    train = Split("X_train", data["X_train"], "y_train", data["y_train"])
    val = Split("X_val", data["X_val"], "y_val", data["y_val"])
    if train.n == 0:
        raise ValueError("X_train is empty: there is nothing to train on")
    return train, val


def loss_options(model: Any, label_range: tuple[int, int]) -> dict[str, Any]:
    """The keywords the training steps give ``model.loss`` besides X and y:
    ``label_range`` (the training labels' min and max, read once) where the loss takes
    it by name, so that it checks each batch's labels without reading them back."""
    try:
        params = inspect.signature(model.loss).parameters
    except (TypeError, ValueError):  # a callable without a signature: give it X and y only
        return {}
    return {"label_range": label_range} if "label_range" in params else {}
