"""``xplayers train``: train a model with the Solver and report its accuracy."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import backends
from ..defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CNN_HIDDEN,
    DEFAULT_CNN_WEIGHT_SCALE,
    DEFAULT_EPOCHS,
    DEFAULT_HIDDEN_DIMS,
    DEFAULT_LEARNING_RATES,
    DEFAULT_UPDATE_RULE,
    DEFAULT_WEIGHT_SCALE,
    DTYPES,
    NORMALIZATIONS,
    UPDATE_RULES,
)
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    PLOT_SUFFIXES,
    UsageError,
    add_placement_arguments,
    check_output_path,
    decay,
    hidden_dims,
    keep_probability,
    learning_rate,
    non_negative_float,
    non_negative_int,
    or_default,
    positive_int,
    resolve_placement,
)
from ._model_args import build_model, dims_text
from ._resuming import (
    check_checkpoint_destination,
    checkpoint_destination,
    interrupted_message,
    resumed_solver,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand's parser."""
    t = sub.add_parser(
        "train",
        help="train a model and report its accuracy",
        description="Train a model with the Solver and print its train/val/test accuracy.",
    )
    t.set_defaults(handler=run, subparser=t)

    what = t.add_argument_group("model and data")
    what.add_argument(
        "--model",
        choices=("fc", "cnn"),
        default="fc",
        help="network to train (default: %(default)s)",
    )
    what.add_argument(
        "--dataset",
        choices=("digits", "cifar10"),
        default="digits",
        help="digits: the bundled 8x8 handwritten digits, no download (the default); "
        "cifar10 needs --data-dir",
    )
    what.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="CIFAR-10 folder holding cifar-10-batches-py (or that folder itself)",
    )
    what.add_argument(
        "--hidden-dims",
        type=hidden_dims,
        default=None,
        help=f"hidden layer sizes, e.g. 100,100 (fc default {dims_text(DEFAULT_HIDDEN_DIMS)}; "
        f"cnn: one size, default {DEFAULT_CNN_HIDDEN})",
    )
    what.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default="none",
        help="fc normalisation layers (default: %(default)s)",
    )
    what.add_argument(
        "--dropout",
        type=keep_probability,
        default=1.0,
        help="fc dropout KEEP probability (default: 1, no dropout)",
    )
    what.add_argument(
        "--reg", type=non_negative_float, default=0.0, help="L2 regularisation (default: 0)"
    )
    what.add_argument(
        "--weight-scale",
        type=non_negative_float,
        default=None,
        help=f"std of the initial weights (default: fc {DEFAULT_WEIGHT_SCALE:g}, "
        f"cnn {DEFAULT_CNN_WEIGHT_SCALE:g})",
    )
    what.add_argument(
        "--dtype", choices=DTYPES, default="float32", help="floating dtype (default: %(default)s)"
    )

    how = t.add_argument_group("training")
    add_placement_arguments(how, "train")
    # The optimiser settings default to None so that --resume can tell which
    # ones were given; _training_settings fills in the defaults.
    how.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"epochs in all (default: {DEFAULT_EPOCHS}; with --resume, the checkpoint's)",
    )
    how.add_argument(
        "--batch-size", type=positive_int, default=None, help=f"(default: {DEFAULT_BATCH_SIZE})"
    )
    how.add_argument(
        "--update-rule",
        choices=UPDATE_RULES,
        default=None,
        help=f"optimizer (default: {DEFAULT_UPDATE_RULE})",
    )
    rates = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LEARNING_RATES.items())
    how.add_argument(
        "--lr", type=learning_rate, default=None, help=f"learning rate (default: {rates})"
    )
    how.add_argument(
        "--lr-decay",
        type=decay,
        default=None,
        help="learning-rate factor applied after each epoch (default: 1)",
    )
    how.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the initial weights and the minibatch order (default: 0)",
    )
    how.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training over the processes of mpiexec or torchrun (the engine "
        "comes from the launcher); --batch-size is the global batch; rank 0 prints and saves",
    )
    how.add_argument(
        "--quiet", action="store_true", help="no progress bar or per-epoch lines, just the results"
    )

    out = t.add_argument_group("output")
    out.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="NAME",
        help="after every epoch k write the checkpoint NAME_epoch_k.safetensors",
    )
    out.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="FILE",
        help="continue the run saved in checkpoint FILE (give the same model and data flags; "
        "--epochs may extend it); it keeps saving under FILE's name unless --checkpoint "
        "says otherwise",
    )
    out.add_argument(
        "--plot", type=Path, default=None, metavar="FILE.png", help="write loss/accuracy curves"
    )


def _check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Combinations argparse cannot express."""
    if args.dataset == "cifar10" and args.data_dir is None:
        raise UsageError(
            parser,
            "argument --data-dir is required with --dataset cifar10: the folder holding "
            "cifar-10-batches-py (download https://www.cs.toronto.edu/~kriz/cifar.html)",
        )
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(parser, f"argument --data-dir: folder {str(args.data_dir)!r} not found")
    if args.model == "cnn":
        if args.hidden_dims is not None and len(args.hidden_dims) != 1:
            raise UsageError(
                parser, "argument --hidden-dims: the cnn has one hidden layer; give one size"
            )
        if args.normalization != "none" or args.dropout != 1.0:
            raise UsageError(
                parser, "arguments --normalization and --dropout apply to --model fc only"
            )
    if args.resume is not None:
        if not args.resume.is_file():
            raise UsageError(
                parser, f"argument --resume: checkpoint {str(args.resume)!r} not found"
            )
        # The optimiser state (moments, decayed rate) continues from the file;
        # a new rule or rate would silently not apply, so refuse it.
        fixed = [
            flag
            for flag, value in (
                ("--update-rule", args.update_rule),
                ("--lr", args.lr),
                ("--lr-decay", args.lr_decay),
                ("--batch-size", args.batch_size),
            )
            if value is not None
        ]
        if fixed:
            raise UsageError(
                parser,
                f"argument --resume: {', '.join(fixed)} cannot change when resuming; "
                "the run continues with the checkpoint's optimizer settings",
            )
    # Where checkpoints go: --checkpoint, or on with --resume's name; the rule for
    # folders of epoch files comes once the run's epochs are known.
    name, flag = checkpoint_destination(args)
    check_output_path(parser, flag, None if name is None else Path(name))
    check_output_path(parser, "--plot", args.plot, PLOT_SUFFIXES)


def load_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    from xplayers import data

    if args.dataset == "digits":
        return data.get_digits_data()
    try:
        return data.get_cifar10_data(args.data_dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise UsageError(parser, f"argument --data-dir: cannot read CIFAR-10: {exc}") from None
    except ValueError as exc:  # a DatasetError, or batches too short for the split
        raise UsageError(parser, f"argument --data-dir: {exc}") from None


def _fresh_solver(
    args: argparse.Namespace, model: Any, data: dict[str, Any], say: Any, **common: Any
) -> Any:
    from xplayers.solver import Solver

    rule = or_default(args.update_rule, DEFAULT_UPDATE_RULE)
    lr = or_default(args.lr, DEFAULT_LEARNING_RATES[rule])
    epochs = or_default(args.epochs, DEFAULT_EPOCHS)
    batch = or_default(args.batch_size, DEFAULT_BATCH_SIZE)
    say(f"training: {rule} lr={lr:g}, batch {batch}, {epochs} epochs, seed {args.seed}")
    return Solver(
        model,
        data,
        update_rule=rule,
        optim_config={"learning_rate": lr},
        lr_decay=or_default(args.lr_decay, 1.0),
        batch_size=batch,
        num_epochs=epochs,
        seed=args.seed,
        **common,
    )


def _communicator(args: argparse.Namespace) -> Any:
    """With --distributed, the launcher's communicator; ranks but 0 print nothing."""
    if not args.distributed:
        return None
    from xplayers import distributed

    comm = distributed.init("auto")
    if comm.rank != 0:
        sys.stdout = open(os.devnull, "w")  # stays open: the process ends after the run
    return comm


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train, report accuracy, and write the plot / checkpoints asked for."""
    _check_args(args, parser)
    comm = _communicator(args)
    backend, device = resolve_placement(args, parser)
    adapter = backends.get_backend(backend)
    if not adapter.has_dtype(args.dtype, device):
        raise UsageError(
            parser,
            f"argument --dtype: {backend} device {adapter.device_label(device)!r} holds no "
            f"{args.dtype} arrays; use --dtype float32 or another --device",
        )
    from xplayers.solver import TrainingDiverged

    say = (lambda *a, **k: None) if args.quiet else print
    say(f"backend: {backend} (device: {adapter.device_name(device)})")

    data = load_data(args, parser)
    n_train = len(data["y_train"])
    if args.batch_size is not None and args.batch_size > n_train:
        raise UsageError(
            parser,
            f"argument --batch-size: {args.batch_size} is larger than the {n_train} "
            f"training rows of {args.dataset}",
        )
    model, model_text = build_model(args, parser, data, backend, device)
    n_test = len(data["y_test"]) if "y_test" in data else 0
    say(f"model: {model_text}, {args.dtype}")
    say(
        f"data: {args.dataset}, {n_train} train / {len(data['y_val'])} val"
        + (f" / {n_test} test" if n_test else "")
    )

    name, flag = checkpoint_destination(args)
    common = dict(
        checkpoint_name=None if name is None else str(name),
        checkpoint_info={"dataset": args.dataset, "data_dir": _text_or_none(args.data_dir)},
        verbose=not args.quiet,
        comm=comm,
    )
    if args.resume is not None:
        solver = resumed_solver(args, parser, model, data, say, **common)
    else:
        solver = _fresh_solver(args, model, data, say, **common)
    if name is not None:
        check_checkpoint_destination(parser, flag, name, solver.epoch, solver.num_epochs)

    start, first_iteration = time.perf_counter(), solver.iteration
    try:
        # A diverging run overflows before the Solver sees the NaN; its report
        # below says so once, instead of NumPy warning at every operation.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            solver.train()
    except TrainingDiverged as exc:
        print(
            f"xplayers train: error: training diverged: {exc}\n"
            "hint: lower --lr or --weight-scale, or try --update-rule adam",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(interrupted_message(args, solver), file=sys.stderr)
        return EXIT_INTERRUPTED
    elapsed = time.perf_counter() - start

    # The Solver restored the best-validation params; report on those.
    print(f"train accuracy: {solver.check_accuracy(data['X_train'], data['y_train']):.4f}")
    print(f"val accuracy:   {solver.check_accuracy(data['X_val'], data['y_val']):.4f}")
    if n_test:
        print(f"test accuracy:  {solver.check_accuracy(data['X_test'], data['y_test']):.4f}")
    samples = (solver.iteration - first_iteration) * solver.batch_size
    print(
        f"training time:  {elapsed:.1f} s ({samples / max(elapsed, 1e-9):,.0f} samples/s, "
        "accuracy checks included)"
    )
    if solver.last_checkpoint is not None:
        print(f"checkpoint:     {solver.last_checkpoint}")
    if args.plot is not None and (comm is None or comm.rank == 0):
        from xplayers.plotting import plot_history

        where = backends.device_label(next(iter(model.params.values())))
        title = f"{model_text} on {args.dataset} ({backend} {where}, {solver.update_rule_name})"
        print(f"plot:           {plot_history(solver, args.plot, title=title)}")
    return 0


def _text_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)
