"""The small interface every array-library adapter implements (Thinc's Ops idea).

Layers never see this class: they take the standard namespace from their
inputs. The adapter covers only what the Array API standard lacks: whether
the library is usable here, host <-> library transfer, seeded random numbers,
device names, synchronisation, and optional fast paths (matmul into a
buffer, strided views, chunks run on several cores).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np

from ._policy import DEVICE, HOST, WorkPolicy


class Backend:
    """One array library as xplayers sees it. Subclasses fill in the hooks."""

    name: str = ""
    #: Basic slices share the array's memory (in-place updates reach the parent).
    slices_are_views: bool = True

    def __init__(self) -> None:
        self._reason: str | None = None
        self._checked = False
        self._global_rng: Any = None
        self._namespace: ModuleType | None = None

    # ------------------------------------------------------------ availability
    def _probe(self) -> str | None:
        """Return None when the library is usable here, else why it is not."""
        raise NotImplementedError

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot be used here (None when it can). Cached."""
        if not self._checked:
            try:
                self._reason = self._probe()
            except Exception as exc:  # a broken install must not crash detection
                self._reason = f"{type(exc).__name__}: {exc}"
            self._checked = True
        return self._reason

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    # --------------------------------------------------------------- namespace
    def namespace(self) -> ModuleType:
        """The Array API namespace (array-api-compat's wrapper where needed)."""
        if self._namespace is None:
            self._namespace = self._load_namespace()
        return self._namespace

    def _load_namespace(self) -> ModuleType:
        raise NotImplementedError

    def owns(self, x: Any) -> bool:
        """True when ``x`` is an array of this library (no import is triggered)."""
        raise NotImplementedError

    def default_device(self) -> Any:
        return None

    def device_name(self, device: Any = None) -> str:
        return "cpu"

    def on_cpu(self, x: Any) -> bool:
        """True when array ``x`` lives in host memory."""
        return True

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on CPU libraries)."""

    # ---------------------------------------------------------------- transfer
    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        """Copy a host array into this library (on ``device`` or the default)."""
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        """This library's array -> numpy.ndarray on the host."""
        raise NotImplementedError

    # ----------------------------------------------------------------- random
    def uniform(self, shape: tuple[int, ...], dtype: Any, device: Any, seed: int | None) -> Any:
        """Uniform [0, 1) samples; a given seed always gives the same numbers here.

        CPU libraries draw on the host with NumPy so that numpy, torch-cpu and
        array_api_strict produce identical masks for the same seed.
        """
        gen = self._host_generator(seed)
        xp = self.namespace()
        host = gen.random(shape, dtype=np.float64)
        return xp.astype(self.from_numpy(host, device), dtype)

    def _host_generator(self, seed: int | None) -> np.random.Generator:
        if seed is not None:
            return np.random.default_rng(seed)
        if self._global_rng is None:
            self._global_rng = np.random.default_rng()
        return self._global_rng

    # ------------------------------------------------------- fast-path hooks
    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        """``out[...] = a @ b`` for 2-d arrays; returns ``out``.

        Libraries whose matmul takes ``out=`` write the product straight into
        the (reused) buffer, saving a fresh allocation per call; the portable
        fallback assigns a temporary.
        """
        out[...] = a @ b
        return out

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        """A view of contiguous ``x``'s memory of ``shape`` with element ``strides``
        (windows may overlap: read it, never write it), or None where the
        library has none. The standard has no such view; callers then copy
        slice by slice."""
        return None

    def chunk_workers(self) -> int:
        """How many independent chunks ``map_chunks`` runs at once."""
        return 1

    def work_policy(self, x: Any) -> WorkPolicy:
        """How work on array ``x`` is chunked, threaded and buffered: host
        chunks on every core with kept work arrays in host memory, one chunk
        elsewhere."""
        if not self.on_cpu(x):
            return DEVICE
        workers = self.chunk_workers()
        return HOST if workers == HOST.workers else dataclasses.replace(HOST, workers=workers)

    def map_chunks(
        self, fn: Callable[[Any], Any], items: Iterable[Any], uses_blas: bool = True
    ) -> list[Any]:
        """[fn(item) for item in items]; libraries whose own operations leave
        cores idle (numpy) run the items concurrently (``uses_blas``: whether
        ``fn`` multiplies matrices, so the library's BLAS threads need holding)."""
        return [fn(item) for item in items]

    def __repr__(self) -> str:
        return f"<backend {self.name!r}>"
