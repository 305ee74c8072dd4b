"""``xplayers train --resume``: continuing a saved run, and saying how to continue an
interrupted one."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from ..checkpoint import SUFFIX, CheckpointError, CheckpointMismatch, checkpoint_name_of
from ._common import UsageError


def resumed_solver(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    model: Any,
    data: dict[str, Any],
    say: Any,
    **common: Any,
) -> Any:
    """A Solver continuing ``args.resume``; usage errors for a file that does not fit."""
    from xplayers.solver import Solver

    path = args.resume
    extra = {} if args.epochs is None else {"num_epochs": args.epochs}
    try:
        solver = Solver.resume(path, model, data, **extra, **common)
    except CheckpointMismatch as exc:
        raise UsageError(
            parser,
            f"argument --resume: {exc}; give the same --model, --hidden-dims, "
            "--normalization, --dtype and --dataset as the run that wrote it",
        ) from None
    except CheckpointError as exc:
        raise UsageError(parser, f"argument --resume: {exc}") from None
    except ValueError as exc:  # fewer epochs than the checkpoint has done
        raise UsageError(parser, f"argument --epochs: {exc}") from None
    say(
        f"resumed: {path} at epoch {solver.epoch} (iteration {solver.iteration}); "
        f"{solver.update_rule_name}, batch {solver.batch_size}, to epoch {solver.num_epochs}"
    )
    return solver


def checkpoint_destination(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The NAME of the run's checkpoints (--checkpoint, or on under --resume's) and the
    flag that gave it."""
    if args.checkpoint is not None:
        return args.checkpoint, "--checkpoint"
    if args.resume is not None:
        return Path(checkpoint_name_of(args.resume)), "--resume"
    return None, "--checkpoint"


def check_checkpoint_destination(
    parser: argparse.ArgumentParser, flag: str, name: str | os.PathLike, first: int, last: int
) -> None:
    """Fail before training, not at its first save, when a folder stands where a file
    NAME_epoch_K.safetensors (K from ``first`` to ``last``) goes. That NAME's folder
    exists and takes new files is ``check_output_path``'s rule, checked at start-up."""
    folder = Path(name).parent
    stem = re.escape(Path(name).name.removesuffix(SUFFIX))
    pattern = re.compile(rf"{stem}_epoch_(\d+){re.escape(SUFFIX)}")
    try:
        with os.scandir(folder) as entries:
            blocked = sorted(
                e.path
                for e in entries
                if (m := pattern.fullmatch(e.name)) and first <= int(m[1]) <= last and e.is_dir()
            )
    except OSError as exc:
        raise UsageError(
            parser,
            f"argument {flag}: cannot write checkpoints to {str(folder)!r}: {exc.strerror or exc}",
        ) from None
    if blocked:
        raise UsageError(
            parser,
            f"argument {flag}: {blocked[0]!r} is a directory, where the run would write "
            "its checkpoint; choose another NAME or move it",
        )


def _without_resume(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            out.append(arg)
    return out


def interrupted_message(args: argparse.Namespace, solver: Any) -> str:
    """What a Ctrl-C'd run tells the user: where it stopped, its latest checkpoint and
    the command that resumes from it."""
    stopped = f"interrupted at iteration {solver.iteration} of {solver.num_iterations}"
    latest = solver.last_checkpoint
    if latest is None:
        return f"\n{stopped}; no checkpoint was written (give --checkpoint NAME to resume later)"
    argv = _without_resume(getattr(args, "argv", None) or sys.argv[1:])
    command = shlex.join(["xplayers", *argv, "--resume", str(latest)])
    return (
        f"\n{stopped}; latest checkpoint: {latest} (epoch {solver_epoch(latest)})\n"
        f"resume with: {command}"
    )


def solver_epoch(path: Any) -> str:
    """The epoch in a ``NAME_epoch_K.safetensors`` file name (``?`` for other names)."""
    stem = str(path).rsplit("_epoch_", 1)
    return stem[1].split(".", 1)[0] if len(stem) == 2 else "?"
