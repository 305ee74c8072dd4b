"""The ``xplayers`` command line: train a model, evaluate or apply a checkpoint, list
the backends, compare backends.

    xplayers train                       # FC net on the bundled digits, default backend
    xplayers train --backend torch --update-rule sgd_momentum --lr 0.05 --plot curves.png
    xplayers train --model cnn --dataset cifar10 --data-dir ~/data/cifar10 --epochs 1
    xplayers backends
    xplayers train --checkpoint runs/digits      # runs/digits_epoch_K.safetensors
    xplayers evaluate runs/digits_epoch_10.safetensors --split test
    xplayers predict runs/digits_epoch_10.safetensors inputs.npy --output labels.npy
    xplayers parity --backends numpy,torch,array_api_strict:device1 --plot parity.png

Each subcommand is a module here with ``add_parser(sub)`` and ``run(args,
parser)``. User mistakes (a bad flag value, an unavailable backend, a missing
data folder, a bad data file or ``XPLAYERS_*`` variable) end with an
argparse-style message and exit status 2, never with a traceback; a run
that diverges ends with status 1 and says so.
"""

from __future__ import annotations

import argparse
import sys

from .. import backends
from . import evaluate, list_backends, parity, predict, train
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``xplayers`` command (train, evaluate, predict, backends, parity)."""
    parser = argparse.ArgumentParser(
        prog="xplayers",
        description="CS231n-style networks on NumPy, CuPy, PyTorch or array-api-strict.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"xplayers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for command in (list_backends, train, evaluate, predict, parity):
        command.add_parser(sub)
    return parser


def _usage_error(parser: argparse.ArgumentParser, exc: Exception) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the ``xplayers`` command with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status (0 success, 1 a failed run, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # to print a resume command
        backends.check_environment()  # a bad XPLAYERS_* value fails now, not mid-run
        return args.handler(args, args.subparser)
    except UsageError as exc:
        return _usage_error(exc.parser, exc)
    except backends.EnvironmentVariableError as exc:  # read by the backends during the run
        return _usage_error(args.subparser, exc)
    except SystemExit as exc:  # argparse's own errors, --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
