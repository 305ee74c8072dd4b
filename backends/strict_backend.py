"""array_api_strict: the standard's reference namespace, used to prove purity.

Its devices ("CPU_DEVICE", "device1", "device2", "no_float64", ...) all live
in host memory but refuse to be combined, so code that allocates on the
default device instead of its input's fails here as it would on a second GPU.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import numpy as np

from ._base import Backend
from ._policy import HOST, WorkPolicy


class StrictBackend(Backend):
    name = "array_api_strict"
    # It does share memory, but the standard does not promise it: answering
    # False keeps the portable write-back paths exercised by the test suite.
    slices_are_views = False

    def _probe(self) -> str | None:
        if importlib.util.find_spec("array_api_strict") is None:
            return "array_api_strict is not installed (pip install array-api-strict)"
        return None

    def _load_namespace(self) -> ModuleType:
        import array_api_strict

        return array_api_strict

    def owns(self, x: Any) -> bool:
        ns = getattr(x, "__array_namespace__", None)
        return ns is not None and type(x).__module__.startswith("array_api_strict")

    def default_device(self) -> Any:
        return self.namespace().Device("CPU_DEVICE")

    def device_label(self, device: Any) -> str:
        # Device('device1') keeps its name in a private slot; its repr is stable.
        text = repr(device)
        return text.split("'")[1] if "'" in text else str(device)

    def devices(self) -> list[str]:
        return [self.device_label(d) for d in self.namespace().__array_namespace_info__().devices()]

    def resolve_device(self, device: Any = None) -> Any:
        if device is None:
            return self.default_device()
        label = device if isinstance(device, str) else self.device_label(device)
        if label not in self.devices():
            self._no_such_device(device)
        return self.namespace().Device(label)

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        return self.namespace().asarray(np.array(a, copy=True), device=self.resolve_device(device))

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.from_dlpack(x)

    def on_cpu(self, x: Any) -> bool:
        return True  # every device of it is host memory

    def work_policy(self, x: Any) -> WorkPolicy:
        """HOST with one chunk worker: its arrays are NumPy's underneath, and the
        test suite then runs the chunked code paths on it too."""
        return HOST
