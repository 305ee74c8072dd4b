"""Devices: where an array lives, naming devices, and running on one.

A device is given as the library takes it (a ``torch.device``, a
``cupy.cuda.Device``, ``array_api_strict.Device('device1')``) or as a string:
"cpu", "cuda", "cuda:1" for torch and cupy; "CPU_DEVICE", "device1", ... for
array_api_strict. A backend case on the command line or in tests reads
"backend:device", e.g. "array_api_strict:device1" or "torch:cuda:1".
"""

from __future__ import annotations

import contextlib
from typing import Any

from ._errors import BackendError
from ._registry import _adapter_of, get_backend


def device_of(x: Any) -> Any:
    """The device array ``x`` lives on (the library's device object; 'cpu' for numpy)."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"device_of needs an array, got {type(x).__name__}")
    return b.array_device(x)


def device_label(x: Any) -> str:
    """Where array ``x`` lives, as a user writes it: 'cpu', 'cuda:1', 'device1'."""
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"device_label needs an array, got {type(x).__name__}")
    return b.device_label(b.array_device(x))


def resolve_device(backend: str | None, device: Any = None) -> Any:
    """A device string or object for ``backend`` -> the library's device object
    (None: the backend's default device); BackendError naming the devices there are."""
    return get_backend(backend).resolve_device(device)


def devices(backend: str | None = None) -> list[str]:
    """The devices of ``backend`` usable here, e.g. ['cpu', 'cuda:0', 'cuda:1']."""
    return get_backend(backend).devices()


def on_device_of(x: Any) -> contextlib.AbstractContextManager:
    """A context under which the library works on ``x``'s device by default.

    CuPy allocates and launches on its current device; a model on 'cuda:1'
    runs its steps under this so that its kernels run where its arrays are.
    Elsewhere (numpy, torch, array_api_strict) there is nothing to switch.
    """
    b = _adapter_of(x)
    if b is None:
        raise BackendError(f"on_device_of needs an array, got {type(x).__name__}")
    return b.device_context(b.array_device(x))


def parse_case(text: str) -> tuple[str, str | None]:
    """'array_api_strict:device1' -> ('array_api_strict', 'device1'); 'torch' -> ('torch', None).

    Only the first colon splits, so 'torch:cuda:1' names torch's 'cuda:1'.
    """
    name, _, device = text.strip().partition(":")
    return name.strip().lower(), (device.strip() or None)
