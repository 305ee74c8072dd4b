"""PyTorch tensors through array-api-compat (CPU, or CUDA when a GPU answers)."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_torch_array

from ._base import Backend
from ._policy import DEVICE, HOST, WorkPolicy


class TorchBackend(Backend):
    name = "torch"

    def __init__(self) -> None:
        super().__init__()
        self._generators: dict[str, Any] = {}

    def _probe(self) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'xplayers[torch]')"
        import torch  # noqa: F401

        return None

    def _load_namespace(self) -> ModuleType:
        import array_api_compat.torch as xp

        return xp

    def owns(self, x: Any) -> bool:
        return is_torch_array(x)

    def default_device(self) -> Any:
        """CUDA when a GPU answers, else CPU; XPLAYERS_TORCH_DEVICE overrides."""
        import torch

        wanted = os.environ.get("XPLAYERS_TORCH_DEVICE")
        if wanted:
            return self.resolve_device(wanted)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def device_label(self, device: Any) -> str:
        import torch

        device = torch.device(device)
        if device.type == "cuda":
            index = torch.cuda.current_device() if device.index is None else device.index
            return f"cuda:{index}"
        return str(device)

    def device_name(self, device: Any = None) -> str:
        import torch

        device = self.resolve_device(device)
        if device.type == "cuda":
            return f"{self.device_label(device)} ({torch.cuda.get_device_name(device)})"
        return str(device)

    def devices(self) -> list[str]:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu", *(f"cuda:{i}" for i in range(count))]

    def resolve_device(self, device: Any = None) -> Any:
        import torch

        if device is None:
            return self.default_device()
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError):
            self._no_such_device(device)
        if resolved.type == "cuda" and resolved.index is None and torch.cuda.is_available():
            resolved = torch.device("cuda", torch.cuda.current_device())
        if str(resolved) not in self.devices():
            self._no_such_device(device)
        return resolved

    def on_cpu(self, x: Any) -> bool:
        return x.device.type == "cpu"

    def work_policy(self, x: Any) -> WorkPolicy:
        """CPU tensors: HOST (measured on NumPy, not tuned for torch separately),
        with one chunk worker: torch threads inside each operation. CUDA
        tensors: DEVICE."""
        return HOST if self.on_cpu(x) else DEVICE

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        import torch

        device = self.resolve_device(device)
        if device.type == "cpu":
            return torch.from_numpy(np.array(a, copy=True))
        # One copy into page-locked memory, then an asynchronous upload: the host
        # goes on preparing the next batch while this one crosses the bus (the
        # caching host allocator keeps the buffer until the copy has run).
        pinned = torch.empty(a.shape, dtype=_torch_dtype(a.dtype), pin_memory=True)
        pinned.numpy()[...] = a
        return pinned.to(device, non_blocking=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def uniform(self, shape: tuple[int, ...], dtype: Any, device: Any, seed: int | None) -> Any:
        import torch

        if torch.device(device).type == "cpu":
            return super().uniform(shape, dtype, device, seed)
        # On a GPU the mask is drawn where it is used: no host transfer per step.
        # Per device, one generator reseeded for seeded draws (a Philox seed and
        # offset: nothing to initialise per call) and one that runs on freely.
        key = f"{self.device_label(device)}/{'seeded' if seed is not None else 'free'}"
        gen = self._generators.get(key)
        if gen is None:
            gen = self._generators[key] = torch.Generator(device=device)
            gen.seed()
        if seed is not None:
            gen.manual_seed(seed)
        return torch.rand(shape, generator=gen, device=device, dtype=dtype)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        import torch

        return torch.matmul(a, b, out=out)

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        import torch

        return torch.as_strided(x, shape, strides, x.storage_offset())


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype
