"""CuPy on CUDA. Usable only when CuPy imports AND a CUDA device answers.

`import cupy` succeeds on machines without a driver; the first allocation
fails. Detection therefore asks `cupy.cuda.is_available()` inside try/except
and never allocates; nothing here runs at import time.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_cupy_array

from ._base import Backend


class CupyBackend(Backend):
    name = "cupy"

    def _probe(self) -> str | None:
        if importlib.util.find_spec("cupy") is None:
            return "cupy is not installed (pip install 'xplayers[cuda12]' or 'xplayers[cuda13]')"
        import cupy

        try:
            if not cupy.cuda.is_available():
                return "cupy is installed but no CUDA device answers"
        except Exception as exc:
            return f"cupy is installed but CUDA failed: {exc}"
        return None

    def _load_namespace(self) -> ModuleType:
        import array_api_compat.cupy as xp

        return xp

    def owns(self, x: Any) -> bool:
        return is_cupy_array(x)

    def default_device(self) -> Any:
        import cupy

        return cupy.cuda.Device()

    def device_name(self, device: Any = None) -> str:
        import cupy

        dev = device if device is not None else cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        return f"cuda:{dev.id} ({name.decode() if isinstance(name, bytes) else name})"

    def on_cpu(self, x: Any) -> bool:
        return False

    def synchronize(self) -> None:
        import cupy

        cupy.cuda.get_current_stream().synchronize()

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        import cupy

        if device is None:
            return cupy.array(a)
        with cupy.cuda.Device(device.id if hasattr(device, "id") else device):
            return cupy.array(a)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()

    def uniform(self, shape: tuple[int, ...], dtype: Any, device: Any, seed: int | None) -> Any:
        import cupy

        # Drawn on the device: a per-step dropout mask never crosses the bus.
        if seed is not None:
            gen = cupy.random.default_rng(seed)
        else:
            if self._global_rng is None:
                self._global_rng = cupy.random.default_rng()
            gen = self._global_rng
        with cupy.cuda.Device(device.id if hasattr(device, "id") else 0):
            return gen.random(shape, dtype=dtype)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        import cupy

        return cupy.matmul(a, b, out=out)

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        import cupy

        step = x.itemsize
        return cupy.lib.stride_tricks.as_strided(x, shape, tuple(s * step for s in strides))
