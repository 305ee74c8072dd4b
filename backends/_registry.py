"""Which array libraries xplayers knows, which are usable here, and which is the default.

Importing it imports no array library beyond NumPy and never initialises
CUDA: each adapter probes its library only when asked.
"""

from __future__ import annotations

import os
from typing import Any

from ._base import Backend
from ._errors import BackendError, EnvironmentVariableError
from .cupy_backend import CupyBackend
from .jax_backend import JaxBackend
from .numpy_backend import NumpyBackend
from .strict_backend import StrictBackend
from .torch_backend import TorchBackend

_ADAPTERS: dict[str, Backend] = {
    b.name: b
    for b in (
        NumpyBackend(),
        CupyBackend(),
        TorchBackend(),
        StrictBackend(),
        JaxBackend(),
    )
}
#: Every backend name xplayers knows, available here or not.
BACKEND_NAMES: tuple[str, ...] = tuple(_ADAPTERS)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, e.g. ['numpy', 'torch']."""
    return [name for name, b in _ADAPTERS.items() if b.is_available()]


def describe() -> list[tuple[str, bool, str]]:
    """(name, available, device or reason) for every known backend."""
    rows = []
    for name, b in _ADAPTERS.items():
        reason = b.unavailable_reason()
        if reason is None:
            try:
                rows.append((name, True, b.device_name(b.default_device())))
            except Exception as exc:  # a device that answers detection but not queries
                rows.append((name, True, f"device query failed: {exc}"))
        else:
            rows.append((name, False, reason))
    return rows


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot be used here, or None when it can."""
    if name not in _ADAPTERS:
        raise BackendError(f"unknown backend {name!r}: known backends are {list(BACKEND_NAMES)}")
    return _ADAPTERS[name].unavailable_reason()


def default_backend() -> str:
    """'cupy' where available, else 'numpy'; env XPLAYERS_BACKEND overrides.

    The variable is read at each call so a process can switch between runs.
    """
    wanted = os.environ.get("XPLAYERS_BACKEND")
    if wanted:
        try:
            return get_backend(wanted).name
        except BackendError as exc:
            expected = "a backend available here"
            raise EnvironmentVariableError("XPLAYERS_BACKEND", wanted, expected, str(exc)) from None
    return "cupy" if _ADAPTERS["cupy"].is_available() else "numpy"


def get_backend(name: str | None = None) -> Backend:
    """The adapter for ``name`` (default: ``default_backend()``), checked usable."""
    if name is None:
        name = default_backend()
    if isinstance(name, Backend):
        return name
    adapter = _ADAPTERS.get(str(name).lower())
    if adapter is None:
        raise BackendError(
            f"unknown backend {name!r}: known backends are {list(BACKEND_NAMES)}, "
            f"available here: {available_backends()}"
        )
    reason = adapter.unavailable_reason()
    if reason is not None:
        raise BackendError(
            f"backend {adapter.name!r} is not available here ({reason}); "
            f"available: {available_backends()}"
        )
    return adapter


# Array type -> adapter: layers ask for a namespace on every call, so the
# lookup for a type seen before is one dict access.
_BY_TYPE: dict[type, Backend] = {}
#: Python's own values, never an array of any library: answered without asking each adapter.
_PLAIN = frozenset({int, float, bool, str, bytes, type(None), dict, list, tuple})


def _adapter_of(x: Any) -> Backend | None:
    b = _BY_TYPE.get(type(x))
    if b is not None:
        return b
    if type(x) in _PLAIN:
        return None
    for b in _ADAPTERS.values():
        if b.owns(x):
            _BY_TYPE[type(x)] = b
            return b
    return None


def is_array(x: Any) -> bool:
    """True for an array of any known backend (numpy arrays included)."""
    return _adapter_of(x) is not None


def backend_of(x: Any) -> str:
    """The backend name of array ``x``; BackendError for a non-array."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(
            f"expected an array of one of {list(BACKEND_NAMES)}, got {type(x).__name__}"
        )
    return b.name
