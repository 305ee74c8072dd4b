"""Telling that training diverged, and saying where: a NaN or infinite loss or parameter.

The Solver finds a bad loss when it reads the losses back (at most
``print_every`` iterations late) and bad parameters before each checkpoint
(``nonfinite_params``, one read-back); it then restores the best parameters
and raises the ``TrainingDiverged`` that ``diverged`` builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import backends


class TrainingDiverged(FloatingPointError):
    """The loss (or a parameter) became NaN or infinite during ``Solver.train()``.

    ``iteration`` (1-based, as the progress prints count) and ``epoch``
    (1-based, the epoch being trained) locate the first bad value; ``value``
    is the loss there (None when a parameter, not the loss, went bad). When it
    is raised the model holds the best parameters seen so far (before the
    first accuracy check: its initial parameters, restored).
    """

    def __init__(self, message: str, iteration: int, epoch: int, value: float | None) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.epoch = epoch
        self.value = value


def nonfinite_params(params: dict[str, Any]) -> list[str]:
    """The names of the params holding a NaN or an infinity (one read-back when none does)."""
    xp = backends.get_namespace(**{f"params[{k!r}]": v for k, v in params.items()})
    flags = [xp.all(xp.isfinite(v)) for v in params.values()]
    if bool(xp.all(xp.stack(flags))):
        return []
    return [k for k, v in params.items() if not bool(xp.all(xp.isfinite(v)))]


def diverged(
    what: str,
    value: float | None,
    iteration: int,
    *,
    num_epochs: int,
    iterations_per_epoch: int,
    restored: str,
    checkpoint: tuple[Path, int] | None,
) -> TrainingDiverged:
    """The error for ``what`` went bad at (or, ending in " by", by) ``iteration``.

    ``restored`` says what the model now holds; ``checkpoint`` is the latest file
    written and the iteration it was written after, if any.
    """
    epoch = (iteration - 1) // iterations_per_epoch + 1
    where = (
        f"the latest checkpoint is {str(checkpoint[0])!r} (written after iteration {checkpoint[1]})"
        if checkpoint is not None
        else "no checkpoint was written"
    )
    at = "" if what.endswith(" by") else " at"
    message = (
        f"{what}{at} iteration {iteration} of {num_epochs * iterations_per_epoch} "
        f"(epoch {epoch} of {num_epochs}); the model now holds {restored}; {where}. "
        f"Try a smaller learning rate or weight scale."
    )
    return TrainingDiverged(message, iteration, epoch, value)
