"""array-api-compat's CuPy namespace with ``device=`` honoured.

array-api-compat accepts ``device=`` on CuPy's creation functions and then
allocates on the current device, whatever was asked. Layers pass
``device=x.device`` everywhere; here each creation function runs under that
device, so a model on ``cuda:1`` allocates on ``cuda:1`` while the current
device is ``cuda:0``. Everything else is array-api-compat's own function.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

_CREATION = ("arange", "asarray", "empty", "eye", "full", "linspace", "ones", "zeros")
_LIKE = ("empty_like", "full_like", "ones_like", "zeros_like")


def load() -> types.ModuleType:
    """The wrapped namespace (imports CuPy: call only once CuPy is known usable)."""
    import array_api_compat.cupy as compat
    import cupy

    ns = types.ModuleType("xplayers.backends.cupy_namespace", __doc__)
    ns.__dict__.update({k: v for k, v in vars(compat).items() if not k.startswith("__")})
    ns.__array_api_version__ = compat.__array_api_version__
    for name in _CREATION:
        setattr(ns, name, _on_device(getattr(compat, name), cupy, like=False))
    for name in _LIKE:
        setattr(ns, name, _on_device(getattr(compat, name), cupy, like=True))
    return ns


def _on_device(fn: Callable[..., Any], cupy: Any, like: bool) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, device: Any = None, **kwargs: Any) -> Any:
        if device is None and like:
            device = args[0].device
        if device is None:
            return fn(*args, **kwargs)
        with cupy.cuda.Device(device.id if hasattr(device, "id") else device):
            return fn(*args, **kwargs)

    return run
