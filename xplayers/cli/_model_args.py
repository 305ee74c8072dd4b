"""The model ``xplayers train`` builds from its flags, sized from the data and
refused before allocation where it would exceed MAX_PARAMETERS weights."""

from __future__ import annotations

import argparse
import inspect
import itertools
import math
from typing import Any

import numpy as np

from .. import backends
from ..defaults import (
    DEFAULT_CNN_HIDDEN,
    DEFAULT_CNN_WEIGHT_SCALE,
    DEFAULT_HIDDEN_DIMS,
    DEFAULT_WEIGHT_SCALE,
)
from ._common import UsageError, or_default

#: Weights the command line builds at most (400 MB of float32 before gradients and
#: optimizer moments; the course's networks have under a million).
MAX_PARAMETERS = 100_000_000


def dims_text(dims: tuple[int, ...]) -> str:
    """Layer sizes as the --hidden-dims flag spells them: 100,100."""
    return ",".join(map(str, dims))


def _check_model_size(
    args: argparse.Namespace, parser: argparse.ArgumentParser, input_shape: tuple, classes: int
) -> None:
    """Refuse, before allocating, a model over MAX_PARAMETERS weights: counted from
    its weight matrices (the conv's filters and the norm scales are a rounding error)."""
    from xplayers.models import ThreeLayerConvNet

    if args.model == "cnn":
        hidden = args.hidden_dims[0] if args.hidden_dims else DEFAULT_CNN_HIDDEN
        filters = inspect.signature(ThreeLayerConvNet).parameters["num_filters"].default
        pooled = filters * (input_shape[1] // 2) * (input_shape[2] // 2)
        dims = [pooled, hidden, classes]
    else:
        dims = [math.prod(input_shape), *(args.hidden_dims or DEFAULT_HIDDEN_DIMS), classes]
    count = sum(a * b + b for a, b in itertools.pairwise(dims))
    if count > MAX_PARAMETERS:
        size = count * np.dtype(args.dtype).itemsize / 2**30
        raise UsageError(
            parser,
            f"argument --hidden-dims: {dims_text(dims[1:-1])} on {args.dataset} makes "
            f"{count:,} parameters ({size:,.1f} GiB of {args.dtype} weights, and as much "
            f"again for each gradient and optimizer moment); the limit is {MAX_PARAMETERS:,}",
        )


def build_model(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    data: dict[str, Any],
    backend: str,
    device: Any,
) -> tuple[Any, str]:
    """The model the flags ask for, sized from the data, and a one-line description."""
    from xplayers.models import FullyConnectedNet, ThreeLayerConvNet

    input_shape = tuple(data["X_train"].shape[1:])
    num_classes = int(backends.to_numpy(data["y_train"]).max()) + 1
    _check_model_size(args, parser, input_shape, num_classes)
    common = dict(
        num_classes=num_classes,
        reg=args.reg,
        dtype=args.dtype,
        backend=backend,
        device=device,
        seed=args.seed,
    )
    if args.model == "cnn":
        hidden = args.hidden_dims[0] if args.hidden_dims else DEFAULT_CNN_HIDDEN
        model = ThreeLayerConvNet(
            input_dim=input_shape,
            hidden_dim=hidden,
            weight_scale=or_default(args.weight_scale, DEFAULT_CNN_WEIGHT_SCALE),
            **common,
        )
        shape = "x".join(map(str, input_shape))
        return model, f"ThreeLayerConvNet {shape} -> conv-relu-pool -> {hidden} -> {num_classes}"

    hidden_dims = list(args.hidden_dims or DEFAULT_HIDDEN_DIMS)
    input_dim = math.prod(input_shape)
    model = FullyConnectedNet(
        hidden_dims,
        input_dim=input_dim,
        dropout=args.dropout,
        normalization=None if args.normalization == "none" else args.normalization,
        weight_scale=or_default(args.weight_scale, DEFAULT_WEIGHT_SCALE),
        **common,
    )
    text = "FullyConnectedNet " + "-".join(map(str, [input_dim, *hidden_dims, num_classes]))
    extras = [args.normalization] if args.normalization != "none" else []
    if args.dropout != 1.0:
        extras.append(f"dropout keep {args.dropout:g}")
    return model, text + (f" ({', '.join(extras)})" if extras else "")
