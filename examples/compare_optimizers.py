"""SGD, SGD+momentum, RMSProp and Adam on the same model, data and seed: one PNG.

    python examples/compare_optimizers.py --out plots/

Every run starts from the same weights and sees the same minibatches, so the
curves differ only by the update rule. Each rule uses the learning rate the
command line uses for it (tuned on the digits).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _common import build_fc, digits, example_parser, parse_args, plot_runs, report, train

from xplayers.defaults import DEFAULT_LEARNING_RATES


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(example_parser(__doc__.splitlines()[0], epochs=10), argv)
    data = digits()
    runs = {}
    for rule, lr in DEFAULT_LEARNING_RATES.items():
        model = build_fc(data, backend=args.backend, seed=args.seed)
        runs[f"{rule} (lr {lr:g})"] = solver = train(
            model, data, epochs=args.epochs, seed=args.seed, update_rule=rule
        )
        report(f"{rule} (lr {lr:g})", solver)
    plot_runs(runs, args.out / "compare_optimizers.png", title="Update rules on digits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
