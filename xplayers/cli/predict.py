"""``xplayers predict CHECKPOINT INPUT.npy``: a saved model's labels (or scores) for inputs.

INPUT.npy is data: its header (shape, dtype) is checked against the file's size
and the model's input before anything is allocated, and it is never unpickled.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._common import UsageError, check_output_path
from ._inference import (
    add_model_arguments,
    load_checkpoint_model,
    predicted_labels,
    row_shape_error,
    rows_text,
    scores,
)

_INPUT = "INPUT.npy"
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``predict`` subcommand's parser."""
    p = sub.add_parser(
        "predict",
        help="predict labels for inputs with a checkpoint's model",
        description="Load the model of a checkpoint (its best parameters) and predict the "
        "class of each row of INPUT.npy, which holds inputs exactly as the model takes them "
        "(prepared like the training data: same shape per row, mean subtracted). Integer and "
        "floating inputs are converted to the model's dtype; bool, complex, object and "
        "structured arrays are refused, and so are rows with NaN or infinite values.",
    )
    p.set_defaults(handler=run, subparser=p)
    add_model_arguments(p)
    p.add_argument("input", type=Path, metavar=_INPUT, help="(N, ...) inputs")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="OUT.npy",
        help="write the (N,) int64 labels to this .npy file, in an existing folder "
        "(default: print one label per line)",
    )
    p.add_argument(
        "--scores",
        action="store_true",
        help="write the (N, C) class scores to --output instead of the labels",
    )


def _fail(parser: argparse.ArgumentParser, path: Path, why: str) -> UsageError:
    return UsageError(parser, f"argument {_INPUT}: {str(path)!r} {why}")


def _header(parser: argparse.ArgumentParser, path: Path, f: Any) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from the .npy header of ``f``, which is left at the data."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise ValueError(f"format version {version[0]}.{version[1]} (structured arrays)")
        shape, _, dtype = _HEADER_READERS[version](f)
    except (ValueError, EOFError) as exc:
        raise _fail(parser, path, f"is not a .npy array file of numbers: {exc}") from None
    # Real integers and floats (any width or byte order) convert to the model's
    # dtype; bool and complex have no meaning as pixels, objects need a pickle.
    if dtype.kind not in "iuf":
        raise _fail(parser, path, f"holds {dtype} values; predict takes integer or float inputs")
    if len(shape) < 2:
        raise _fail(parser, path, f"holds an array of shape {shape}; expected (N, ...) rows")
    return shape, dtype


def _read_input(parser: argparse.ArgumentParser, path: Path, model: Any) -> np.ndarray:
    """The rows of INPUT.npy as the model's dtype, every check made before reading them."""
    try:
        f = open(path, "rb")  # closed by the with below, after the array is read
    except FileNotFoundError:
        raise _fail(parser, path, "does not exist") from None
    except OSError as exc:
        raise _fail(parser, path, f"cannot be read: {exc.strerror}") from None
    with f:
        shape, dtype = _header(parser, path, f)
        why = row_shape_error(model, shape[1:])
        if why is not None:
            raise _fail(parser, path, f"holds {why}")
        need, have = math.prod(shape) * dtype.itemsize, path.stat().st_size - f.tell()
        if have != need:
            raise _fail(
                parser,
                path,
                f"holds {have:,} bytes of data where its header's shape {shape} of {dtype} "
                f"needs {need:,}: truncated, or the header is wrong",
            )
        f.seek(0)
        X = np.lib.format.read_array(f, allow_pickle=False)
    with np.errstate(over="ignore"):  # values beyond the model's dtype: reported below
        X = X.astype(model.dtype, copy=False)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=tuple(range(1, X.ndim))))
    if bad.size:
        raise _fail(
            parser,
            path,
            f"has NaN or infinite values (as {model.dtype}) in {rows_text(bad, len(X))}; "
            "no class can be predicted for them",
        )
    return X


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.scores and args.output is None:
        raise UsageError(parser, "argument --scores: give --output OUT.npy to write them to")
    check_output_path(parser, "--output", args.output, (".npy",))
    model = load_checkpoint_model(args, parser)
    X = _read_input(parser, args.input, model)
    s = scores(model, X, args.batch_size)
    labels = predicted_labels(parser, _INPUT, s)
    if args.output is None:
        if labels.size:
            print("\n".join(map(str, labels.tolist())))
        return 0
    with open(args.output, "wb") as f:  # np.save(name) would add .npy to a .NPY name
        np.save(f, s if args.scores else labels)
    what = f"scores {s.shape}" if args.scores else f"{labels.size} labels"
    print(f"wrote {what} to {args.output}")
    return 0
