"""What the Solver shows while it trains: a tqdm bar on a terminal, else the
course's "(Iteration t / n) loss" and "(Epoch e / n) train acc" lines."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(solver: Any, total: int) -> Any:
    """A tqdm bar from ``solver.iteration`` to ``total``, or None when not shown.

    ``solver.progress`` None means: a bar when verbose and stdout is a terminal.
    """
    show = solver.progress
    if show is None:
        show = solver.verbose and sys.stdout.isatty()
    if not show or solver.iteration >= total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=solver.iteration, file=sys.stdout, desc="train", unit="it")


def report_loss(solver: Any, bar: Any, t: int, num_iterations: int) -> None:
    """Show the last loss: on the bar, or as a line when verbose."""
    loss = solver.loss_history[-1]
    if bar is not None:
        bar.set_postfix(_postfix(solver, loss), refresh=False)
    elif solver.verbose:
        print(f"(Iteration {t + 1} / {num_iterations}) loss: {loss:f}")


def report_accuracy(solver: Any, bar: Any, train_acc: float, val_acc: float) -> None:
    """Show an accuracy check: a line (above the bar when there is one)."""
    line = (
        f"(Epoch {solver.epoch} / {solver.num_epochs}) "
        f"train acc: {train_acc:f}; val_acc: {val_acc:f}"
    )
    if bar is not None:
        bar.set_postfix(_postfix(solver, solver.loss_history[-1]), refresh=False)
        if solver.verbose:
            bar.write(line, file=sys.stdout)
    elif solver.verbose:
        print(line)


def _postfix(solver: Any, loss: float) -> dict[str, str]:
    out = {"epoch": f"{solver.epoch}/{solver.num_epochs}", "loss": f"{loss:.4f}"}
    if solver.train_acc_history:
        out["train_acc"] = f"{solver.train_acc_history[-1]:.3f}"
        out["val_acc"] = f"{solver.val_acc_history[-1]:.3f}"
    return out
