"""CuPy on CUDA. Usable only when CuPy imports AND a CUDA device answers.

`import cupy` succeeds on machines without a driver; the first allocation
fails. Detection therefore asks `cupy.cuda.is_available()` inside try/except
and never allocates; nothing here runs at import time.

CuPy runs kernels and allocates on its *current* device, which need not be
the device of the arrays at hand: everything here that allocates or launches
runs under the arrays' device, and the namespace honours ``device=``
(``_cupy_namespace``).
"""

from __future__ import annotations

import contextlib
import importlib.util
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_cupy_array

from ._base import Backend
from ._formulas import UpdateFormula
from ._policy import DEVICE, WorkPolicy


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self) -> None:
        super().__init__()
        self._states: dict[tuple[int, bool], Any] = {}
        self._uploads: list[tuple[Any, np.ndarray]] = []  # (done event, pinned buffer)

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
        from . import _cupy_namespace

        return _cupy_namespace.load()

    def owns(self, x: Any) -> bool:
        return is_cupy_array(x)

    def default_device(self) -> Any:
        import cupy

        return cupy.cuda.Device()

    def device_label(self, device: Any) -> str:
        return f"cuda:{self.resolve_device(device).id}"

    def device_name(self, device: Any = None) -> str:
        import cupy

        dev = self.resolve_device(device)
        name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"]
        return f"cuda:{dev.id} ({name.decode() if isinstance(name, bytes) else name})"

    def devices(self) -> list[str]:
        import cupy

        return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]

    def resolve_device(self, device: Any = None) -> Any:
        """None, 'cuda' (the current device), 'cuda:N', N or a cupy Device -> a cupy Device."""
        import cupy

        if device is None:
            return self.default_device()
        if isinstance(device, cupy.cuda.Device):
            return device
        text = str(device).strip().lower()
        if text == "cuda":
            return self.default_device()
        index = text.removeprefix("cuda:")
        if not index.isdigit() or f"cuda:{index}" not in self.devices():
            self._no_such_device(device)
        return cupy.cuda.Device(int(index))

    def device_context(self, device: Any) -> contextlib.AbstractContextManager:
        return self.resolve_device(device)

    def on_cpu(self, x: Any) -> bool:
        return False

    def work_policy(self, x: Any) -> WorkPolicy:
        return DEVICE

    def synchronize(self) -> None:
        import cupy

        cupy.cuda.get_current_stream().synchronize()

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        """Staged through page-locked memory and queued on the current stream.

        A copy from pageable memory waits for the stream to drain (a host sync
        per batch); from pinned memory it is queued behind the step's kernels.
        Each buffer is kept until its copy's event has passed.
        """
        import cupy
        import cupyx

        self._uploads = [(done, buf) for done, buf in self._uploads if not done.done]
        with self.resolve_device(device):
            pinned = cupyx.empty_pinned(a.shape, a.dtype)
            pinned[...] = a
            out = cupy.empty(a.shape, a.dtype)
            stream = cupy.cuda.get_current_stream()
            out.set(pinned, stream=stream)
            self._uploads.append((stream.record(), pinned))
            return out

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()

    def uniform(self, shape: tuple[int, ...], dtype: Any, device: Any, seed: int | None) -> Any:
        """Drawn on ``device``: a per-step dropout mask never crosses the bus.

        One cuRAND Philox generator per device is kept (a seeded one, reseeded
        for each seeded draw, and a free-running one): Philox is counter-based,
        so a seed costs no state set-up, unlike building a fresh XORWOW
        ``default_rng`` (hundreds of thousands of states) per call.
        """
        import cupy

        dev = self.resolve_device(device)
        with dev:
            key = (dev.id, seed is not None)
            state = self._states.get(key)
            if state is None:
                philox = cupy.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10
                state = self._states[key] = cupy.random.RandomState(method=philox)
            if seed is not None:
                state.seed(seed)
            return state.random_sample(shape, dtype=dtype)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        import cupy

        with out.device:
            return cupy.matmul(a, b, out=out)

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        """The windows as a CuPy view. CuPy arrays have no read-only flag, so the
        promise of ``backends.strided_view`` (never written) is kept by its
        callers alone; numpy's views, ``writeable=False``, catch a breach in tests."""
        import cupy

        step = x.itemsize
        return cupy.lib.stride_tricks.as_strided(x, shape, tuple(s * step for s in strides))

    def fused_update(
        self, formula: UpdateFormula, w: Any, dw: Any, state: tuple, scalars: tuple
    ) -> Any:
        from . import _cupy_kernels

        return _cupy_kernels.fused_update(formula, w, dw, state, scalars)
