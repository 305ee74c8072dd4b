"""xplayers: CS231n layers with explicit backprop, written once against the
Python Array API standard, so one code base runs on NumPy, CuPy, PyTorch and
array-api-strict. The namespace of every computation comes from its inputs.

Subpackages (``xplayers.layers``, ``xplayers.distributed``,
``xplayers.checkpoint``, ...) load on first use, so ``import xplayers`` stays
fast and ``xplayers.distributed.init()`` works without importing it first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def _load_checkout_backends() -> None:
    """Import ``xplayers.backends`` from a source checkout.

    ``backends/`` sits beside this package in the repository and installs
    inside it; a checkout imported directly (``python -m pytest``, a script
    run with the checkout on ``sys.path``) has no ``xplayers/backends``, so
    the sibling folder is loaded under its installed name."""
    here = Path(__file__).resolve().parent
    sibling = here.parent / "backends" / "__init__.py"
    if (here / "backends").is_dir() or not sibling.is_file():
        return
    spec = importlib.util.spec_from_file_location(
        f"{__name__}.backends", sibling, submodule_search_locations=[str(sibling.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_load_checkout_backends()

from .backends import (  # noqa: E402 - after the checkout's backends are in place
    BackendError,
    asarray,
    available_backends,
    default_backend,
    device_of,
    get_namespace,
    to_backend,
    to_numpy,
)

__version__ = "0.1.0"

#: Public subpackages and modules, imported on first attribute access.
SUBMODULES = (
    "backends",
    "checkpoint",
    "cli",
    "data",
    "defaults",
    "distributed",
    "gradcheck",
    "layers",
    "models",
    "optim",
    "parity",
    "plotting",
    "solver",
)

#: Names served from a submodule, imported on first access (the checkpoint
#: code is not loaded by ``import xplayers`` or ``import xplayers.layers``).
_LAZY_NAMES = {"CheckpointError": "checkpoint", "load_model": "checkpoint"}


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBMODULES, *_LAZY_NAMES})


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
