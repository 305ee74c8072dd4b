"""What ``evaluate`` and ``predict`` share: the checkpoint's model, and its scores."""

from __future__ import annotations

import argparse
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
        return np.zeros((0, _num_classes(model)), dtype=model.dtype)
    return np.concatenate(parts)


def _num_classes(model: Any) -> int:
    last = max((k for k in model.params if k.startswith("b")), key=lambda k: int(k[1:] or 0))
    return int(model.params[last].shape[0])
