"""NumPy: the CPU reference backend, always available."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_numpy_array

from . import _threads
from ._base import Backend
from ._policy import HOST, WorkPolicy

#: Products of fewer multiply-adds run as one threaded OpenBLAS call: split,
#: they lose more to the hand-over to the chunk workers than they save (the
#: FC benchmark's 3072x100 layers at batch 200, 61M, ran 1.5-2x slower).
_SPLIT_MIN_MNK = 2**26


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

    def matmul(self, a: Any, b: Any) -> Any:
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            return np.matmul(a, b)  # numpy's own error or broadcasting
        (m, k), n = a.shape, b.shape[1]
        workers = _threads.workers()
        if workers <= 1 or m < 2 * workers or m * n * k < _SPLIT_MIN_MNK:
            return np.matmul(a, b)
        out = np.empty((m, n), dtype=np.result_type(a, b))
        cuts = [m * i // workers for i in range(workers + 1)]

        def rows(i: int) -> None:
            np.matmul(a[cuts[i] : cuts[i + 1]], b, out=out[cuts[i] : cuts[i + 1]])

        _threads.map_chunks(rows, range(workers))
        return out

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        step = x.itemsize
        return np.lib.stride_tricks.as_strided(
            x, shape, tuple(s * step for s in strides), writeable=False
        )

    def on_cpu(self, x: Any) -> bool:
        return True

    def work_policy(self, x: Any) -> WorkPolicy:
        """HOST (measured here, on NumPy) with a chunk worker per core: NumPy's
        copies are single-threaded, so chunks run on the thread pool."""
        return HOST.with_workers(_threads.workers())

    def map_chunks(
        self, fn: Callable[[Any], Any], items: Iterable[Any], uses_blas: bool = True
    ) -> list[Any]:
        return _threads.map_chunks(fn, items, hold_blas=uses_blas)
