"""What the examples share: their flags, the digits data, a seeded FC net, a Solver run.

Each example stays a short script about its own question; the plumbing is here.
The hyperparameters are the command line's (``xplayers train``), which were tuned
on the digits: a two-layer 100-100 ReLU net, weights drawn with std 0.1, a
learning rate per update rule.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import xplayers  # noqa: F401  (installed, or PYTHONPATH points at the checkout)
except ImportError:
    # Running `python examples/<name>.py` straight from a source checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xplayers.backends as backends
from xplayers.data import get_digits_data
from xplayers.defaults import DEFAULT_HIDDEN_DIMS, DEFAULT_LEARNING_RATES, DEFAULT_WEIGHT_SCALE
from xplayers.models import FullyConnectedNet
from xplayers.plotting import plot_comparison
from xplayers.solver import Solver

__all__ = ["build_fc", "digits", "example_parser", "parse_args", "plot_runs", "report", "train"]


def example_parser(
    description: str, *, epochs: int, backend: bool = True
) -> argparse.ArgumentParser:
    """The flags every example takes: --epochs, --seed, --out and (optionally) --backend."""
    p = argparse.ArgumentParser(description=description)
    if backend:
        p.add_argument(
            "--backend",
            choices=backends.BACKEND_NAMES,
            default=None,
            help="array library (default: cupy where available, else numpy)",
        )
    p.add_argument(
        "--epochs", type=int, default=epochs, help="epochs per run (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and batches")
    p.add_argument(
        "--out", type=Path, default=Path("."), help="folder for the PNG files (default: .)"
    )
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, then reject what argparse cannot see: an unavailable backend, bad numbers."""
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"argument --epochs: must be at least 1, got {args.epochs}")
    names = args.backends if hasattr(args, "backends") else [getattr(args, "backend", None)]
    for name in names:
        if name is not None and (reason := backends.unavailable_reason(name)) is not None:
            parser.error(f"backend {name!r} is not available here: {reason}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {str(args.out)!r} is a file, not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def digits() -> dict[str, Any]:
    """The bundled 8x8 digits: 1197 train / 300 val / 300 test images (N, 1, 8, 8)."""
    return get_digits_data()


def build_fc(
    data: dict[str, Any],
    *,
    backend: str | None,
    seed: int,
    hidden_dims: Sequence[int] = DEFAULT_HIDDEN_DIMS,
    weight_scale: float = DEFAULT_WEIGHT_SCALE,
    **kwargs: Any,
) -> FullyConnectedNet:
    """A FullyConnectedNet sized for ``data`` (input size and classes read from it)."""
    model = FullyConnectedNet(
        list(hidden_dims),
        input_dim=int(data["X_train"][0].size),
        num_classes=int(data["y_train"].max()) + 1,
        weight_scale=weight_scale,
        backend=backend,
        seed=seed,
        **kwargs,
    )
    return model


def train(
    model: Any,
    data: dict[str, Any],
    *,
    epochs: int,
    seed: int,
    update_rule: str = "adam",
    learning_rate: float | None = None,
    batch_size: int = 100,
    verbose: bool = False,
    **kwargs: Any,
) -> Solver:
    """Train ``model`` with the Solver and return it (best params restored)."""
    lr = DEFAULT_LEARNING_RATES[update_rule] if learning_rate is None else learning_rate
    solver = Solver(
        model,
        data,
        update_rule=update_rule,
        optim_config={"learning_rate": lr},
        num_epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        verbose=verbose,
        **kwargs,
    )
    solver.train()
    return solver


def report(label: str, solver: Solver) -> None:
    """One summary line: final loss, best validation accuracy, last train accuracy."""
    print(
        f"{label:<24} final loss {solver.loss_history[-1]:.4f}   "
        f"train acc {solver.train_acc_history[-1]:.3f}   best val acc {solver.best_val_acc:.3f}"
    )


def plot_runs(runs: dict[str, Solver], path: Path, title: str) -> Path:
    """One PNG comparing the runs' curves; says where it went."""
    written = plot_comparison(runs, path, title=title)
    print(f"wrote {written}")
    return written
