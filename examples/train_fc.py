"""Train a FullyConnectedNet on the bundled digits and print its accuracy.

python examples/train_fc.py                      # default backend
python examples/train_fc.py --backend torch --hidden-dims 200,100 --out plots/
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _common import build_fc, digits, example_parser, parse_args, train

from xplayers.plotting import plot_history


def main(argv: Sequence[str] | None = None) -> int:
    parser = example_parser(__doc__.splitlines()[0], epochs=15)
    parser.add_argument(
        "--hidden-dims",
        default="100,100",
        help="comma-separated hidden layer sizes (default: %(default)s)",
    )
    args = parse_args(parser, argv)
    try:
        hidden = [int(h) for h in args.hidden_dims.split(",")]
    except ValueError:
        parser.error(
            f"argument --hidden-dims: expected sizes like 100,100, got {args.hidden_dims!r}"
        )

    data = digits()
    model = build_fc(data, backend=args.backend, seed=args.seed, hidden_dims=hidden)
    print(f"training a {hidden} FullyConnectedNet on {model.backend}")
    solver = train(model, data, epochs=args.epochs, seed=args.seed, verbose=True)

    # The Solver has put the best-validation weights back into the model.
    for split in ("train", "val", "test"):
        acc = solver.check_accuracy(data[f"X_{split}"], data[f"y_{split}"])
        print(f"{split} accuracy: {acc:.4f}")
    path = plot_history(solver, args.out / "train_fc.png", title=f"FC {hidden} on digits")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
