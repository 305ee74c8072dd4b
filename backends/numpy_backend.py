"""NumPy: the CPU reference backend, always available."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_numpy_array

from . import _threads
from ._base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    single_device = True

    def _probe(self) -> str | None:
        return None

    def _load_namespace(self) -> ModuleType:
        import array_api_compat.numpy as xp

        return xp

    def owns(self, x: Any) -> bool:
        return is_numpy_array(x)

    def from_numpy(self, a: np.ndarray, device: Any = None) -> np.ndarray:
        return np.array(a, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        return np.matmul(a, b, out=out)

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        step = x.itemsize
        return np.lib.stride_tricks.as_strided(
            x, shape, tuple(s * step for s in strides), writeable=False
        )

    def chunk_workers(self) -> int:
        return _threads.workers()

    def map_chunks(
        self, fn: Callable[[Any], Any], items: Iterable[Any], uses_blas: bool = True
    ) -> list[Any]:
        return _threads.map_chunks(fn, items, hold_blas=uses_blas)
