"""xplayers: CS231n layers with explicit backprop, written once against the
Python Array API standard, so one code base runs on NumPy, CuPy, PyTorch and
array-api-strict. The namespace of every computation comes from its inputs.
"""

from __future__ import annotations

from .backends import (
    BackendError,
    asarray,
    available_backends,
    default_backend,
    device_of,
    get_namespace,
    to_backend,
    to_numpy,
)
from .checkpoint import CheckpointError, load_model

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "CheckpointError",
    "__version__",
    "asarray",
    "available_backends",
    "default_backend",
    "device_of",
    "get_namespace",
    "load_model",
    "to_backend",
    "to_numpy",
]
