"""Training curves as PNG files: loss per iteration, accuracy per epoch.

Matplotlib is imported inside the functions, so ``import xplayers`` stays
light, and figures are drawn on a standalone ``Figure`` (rendered by Agg)
rather than through ``pyplot``: no display is needed and the caller's
interactive matplotlib backend is left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["History", "plot_comparison", "plot_history"]


@dataclass(frozen=True)
class History:
    """The three curves a Solver records, as plain float lists."""

    loss: list[float]
    train_acc: list[float]
    val_acc: list[float]
    #: The epoch of each accuracy check (the first comes after one iteration,
    #: a fraction of an epoch); when unknown, the checks count 0, 1, 2, ...
    acc_epochs: list[float]

    @classmethod
    def of(cls, source: Any) -> History:
        """Read the curves from a Solver (or anything with its attributes) or a dict.

        A dict may use the Solver's names (``loss_history``, ``train_acc_history``,
        ``val_acc_history``) or the short ones (``loss``, ``train_acc``, ``val_acc``),
        and may give ``acc_epochs`` (as ``Solver.history()`` does) to place the
        accuracy checks on the epoch axis.
        """
        if isinstance(source, History):
            return source
        if callable(getattr(source, "history", None)):
            source = source.history()  # a Solver: also knows when each check ran

        def pick(long: str, short: str) -> Sequence[Any]:
            if isinstance(source, Mapping):
                for key in (long, short):
                    if key in source:
                        return source[key]
            elif hasattr(source, long):
                return getattr(source, long)
            raise TypeError(
                f"expected a Solver or a dict of histories with {long!r}, "
                f"got {type(source).__name__} without it"
            )

        # float() also turns 0-d device arrays into host numbers.
        val_acc = [float(v) for v in pick("val_acc_history", "val_acc")]
        epochs = source.get("acc_epochs") if isinstance(source, Mapping) else None
        if epochs is None or len(epochs) != len(val_acc):
            epochs = range(len(val_acc))
        return cls(
            loss=[float(v) for v in pick("loss_history", "loss")],
            train_acc=[float(v) for v in pick("train_acc_history", "train_acc")],
            val_acc=val_acc,
            acc_epochs=[float(e) for e in epochs],
        )


def _smooth(values: list[float]) -> list[float]:
    """A trailing moving average, so a noisy minibatch loss shows its trend."""
    window = max(1, len(values) // 50)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _new_figure(title: str | None) -> tuple[Any, Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig, ax_loss, ax_acc


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_history(solver_or_histories: Any, path: str | Path, title: str | None = None) -> Path:
    """Write one run's curves to ``path``: training loss per iteration (left) and
    train/validation accuracy per epoch (right). Returns the path written.

    ``solver_or_histories`` is a Solver after ``train()`` or a dict of its
    histories (see ``History.of``). The image format follows the file suffix.
    """
    h = History.of(solver_or_histories)
    fig, ax_loss, ax_acc = _new_figure(title)
    iters = range(1, len(h.loss) + 1)
    ax_loss.plot(iters, h.loss, color="tab:blue", alpha=0.3, linewidth=0.8, label="minibatch")
    ax_loss.plot(iters, _smooth(h.loss), color="tab:blue", label="moving average")
    ax_loss.legend()
    ax_acc.plot(h.acc_epochs, h.train_acc, "o-", label="train")
    ax_acc.plot(h.acc_epochs, h.val_acc, "o-", label="val")
    ax_acc.legend()
    return _save(fig, path)


def plot_comparison(runs: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Overlay several runs in one figure, one colour per label: smoothed training
    loss (left), validation accuracy solid and training accuracy dashed (right).
    Returns the path written.

    ``runs`` maps a label to a Solver or a dict of histories.
    """
    if not runs:
        raise ValueError("plot_comparison needs at least one run")
    fig, ax_loss, ax_acc = _new_figure(title)
    for i, (label, run) in enumerate(runs.items()):
        h = History.of(run)
        color = f"C{i % 10}"
        ax_loss.plot(range(1, len(h.loss) + 1), _smooth(h.loss), color=color, label=label)
        ax_acc.plot(h.acc_epochs, h.val_acc, "o-", color=color, label=f"{label} val")
        ax_acc.plot(
            h.acc_epochs,
            h.train_acc,
            "--",
            color=color,
            alpha=0.6,
            label=f"{label} train",
        )
    ax_loss.legend()
    ax_acc.legend(fontsize="small", ncol=2 if len(runs) > 2 else 1)
    return _save(fig, path)
