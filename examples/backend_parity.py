"""Train the same seeded model on several backends in float64 and compare.

    python examples/backend_parity.py                       # numpy, torch (and cupy if present)
    python examples/backend_parity.py --backends numpy,array_api_strict --normalization batchnorm

The seed fixes the initial weights (drawn on the host, then moved) and the
minibatch order (sampled on the host by the Solver), so every backend runs
the same arithmetic; only the order of floating-point additions inside the
libraries differs. In float64 the loss curves and final weights should agree
to ~1e-12 after the whole run; a gap near 1e-3 would mean a real difference
in the layers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from _common import build_fc, digits, example_parser, parse_args, plot_runs, train

import xplayers.backends as backends


def _backend_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in backends.BACKEND_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown backend(s) {unknown}; known: {', '.join(backends.BACKEND_NAMES)}"
        )
    if len(set(names)) < 2:
        raise argparse.ArgumentTypeError("name at least two different backends, e.g. numpy,torch")
    return list(dict.fromkeys(names))


def _default_backends() -> list[str]:
    return ["numpy"] + [n for n in ("torch", "cupy") if backends.unavailable_reason(n) is None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = example_parser(__doc__.splitlines()[0], epochs=5, backend=False)
    parser.add_argument(
        "--backends",
        type=_backend_list,
        default=_default_backends(),
        help="comma-separated backends; the first is the reference "
        "(default: numpy, then torch and cupy where available)",
    )
    parser.add_argument(
        "--normalization", choices=("none", "batchnorm", "layernorm"), default="none"
    )
    args = parse_args(parser, argv)
    if len(args.backends) < 2:
        parser.error(f"only {args.backends} available here; parity needs two backends")
    norm = None if args.normalization == "none" else args.normalization

    data = digits()
    runs, weights = {}, {}
    for name in args.backends:
        model = build_fc(data, backend=name, seed=args.seed, dtype="float64", normalization=norm)
        runs[name] = train(model, data, epochs=args.epochs, seed=args.seed)
        weights[name] = {k: backends.to_numpy(v) for k, v in model.params.items()}
        print(f"{name:<18} final loss {runs[name].loss_history[-1]:.12f}")

    ref = args.backends[0]
    ref_loss = np.asarray(runs[ref].loss_history)
    for name in args.backends[1:]:
        loss_gap = float(np.max(np.abs(np.asarray(runs[name].loss_history) - ref_loss)))
        weight_gap = max(
            float(np.max(np.abs(weights[name][k] - weights[ref][k]))) for k in weights[ref]
        )
        print(f"{name} vs {ref}: max |loss difference| {loss_gap:.3e} over {len(ref_loss)} steps")
        print(f"{name} vs {ref}: max |weight difference| {weight_gap:.3e}")
    plot_runs(runs, args.out / "backend_parity.png", title="The same seeded run on each backend")
    return 0


if __name__ == "__main__":
    sys.exit(main())
