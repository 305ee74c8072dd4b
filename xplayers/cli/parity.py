"""``xplayers parity``: the same seeded run on several backends and devices, compared.

    xplayers parity --backends numpy,torch,array_api_strict:device1 --plot parity.png

Exit status 1 when a difference exceeds the dtype's tolerance, so the command
can gate a CI job.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import backends
from ..defaults import UPDATE_RULES
from ._common import (
    EXIT_FAILED,
    PLOT_SUFFIXES,
    UsageError,
    check_output_path,
    non_negative_int,
    positive_int,
)

#: What ``--backends`` defaults to: those of these that are usable here.
DEFAULT_CASES = ("numpy", "torch", "cupy", "array_api_strict:device1")


def _default_cases() -> str:
    """The usable default cases; probing imports each library, so only a run asks."""
    usable = [
        c for c in DEFAULT_CASES if backends.unavailable_reason(backends.parse_case(c)[0]) is None
    ]
    return ",".join(usable)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``parity`` subcommand's parser."""
    p = sub.add_parser(
        "parity",
        help="train the same seeded model on several backends and compare them",
        description="Train the same seeded model on each backend and device side by side "
        "and report the differences against the first; exit 1 over the dtype's tolerance.",
    )
    p.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends, each optionally with a device "
        "(e.g. numpy,torch,array_api_strict:device1,cupy:cuda:1); the first is the "
        f"reference (default: those of {','.join(DEFAULT_CASES)} usable here)",
    )
    p.add_argument("--model", choices=("fc", "cnn"), default="fc",
                   help="fc: 64-64-64-10 with batchnorm; cnn: ThreeLayerConvNet "
                   "(default: %(default)s)")  # fmt: skip
    p.add_argument("--iterations", type=positive_int, default=20,
                   help="training iterations (default: %(default)s)")  # fmt: skip
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="(default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--update-rule",
        choices=UPDATE_RULES,
        default="sgd_momentum",
        help="(default: %(default)s; adam turns the rounding noise of zero gradients, "
        "such as a bias before batch norm, into full-size steps)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of the weights and batches (default: %(default)s)")  # fmt: skip
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="write the differences, on a log scale, to this image")  # fmt: skip
    p.set_defaults(handler=run, subparser=p)


def _cases(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    text = args.backends if args.backends is not None else _default_cases()
    cases = [c.strip() for c in text.split(",") if c.strip()]
    if len(cases) < 2:
        raise UsageError(parser, f"argument --backends: name two or more, got {text!r}")
    for case in cases:
        name = backends.parse_case(case)[0]
        if name not in backends.BACKEND_NAMES:
            raise UsageError(
                parser,
                f"argument --backends: unknown backend {name!r} "
                f"(choose from {', '.join(backends.BACKEND_NAMES)})",
            )
    return cases


def _print_report(report: Any) -> None:
    tol, others = report.tolerance, report.cases[1:]
    width = max(21, *map(len, others)) + 2
    head = "".join(f"{c:>{width}}" for c in others)
    print(f"reference: {report.cases[0]}; tolerance ({report.dtype}): relative difference "
          f"<= {tol:g}")  # fmt: skip
    print("\nlargest relative difference after each iteration (loss / params):")
    print(f"{'iteration':<18}{head}")
    for t in range(len(report.loss[others[0]])):
        pairs = [(report.loss[c][t], report.params[c][t]) for c in others]
        print(f"{t + 1:<18}" + "".join(f"{f'{a:.1e} / {b:.1e}':>{width}}" for a, b in pairs))
    print("\none forward + backward per layer family (max abs / max rel):")
    print(f"{'family':<18}{head}")
    for family, row in report.layers.items():
        pairs = [row[c] for c in others]
        print(f"{family:<18}" + "".join(f"{f'{a:.1e} / {b:.1e}':>{width}}" for a, b in pairs))
    verdict = "within" if report.passed else "OVER"
    print(f"\nworst relative difference {report.worst():.2e}: {verdict} tolerance {tol:g}")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Compare, print the tables, plot; status 1 over the tolerance."""
    from ..parity import compare

    check_output_path(parser, "--plot", args.plot, PLOT_SUFFIXES)
    cases = _cases(args, parser)
    try:
        report = compare(cases, args.model, args.iterations, args.dtype, args.update_rule,
                         args.seed, progress=True)  # fmt: skip
    except (backends.BackendError, ValueError) as exc:
        raise UsageError(parser, f"argument --backends: {exc}") from None
    print(f"parity: {args.model} on the digits, {args.dtype}, {args.iterations} iterations "
          f"of {args.update_rule}, seed {args.seed}")  # fmt: skip
    _print_report(report)
    if args.plot is not None:
        from ..parity._plot import plot_parity

        print(f"plot: {plot_parity(report, args.plot)}")
    return 0 if report.passed else EXIT_FAILED
