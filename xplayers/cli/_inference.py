"""What ``evaluate`` and ``predict`` share: the checkpoint's model, and its scores."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import backends
from ._common import UsageError, add_placement_arguments, positive_int, resolve_placement


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """CHECKPOINT, --backend, --device and --batch-size."""
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a .safetensors checkpoint")
    add_placement_arguments(p, "run the model")
    p.add_argument(
        "--batch-size", type=positive_int, default=1000, help="rows scored at once (default: 1000)"
    )


def load_checkpoint_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The model of ``args.checkpoint`` on the chosen backend, or a usage error."""
    from xplayers.checkpoint import CheckpointError, load_model

    backend, device = resolve_placement(args, parser)
    try:
        return load_model(args.checkpoint, backend=backend, device=device)
    except FileNotFoundError:
        raise UsageError(
            parser, f"argument CHECKPOINT: {str(args.checkpoint)!r} does not exist"
        ) from None
    except CheckpointError as exc:
        raise UsageError(parser, f"argument CHECKPOINT: {exc}") from None


def scores(model: Any, X: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's class scores (N, C) for host inputs X, in test mode, on the host."""
    w = next(iter(model.params.values()))
    place = dict(backend=backends.backend_of(w), device=backends.device_of(w))
    parts = [
        backends.to_numpy(model.loss(backends.asarray(X[i : i + batch_size], **place)))
        for i in range(0, X.shape[0], batch_size)
    ]
    if not parts:
        return np.zeros((0, model.init_args["num_classes"]), dtype=model.dtype)
    return np.concatenate(parts)


def row_shape_error(model: Any, row_shape: tuple[int, ...]) -> str | None:
    """Why rows of ``row_shape`` cannot go into ``model`` (None when they can): a
    fully connected net takes any row of ``input_dim`` values, a conv net rows of
    exactly its (C, H, W)."""
    want = model.init_args["input_dim"]
    name = type(model).__name__
    if isinstance(want, (tuple, list)):
        if tuple(row_shape) != tuple(want):
            return f"rows of shape {tuple(row_shape)}; {name} takes rows of shape {tuple(want)}"
    elif math.prod(row_shape) != want:
        return (
            f"rows of {math.prod(row_shape)} values (shape {tuple(row_shape)}); "
            f"{name} takes rows of {want} values"
        )
    return None


def rows_text(rows: np.ndarray, total: int) -> str:
    """'2 of 10 rows (3, 7)': how many, and the first few indices."""
    first = ", ".join(map(str, rows[:5].tolist())) + (", ..." if rows.size > 5 else "")
    return f"{rows.size} of {total} rows ({first})"


def predicted_labels(parser: argparse.ArgumentParser, flag: str, s: np.ndarray) -> np.ndarray:
    """The class of each row of scores ``s`` (N, C) as int64, or a usage error naming
    ``flag`` when a row's scores are NaN or infinite (argmax would call it class 0)."""
    bad = np.flatnonzero(~np.isfinite(s).all(axis=1))
    if bad.size:
        raise UsageError(
            parser,
            f"argument {flag}: the model's scores are NaN or infinite for "
            f"{rows_text(bad, len(s))}; no class can be read from them",
        )
    return np.argmax(s, axis=1).astype(np.int64)
