"""Fuzzing the checkpoint loader: mutated valid checkpoints either load or raise
CheckpointError, never another exception, never a big allocation.

``run(count, seed, folder)`` writes a few valid checkpoints (fully connected
with batch and layer norm, TwoLayerNet, the conv net, a model-only file; Adam,
SGD+momentum, RMSProp and SGD states), mutates them ``count`` times (bytes
anywhere, in the header or in the data; the metadata JSON as text and value
by value, each value nudged, replaced, wrapped or deleted, keys added; a
tensor's dtype, shape or offsets) and loads each result with ``load_model`` and
``Solver.resume``; a file that loads must then score (``model.loss``) and
train a step. It returns the outcome counts, the largest traced allocation
and the slowest load. ``tests/test_checkpoint_fuzz.py`` runs 200 seeded
mutations; for a bigger run, by hand (the address space capped, so that a
big allocation fails loudly instead of swapping)::

    python tests/checkpoint_fuzz.py --count 20000 --seed 1 --memory-gib 3
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import struct
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import xplayers
from xplayers import checkpoint
from xplayers.checkpoint import CheckpointError
from xplayers.data import get_digits_data
from xplayers.models import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet
from xplayers.solver import Solver, TrainingDiverged

_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1,
    3,
    0.5,
    -0.0,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    2**31,
    2**32,
    2**40,
    2**63,
    2**64,
    2**128,
    -(2**63),
    10**400,
    "",
    "x",
    "float64",
    "../../evil",
    "PCG64",
    [],
    [0],
    [1e6, 1e6],
    [16, 8],
    {},
    {"a": 1},
    [[[[0]]]],
]
_DTYPES = ["F16", "F32", "F64", "BF16", "F8_E4M3", "F8_E5M2", "I8", "U8", "I64", "BOOL", "C64", "Q"]


def _bases(folder: Path) -> list[tuple[Path, Callable[[], Any], dict]]:
    """Valid checkpoints: (path, a fresh model of its kind, the data it trained on)."""
    flat = get_digits_data(image=False)
    image = get_digits_data(image=True)
    small = {k: v[:60] for k, v in flat.items() if k[2:] in ("train", "val")}
    small_img = {k: v[:60] for k, v in image.items() if k[2:] in ("train", "val")}
    kinds = [
        (
            lambda: FullyConnectedNet(
                [8, 6], input_dim=64, normalization="batchnorm", seed=0, backend="numpy"
            ),
            small,
            "adam",
        ),
        (
            lambda: FullyConnectedNet(
                [7],
                input_dim=64,
                normalization="layernorm",
                dropout=0.8,
                seed=1,
                backend="numpy",
                dtype="float64",
            ),
            small,
            "sgd_momentum",
        ),
        (
            lambda: TwoLayerNet(input_dim=64, hidden_dim=5, seed=2, backend="numpy"),
            small,
            "rmsprop",
        ),
        (
            lambda: ThreeLayerConvNet(
                input_dim=(1, 8, 8),
                num_filters=2,
                filter_size=3,
                hidden_dim=4,
                seed=3,
                backend="numpy",
            ),
            small_img,
            "sgd",
        ),
    ]
    out = []
    for i, (make, data, rule) in enumerate(kinds):
        solver = Solver(
            make(),
            data,
            update_rule=rule,
            num_epochs=1,
            batch_size=20,
            seed=i,
            checkpoint_name=folder / f"base{i}",
            verbose=False,
        )
        solver.train()
        out.append((solver.last_checkpoint, make, data))
    path = checkpoint.save(folder / "model_only.safetensors", kinds[0][0]())
    out.append((path, kinds[0][0], small))
    return out


def _split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + body


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a JSON document."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            out += _paths(v, (*prefix, i))
    return out


def _nudged(value: Any, rng: random.Random) -> Any:
    """A value of the same kind, a little or a lot off: what a subtle forgery changes."""
    if isinstance(value, bool) or value is None:
        return rng.choice([not value, None, 0, 1])
    if isinstance(value, int):
        return rng.choice([value + 1, value - 1, -value, value * 2, 0, value**2, 2**63, 2**64])
    if isinstance(value, float):
        return rng.choice([value * 2, -value, 0.0, value + 1, value * 1e300, float("nan")])
    if isinstance(value, str):
        return rng.choice([value + "x", value[:-1], value.upper(), "W1", "b3", "adam", "sgd"])
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        return rng.choice([value[:i] + value[i + 1 :], [*value, value[i]], value[::-1], []])
    return rng.choice(_VALUES)


def _edit_json(meta: dict, rng: random.Random) -> None:
    """Nudge, replace, delete, wrap or add one value somewhere in ``meta``."""
    path = rng.choice(_paths(meta)[1:])
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    action = rng.choice(["nudge", "nudge", "nudge", "replace", "delete", "wrap", "add"])
    if action == "nudge":
        parent[key] = _nudged(parent[key], rng)
    elif action == "replace":
        parent[key] = rng.choice(_VALUES)
    elif action == "delete":
        del parent[key]
    elif action == "wrap":
        parent[key] = [parent[key]]
    elif isinstance(parent, dict):
        extra = rng.choice(["checkpoint_name", "keep_checkpoints", "x", "t", "m", "comm"])
        parent[extra] = rng.choice(_VALUES)
    else:
        parent.append(rng.choice(_VALUES))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random change to a safetensors checkpoint's bytes."""
    header, body = _split(data)
    kinds = ["bytes", "header_bytes", "data_bytes", "cut", "meta_text", "tensor_entry"]
    kind = rng.choice([*kinds, "meta_value", "meta_value", "meta_value", "tensor_entry"])
    if kind.endswith("bytes"):
        out = bytearray(data)
        start = len(data) - len(body) if kind == "data_bytes" else 0
        stop = len(data) - len(body) if kind == "header_bytes" else len(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(start, stop)] = rng.randrange(256)
        return bytes(out)
    if kind == "cut":
        return data[: rng.randrange(len(data))]
    if kind == "meta_text":
        text = header["__metadata__"]["xplayers"]
        i = rng.randrange(len(text))
        text = (
            text[:i]
            + rng.choice(["", "[", "{", "]", "}", ",", '"', "9" * 30, "-"])
            + text[i + rng.randint(0, 3) :]
        )
        header["__metadata__"]["xplayers"] = text
        return _join(header, body)
    if kind == "meta_value":
        meta = json.loads(header["__metadata__"]["xplayers"])
        for _ in range(rng.randint(1, 3)):
            _edit_json(meta, rng)
        header["__metadata__"]["xplayers"] = json.dumps(meta)
        return _join(header, body)
    name = rng.choice([k for k in header if k != "__metadata__"])
    entry = header[name]
    field = rng.choice(["dtype", "shape", "shape", "offsets"])
    if field == "dtype":
        entry["dtype"] = rng.choice(_DTYPES)
        if rng.random() < 0.5:  # keep the byte count right, so that safetensors accepts it
            size = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8, "C64": 8}.get(
                entry["dtype"], 1
            )
            entry["shape"] = [(entry["data_offsets"][1] - entry["data_offsets"][0]) // size]
    elif field == "shape":
        entry["shape"] = rng.choice(
            [
                [],
                [0],
                [1],
                [1, 1],
                [3, 3],
                [2**31, 2**31],
                [1] * 9,
                list(reversed(entry["shape"])),
                [*entry["shape"], 1],
            ]
        )
    else:
        entry["data_offsets"] = [0, rng.choice([0, 4, len(body), len(body) + 8])]
    return _join(header, body)


def _try(path: Path, make: Callable[[], Any], data: dict) -> dict[str, str]:
    """How loading ``path`` each way ends: 'loaded', 'CheckpointError', or a failure."""
    outcomes = {}
    for way, load in (
        ("load_model", lambda: xplayers.load_model(path, backend="numpy").loss(data["X_val"][:3])),
        ("resume", lambda: Solver.resume(path, make(), data, verbose=False).step()),
    ):
        try:
            load()
            outcomes[way] = "loaded"
        except TrainingDiverged:  # loaded, and its numbers overflowed: a run's own outcome
            outcomes[way] = "loaded"
        except CheckpointError as exc:
            message = str(exc)
            good = "\n" not in message and len(message) < 2000 and str(path) in message
            outcomes[way] = "CheckpointError" if good else f"bad message: {message[:200]!r}"
        except Exception as exc:  # the failures this fuzzer looks for
            outcomes[way] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return outcomes


def run(count: int, seed: int, folder: Path) -> dict[str, Any]:
    """Outcome counts of ``count`` mutations (per way of loading), the failures, the
    largest traced allocation and the slowest case."""
    rng = random.Random(seed)
    bases = _bases(folder)
    originals = [p.read_bytes() for p, _, _ in bases]
    outcomes: collections.Counter = collections.Counter()
    failures: list[str] = []
    peak, slowest = 0, 0.0
    for i in range(count):
        b = rng.randrange(len(bases))
        path = folder / f"m{i % 50}.safetensors"
        path.write_bytes(mutate(originals[b], rng))
        tracemalloc.start()
        start = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = _try(path, *bases[b][1:])
        slowest = max(slowest, time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        for way, outcome in result.items():
            known = outcome in ("loaded", "CheckpointError")
            outcomes[f"{way} {outcome if known else 'other'}"] += 1
            if not known:
                failures.append(f"mutation {i} of base {b}, {way}: {outcome}")
    return {
        "files": count,
        "outcomes": dict(sorted(outcomes.items())),
        "failures": failures,
        "peak_bytes": peak,
        "slowest_s": round(slowest, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gib", type=float, default=3.0, help="address-space cap")
    args = parser.parse_args()
    import resource

    cap = int(args.memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    with tempfile.TemporaryDirectory() as folder:
        result = run(args.count, args.seed, Path(folder))
    for line in result.pop("failures")[:50]:
        print(line)
    print(json.dumps(result))
    return 0 if not any(k.endswith("other") for k in result["outcomes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
