"""Batch normalization vs none, and dropout vs none, on the digits: two PNGs.

    python examples/batchnorm_dropout.py --out plots/

1. batchnorm.png: a deep net (five hidden layers of 100) whose initial weights
   are too small (std 0.03) for its depth: without normalization the signal
   fades layer by layer and training stalls for epochs; batch norm rescales
   every layer and trains at once.
2. dropout.png: a wide net (500-500) trained on only 200 images, which it
   memorises within a few epochs. Dropout (keep probability 0.75, 0.5) keeps
   the training loss up and slows the memorising; on these small, clean
   images the validation accuracy stays within a point or two of the run
   without it, so the plot shows what dropout costs as much as what it buys.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _common import build_fc, digits, example_parser, parse_args, plot_runs, report, train

SMALL_TRAIN = 200  # images in the dropout experiment's training set


def main(argv: Sequence[str] | None = None) -> int:
    parser = example_parser(__doc__.splitlines()[0], epochs=10)
    parser.add_argument(
        "--dropout-epochs",
        type=int,
        default=30,
        help="epochs of the dropout runs: the small training set makes epochs short "
        "(default: %(default)s)",
    )
    args = parse_args(parser, argv)
    if args.dropout_epochs < 1:
        parser.error("argument --dropout-epochs: must be at least 1")
    data = digits()

    print(f"batch norm: 5 hidden layers, weight std 0.03, {args.epochs} epochs")
    norm_runs = {}
    for label, norm in (("no normalization", None), ("batchnorm", "batchnorm")):
        model = build_fc(
            data,
            backend=args.backend,
            seed=args.seed,
            hidden_dims=[100] * 5,
            weight_scale=3e-2,
            normalization=norm,
        )
        norm_runs[label] = train(
            model, data, epochs=args.epochs, seed=args.seed, learning_rate=1e-3
        )
        report(label, norm_runs[label])
    plot_runs(norm_runs, args.out / "batchnorm.png", title="Batch normalization")
    print()

    small = {
        **data,
        "X_train": data["X_train"][:SMALL_TRAIN],
        "y_train": data["y_train"][:SMALL_TRAIN],
    }
    print(f"dropout: 500-500 net, {SMALL_TRAIN} training images, {args.dropout_epochs} epochs")
    drop_runs = {}
    for keep in (1.0, 0.75, 0.5):
        label = "no dropout" if keep == 1.0 else f"keep {keep:g}"
        model = build_fc(
            small, backend=args.backend, seed=args.seed, hidden_dims=[500, 500], dropout=keep
        )
        drop_runs[label] = train(
            model,
            small,
            epochs=args.dropout_epochs,
            seed=args.seed,
            learning_rate=1e-3,
            batch_size=50,
        )
        report(label, drop_runs[label])
    plot_runs(drop_runs, args.out / "dropout.png", title="Dropout on 200 images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
