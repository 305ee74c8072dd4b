"""PyTorch tensors through array-api-compat (CPU, or CUDA when a GPU answers)."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_torch_array

from ._base import Backend


class TorchBackend(Backend):
    name = "torch"

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
            return torch.device(wanted)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def device_name(self, device: Any = None) -> str:
        import torch

        device = torch.device(device) if device is not None else self.default_device()
        if device.type == "cuda":
            return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
        return str(device)

    def on_cpu(self, x: Any) -> bool:
        return x.device.type == "cpu"

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        import torch

        device = device if device is not None else self.default_device()
        return torch.from_numpy(np.array(a, copy=True)).to(device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def uniform(self, shape: tuple[int, ...], dtype: Any, device: Any, seed: int | None) -> Any:
        import torch

        if torch.device(device).type == "cpu":
            return super().uniform(shape, dtype, device, seed)
        # On a GPU the mask is drawn where it is used: no host transfer per step.
        gen = torch.Generator(device=device)
        if seed is not None:
            gen.manual_seed(seed)
        else:
            gen.seed()
        return torch.rand(shape, generator=gen, device=device, dtype=dtype)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        import torch

        return torch.matmul(a, b, out=out)

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        import torch

        return torch.as_strided(x, shape, strides, x.storage_offset())
