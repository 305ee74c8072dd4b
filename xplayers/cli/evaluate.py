"""``xplayers evaluate CHECKPOINT``: the accuracy of a saved model on a dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import UsageError
from ._inference import add_model_arguments, load_checkpoint_model, predicted_labels, scores


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand's parser."""
    p = sub.add_parser(
        "evaluate",
        help="print a checkpoint's accuracy on a dataset split",
        description="Load the model of a checkpoint (its best parameters) and print its "
        "accuracy on a split of the dataset its run used, or of --dataset.",
    )
    p.set_defaults(handler=run, subparser=p)
    add_model_arguments(p)
    p.add_argument(
        "--dataset",
        choices=("digits", "cifar10"),
        default=None,
        help="dataset to score (default: the one the checkpoint's run used)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 folder (for cifar10)")
    p.add_argument(
        "--split",
        choices=("test", "val", "train"),
        default="test",
        help="which split to score (default: %(default)s)",
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from xplayers.checkpoint import load

    from .train import load_data

    model = load_checkpoint_model(args, parser)
    info = load(args.checkpoint)["info"]
    recorded = {k: _recorded(args, parser, info, k) for k in ("dataset", "data_dir")}
    dataset = args.dataset or recorded["dataset"]
    if dataset not in ("digits", "cifar10"):
        raise UsageError(
            parser,
            f"argument --dataset: checkpoint {str(args.checkpoint)!r} does not say "
            "which dataset its run used; give --dataset",
        )
    args.dataset = dataset
    if (
        args.data_dir is None
        and recorded["data_dir"] is not None
        and dataset == recorded["dataset"]
    ):
        # The one path a checkpoint carries, and only ever read: its run's CIFAR-10 folder.
        args.data_dir = Path(recorded["data_dir"])
    if dataset == "cifar10" and args.data_dir is None:
        raise UsageError(parser, "argument --data-dir is required with --dataset cifar10")
    data = load_data(args, parser)
    X, y = data[f"X_{args.split}"], np.asarray(data[f"y_{args.split}"])
    try:
        s = scores(model, X, args.batch_size)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            parser, f"argument --dataset: the {dataset} data does not fit the model: {exc}"
        ) from None
    predicted = predicted_labels(parser, "CHECKPOINT", s)
    accuracy = float(np.mean(predicted == y)) if y.size else 0.0
    print(f"{args.split} accuracy: {accuracy:.4f} ({y.size} rows of {dataset})")
    return 0


def _recorded(
    args: argparse.Namespace, parser: argparse.ArgumentParser, info: dict, key: str
) -> str | None:
    """``info[key]``, which ``xplayers train`` records as a string (or None)."""
    value = info.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(
            parser,
            f"argument CHECKPOINT: checkpoint {str(args.checkpoint)!r} is malformed: "
            f"info[{key!r}] must be a string, got {type(value).__name__}",
        )
    return value
