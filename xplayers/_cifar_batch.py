"""One CIFAR-10 python batch read as data: a restricted unpickler that checks every
array it rebuilds before allocating it, then the batch's fields checked against the
format (``b'data'`` (N, 3072) uint8 with N <= 10000, ``b'labels'`` N ints in 0..9).

A pickle can run code and can ask numpy for arrays of any size from a few bytes
(``_reconstruct`` with a huge shape, ``ndarray`` with zero strides over a short
buffer). Only numpy's own array pickling is accepted, and only for arrays whose
bytes are all in the file: memory stays within a small multiple of the file size,
which is itself bounded.
"""

from __future__ import annotations

import _codecs
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

#: Rows and values per row of a CIFAR-10 batch (the real files hold 10000 rows).
MAX_ROWS = 10000
ROW_VALUES = 3 * 32 * 32
NUM_CLASSES = 10
#: The real batches are 31 MB; a file this much larger is not one.
MAX_FILE_BYTES = 64 << 20

_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
_numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric


class DatasetError(ValueError):
    """A dataset file that is not what its format says: names the file and the field."""


def _check_dtype(dtype: Any) -> np.dtype:
    """A plain bool, integer or floating dtype (no fields, no objects), else refused."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or dtype.fields is not None:
        raise pickle.UnpicklingError(f"refusing an array of dtype {dtype!r}: not a plain number")
    return dtype


def _check_shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise pickle.UnpicklingError(f"refusing an array of shape {shape!r}")
    return shape


class _CheckedArray(np.ndarray):
    """What the pickle's ``numpy.ndarray`` becomes: rebuilt only through numpy's
    ``_reconstruct`` + ``__setstate__``, whose state must carry every byte."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # ndarray(shape, dtype, buffer, offset, strides) could span terabytes
        # of a short buffer with zero strides; numpy never pickles this way.
        raise pickle.UnpicklingError("refusing numpy.ndarray(...) called directly in a pickle")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("refusing an array state that is not numpy's")
        shape, dtype, _, raw = state[-4:]
        shape, dtype = _check_shape(shape), _check_dtype(dtype)
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dtype.itemsize:
            size = len(raw) if isinstance(raw, bytes) else type(raw).__name__
            raise pickle.UnpicklingError(
                f"refusing an array of shape {shape} {dtype} from {size} bytes of data"
            )
        super().__setstate__(state)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') then its
    # state; any other shape would allocate before the state is seen.
    if subtype is not _CheckedArray or shape != (0,):
        raise pickle.UnpicklingError(f"refusing _reconstruct({subtype!r}, {shape!r}, ...)")
    return _multiarray._reconstruct(_CheckedArray, shape, dtype)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Protocol 5's array: a view of bytes in the file, their count checked."""
    shape, dtype = _check_shape(shape), _check_dtype(dtype)
    size = memoryview(buffer).nbytes
    if size != math.prod(shape) * dtype.itemsize:
        raise pickle.UnpicklingError(
            f"refusing an array of shape {shape} {dtype} from {size} bytes"
        )
    return _numeric._frombuffer(buffer, dtype, shape, order)


def _scalar(dtype: Any, data: Any) -> Any:
    return _multiarray.scalar(_check_dtype(dtype), data)


def _encode(text: Any, encoding: Any) -> bytes:
    # Protocol 2 from Python 3 writes bytes as latin-1 text; no other codec.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r})")
    return _codecs.encode(text, encoding)


#: The only globals a batch may name: numpy's array pickling, each checked.
_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _CheckedArray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _encode,
}
for _core in ("numpy.core", "numpy._core"):  # NumPy 2 renamed numpy.core
    _GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
    _GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and checked numpy arrays, and refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only numpy arrays, "
                "lists and strings"
            )
        return found


def _unpickle(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(
            f"CIFAR-10 batch {str(path)!r} is {size:,} bytes; a batch is about 31 MB "
            f"(at most {MAX_FILE_BYTES:,} read)"
        )
    with open(path, "rb") as f:
        try:
            # 'bytes' keeps the Python 2 strings of the original files as bytes
            # (keys b'data', b'labels'); arrays load the same either way.
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
        except Exception as exc:  # whatever a malformed pickle raises is a data error
            raise DatasetError(
                f"CIFAR-10 batch {str(path)!r} is not a python batch of numpy arrays "
                f"({type(exc).__name__}: {exc})"
            ) from exc


def _field(batch: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DatasetError(
        f"CIFAR-10 batch {str(path)!r} has no {key!r} field (it has {sorted(map(repr, batch))})"
    )


def _images(data: Any, path: Path) -> np.ndarray:
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        what = (
            f"a {data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DatasetError(
            f"CIFAR-10 batch {str(path)!r}: field 'data' must be an (N, {ROW_VALUES}) uint8 "
            f"array, got {what}"
        )
    rows, cols = data.shape
    if cols != ROW_VALUES or not 1 <= rows <= MAX_ROWS:
        raise DatasetError(
            f"CIFAR-10 batch {str(path)!r}: field 'data' has shape {data.shape}; expected "
            f"(N, {ROW_VALUES}) with 1 <= N <= {MAX_ROWS}"
        )
    return data.view(np.ndarray)


def _labels(labels: Any, rows: int, path: Path) -> np.ndarray:
    where = f"CIFAR-10 batch {str(path)!r}: field 'labels'"
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DatasetError(f"{where} must hold integers, got {labels.dtype} {labels.shape}")
        values = labels.tolist()
    elif isinstance(labels, (list, tuple)):
        values = labels
    else:
        raise DatasetError(f"{where} must be a list of integers, got {type(labels).__name__}")
    if len(values) != rows:
        raise DatasetError(f"{where} holds {len(values)} labels for {rows} images")
    for i, v in enumerate(values):
        # bool is an int, a float label would be truncated: neither is a class.
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v < NUM_CLASSES:
            raise DatasetError(
                f"{where}: label {i} is {v!r}; expected an integer class in 0..{NUM_CLASSES - 1}"
            )
    return np.array(values, dtype=np.int64)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> X: (N, 3, 32, 32) uint8 NCHW, y: (N,) int64 in 0..9.

    FileNotFoundError for a missing file, DatasetError (a ValueError naming the
    file and field) for anything that is not a batch.
    """
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        raise DatasetError(
            f"CIFAR-10 batch {str(path)!r} holds a {type(batch).__name__}, not a dict"
        )
    data = _images(_field(batch, "data", path), path)
    labels = _labels(_field(batch, "labels", path), data.shape[0], path)
    # Each row is the red plane, then green, then blue, each 32x32 row-major:
    # exactly C-order (3, 32, 32), so the reshape is NCHW with no transpose.
    return data.reshape(-1, 3, 32, 32), labels
