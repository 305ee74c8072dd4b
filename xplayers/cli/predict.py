"""``xplayers predict CHECKPOINT INPUT.npy``: a saved model's labels (or scores) for inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import UsageError
from ._inference import add_model_arguments, load_checkpoint_model, scores


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``predict`` subcommand's parser."""
    p = sub.add_parser(
        "predict",
        help="predict labels for inputs with a checkpoint's model",
        description="Load the model of a checkpoint (its best parameters) and predict the "
        "class of each row of INPUT.npy, which holds inputs exactly as the model takes them "
        "(prepared like the training data: same shape per row, mean subtracted).",
    )
    p.set_defaults(handler=run, subparser=p)
    add_model_arguments(p)
    p.add_argument("input", type=Path, metavar="INPUT.npy", help="(N, ...) inputs")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="OUT.npy",
        help="write the (N,) int64 labels here (default: print one label per line)",
    )
    p.add_argument(
        "--scores",
        action="store_true",
        help="write the (N, C) class scores to --output instead of the labels",
    )


def _read_input(parser: argparse.ArgumentParser, path: Path) -> np.ndarray:
    try:
        X = np.load(path, allow_pickle=False)  # an object array would need a pickle
    except FileNotFoundError:
        raise UsageError(parser, f"argument INPUT.npy: {str(path)!r} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(
            parser, f"argument INPUT.npy: {str(path)!r} is not a numeric .npy array: {exc}"
        ) from None
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf" or X.ndim < 2:
        what = f"a {X.dtype} array of shape {X.shape}" if hasattr(X, "dtype") else "an archive"
        raise UsageError(
            parser, f"argument INPUT.npy: expected a numeric (N, ...) array, got {what}"
        )
    return X


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.scores and args.output is None:
        raise UsageError(parser, "argument --scores: give --output OUT.npy to write them to")
    if args.output is not None and not (args.output.parent or Path(".")).is_dir():
        raise UsageError(
            parser, f"argument --output: folder {str(args.output.parent)!r} does not exist"
        )
    model = load_checkpoint_model(args, parser)
    X = _read_input(parser, args.input).astype(model.dtype, copy=False)
    try:
        s = scores(model, X, args.batch_size)
    except (ValueError, TypeError) as exc:
        raise UsageError(parser, f"argument INPUT.npy: it does not fit the model: {exc}") from None
    labels = np.argmax(s, axis=1).astype(np.int64)
    if args.output is None:
        print("\n".join(map(str, labels.tolist())))
        return 0
    np.save(args.output, s if args.scores else labels)
    what = f"scores {s.shape}" if args.scores else f"{labels.size} labels"
    print(f"wrote {what} to {args.output}")
    return 0
