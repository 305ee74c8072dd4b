"""What every subcommand shares: the usage error, exit statuses and argument types."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import backends

EXIT_USAGE = 2  # argparse's own status for bad arguments
EXIT_FAILED = 1  # the run itself failed (diverged)
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT), as shells report it
#: Image formats --plot writes (matplotlib picks the format from the suffix).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


class UsageError(Exception):
    """A user mistake found after parsing; reported like an argparse error."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


def int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return int_at_least(text, 0, "an integer >= 0")


def finite_float(text: str, *, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def learning_rate(text: str) -> float:
    value = finite_float(text, low=0.0, high=math.inf, what="a positive number")
    if value == 0:
        raise argparse.ArgumentTypeError("the learning rate must be positive, got 0")
    return value


def non_negative_float(text: str) -> float:
    return finite_float(text, low=0.0, high=math.inf, what="a number >= 0")


def keep_probability(text: str) -> float:
    value = finite_float(text, low=0.0, high=1.0, what="a keep probability in (0, 1]")
    if value == 0:
        raise argparse.ArgumentTypeError("a keep probability of 0 drops every unit; use (0, 1]")
    return value


def decay(text: str) -> float:
    value = finite_float(text, low=0.0, high=1.0, what="a factor in (0, 1]")
    if value == 0:
        raise argparse.ArgumentTypeError("a decay of 0 stops learning after one epoch; use (0, 1]")
    return value


def hidden_dims(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated sizes like 100,100, got {text!r}"
        )
    return tuple(positive_int(p) for p in parts)


def backend_name(text: str) -> str:
    # Validated by name here; availability is checked after parsing so that the
    # message can carry the reason (and `xplayers backends` lists them all).
    name = text.strip().lower()
    if name not in backends.BACKEND_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r} (choose from {', '.join(backends.BACKEND_NAMES)})"
        )
    return name


def add_placement_arguments(p: argparse.ArgumentParser | Any, what: str) -> None:
    """--backend and --device; ``what`` says what runs there."""
    p.add_argument(
        "--backend",
        type=backend_name,
        default=None,
        help=f"array library to {what} on: numpy, cupy, torch, jax or array_api_strict "
        "(default: cupy where available, else numpy; env XPLAYERS_BACKEND)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="device of that backend: cpu, cuda, cuda:1 (cupy, torch), cpu:1 (jax), device1 "
        "(array_api_strict); default: the backend's default device (see `xplayers backends`)",
    )


def resolve_placement(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str, Any]:
    """The backend and device object of --backend/--device, checked usable, or a usage
    error with the reason."""
    if args.backend is None:
        # A bad XPLAYERS_BACKEND raises EnvironmentVariableError, which main() reports.
        backend = backends.default_backend()
    else:
        backend = args.backend
        reason = backends.unavailable_reason(backend)
        if reason is not None:
            available = ", ".join(backends.available_backends())
            raise UsageError(
                parser,
                f"argument --backend: backend {backend!r} is not available here: {reason} "
                f"(available: {available}; see `xplayers backends`)",
            )
    try:
        return backend, backends.resolve_device(backend, args.device)
    except backends.BackendError as exc:
        raise UsageError(parser, f"argument --device: {exc}") from None


def check_output_path(
    parser: argparse.ArgumentParser, flag: str, path: Path | None, suffixes: Sequence[str] = ()
) -> None:
    """The one rule for every file a command writes (--plot, --output, --checkpoint),
    checked before any work so that a run never fails at its end: the folder must
    exist (none is created), the path must not be a folder, its suffix one of
    ``suffixes`` (any case) when given, and a test file must be writable there."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(parser, f"argument {flag}: {str(path)!r} is a directory, not a file")
    if suffixes and path.suffix.lower() not in suffixes:
        names = ", ".join(f"FILE{s}" for s in suffixes)
        raise UsageError(parser, f"argument {flag}: {str(path)!r}: expected a file name {names}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(
            parser, f"argument {flag}: folder {str(parent)!r} does not exist (create it first)"
        )
    # A real write: access() says yes to root, and a read-only mount says no late.
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise UsageError(
            parser, f"argument {flag}: cannot write files in {str(parent)!r}: {exc.strerror}"
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(parser, f"argument {flag}: {str(path)!r} is read-only")


def or_default(value: Any, default: Any) -> Any:
    """``value``, or ``default`` where a flag was not given (None)."""
    return default if value is None else value
