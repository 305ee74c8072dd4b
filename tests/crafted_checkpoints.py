"""Hostile checkpoints: a valid file with one field changed, as an attacker would write it.

``CRAFTS`` maps a name to ``(change, field)``: ``change(meta, tensors, tmp)`` edits the
metadata JSON and the tensors of a valid solver checkpoint in place (and may return an
edit of the JSON text, for what json.dumps cannot write), and every loader
must refuse the result with a CheckpointError whose message holds ``field``.
``write_raw`` writes tensors of dtypes NumPy cannot hold (BF16, F8_E4M3).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

Meta = dict[str, Any]
Tensors = dict[str, Any]  # name -> np.ndarray, or (safetensors dtype, shape, raw bytes)


def read(path: str | Path) -> tuple[Meta, Tensors]:
    """The metadata JSON and the tensors of a checkpoint."""
    with safetensors.safe_open(str(path), "numpy") as f:
        meta = json.loads(f.metadata()["xplayers"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return meta, tensors


def write(path: str | Path, meta: Meta | str, tensors: Tensors) -> Path:
    """A safetensors file of ``tensors`` with ``meta`` (JSON text as given, or dumped)."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    if all(isinstance(v, np.ndarray) for v in tensors.values()):
        Path(path).write_bytes(safetensors.numpy.save(tensors, metadata={"xplayers": text}))
    else:
        write_raw(path, text, tensors)
    return Path(path)


_DTYPES = {"float16": "F16", "float32": "F32", "float64": "F64", "complex64": "C64"}


def write_raw(path: str | Path, text: str, tensors: Tensors) -> None:
    """The safetensors layout by hand: 8-byte header length, JSON header, data."""
    header: dict[str, Any] = {"__metadata__": {"xplayers": text}}
    blobs, offset = [], 0
    for name, t in tensors.items():
        if isinstance(t, np.ndarray):
            t = (_DTYPES[t.dtype.name], list(t.shape), np.ascontiguousarray(t).tobytes())
        dtype, shape, data = t
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


_DEEP = "@deep@"  # a placeholder for a list nested too deep for json.dumps to write


def _nested(depth: int) -> Callable[[Meta, Tensors, Path], Callable[[str], str]]:
    def change(meta: Meta, tensors: Tensors, tmp: Path) -> Callable[[str], str]:
        meta["info"]["deep"] = _DEEP
        return lambda text: text.replace(f'"{_DEEP}"', "[" * depth + "0" + "]" * depth)

    return change


def _set(*keys: str, value: Any) -> Callable[[Meta, Tensors, Path], None]:
    def change(meta: Meta, tensors: Tensors, tmp: Path) -> None:
        obj = meta
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value

    return change


def _settings_write_elsewhere(meta: Meta, tensors: Tensors, tmp: Path) -> None:
    meta["solver"]["settings"]["checkpoint_name"] = str(tmp / "elsewhere" / "x")
    meta["solver"]["settings"]["keep_checkpoints"] = False


def _raw_dtype(dtype: str) -> Callable[[Meta, Tensors, Path], None]:
    def change(meta: Meta, tensors: Tensors, tmp: Path) -> None:
        w = tensors["params/W1"]
        tensors["params/W1"] = (dtype, list(w.shape), bytes(w.size * (2 if "16" in dtype else 1)))

    return change


def _complex_best(meta: Meta, tensors: Tensors, tmp: Path) -> None:
    tensors["best/W1"] = np.ones((3, 3), dtype=np.complex64)


def _no_optim_entry(meta: Meta, tensors: Tensors, tmp: Path) -> None:
    del meta["solver"]["optim_configs"]["b3"]
    for k in [k for k in tensors if k.startswith("optim/b3/")]:
        del tensors[k]


def _value_for_a_state_array(meta: Meta, tensors: Tensors, tmp: Path) -> None:
    config = meta["solver"]["optim_configs"]["W1"]
    config["arrays"].remove("m")
    config["values"]["m"] = 0.5
    del tensors["optim/W1/m"]


def _big_best_norm(meta: Meta, tensors: Tensors, tmp: Path) -> None:
    tensors["best_norm/0/running_mean"] = np.zeros(7, dtype=np.float32)


def _two_hundred_thousand_layers(meta: Meta, tensors: Tensors, tmp: Path) -> None:
    meta["model"]["init_args"]["hidden_dims"] = [5] * 200_000


#: name -> (change, a word the refusal names)
CRAFTS: dict[str, tuple[Callable[[Meta, Tensors, Path], Any], str]] = {
    "settings_write_elsewhere": (_settings_write_elsewhere, "checkpoint_name"),
    "settings_batch_size_huge": (_set("solver", "settings", "batch_size", value=10**12), "batch"),
    "settings_print_every_0": (_set("solver", "settings", "print_every", value=0), "print_every"),
    "settings_lr_decay_text": (_set("solver", "settings", "lr_decay", value="x"), "lr_decay"),
    "update_rule_unknown": (_set("solver", "update_rule", value="evil"), "update_rule"),
    "hidden_dims_1e6": (
        _set("model", "init_args", "hidden_dims", value=[1e6, 1e6]),
        "init_args",
    ),
    "hidden_dims_12000": (
        _set("model", "init_args", "hidden_dims", value=[12000, 12000]),
        "init_args",
    ),
    "layers_200000": (_two_hundred_thousand_layers, "init_args"),
    "metadata_nested_1000": (_nested(1000), "nested"),
    "tensor_bf16": (_raw_dtype("BF16"), "BF16"),
    "tensor_f8": (_raw_dtype("F8_E4M3"), "F8_E4M3"),
    "rng_uinteger_2_40": (_set("solver", "rng", "batch", "uinteger", value=2**40), "uinteger"),
    "rng_state_2_200": (_set("solver", "rng", "eval", "state", "inc", value=2**200), "inc"),
    "best_complex64": (_complex_best, "best"),
    "best_norm_shape": (_big_best_norm, "best_norm"),
    "optim_entry_missing": (_no_optim_entry, "b3"),
    "optim_value_text": (
        _set("solver", "optim_configs", "W1", "values", "learning_rate", value="x"),
        "learning_rate",
    ),
    "optim_beta2_above_1": (
        _set("solver", "optim_configs", "W2", "values", "beta2", value=1.5),
        "beta2",
    ),
    "optim_state_as_a_number": (_value_for_a_state_array, "['m']"),
    "history_huge_int": (_set("solver", "loss_history", value=[10**400]), "loss"),
    "acc_histories_differ": (_set("solver", "acc_iterations", value=[]), "acc_iterations"),
}


def craft(good: Path, name: str, tmp: Path) -> Path:
    """``good`` with the change ``name`` applied, written next to it."""
    meta, tensors = read(good)
    edit = CRAFTS[name][0](meta, tensors, tmp)
    text = json.dumps(meta)
    return write(tmp / f"{name}.safetensors", text if edit is None else edit(text), tensors)
