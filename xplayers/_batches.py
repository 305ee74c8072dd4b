"""Where a dataset split lives and how minibatches are cut from it.

Host data stays on the host and is moved one batch at a time; device data
stays on its device and is indexed there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backends
from ._checks import describe

__all__ = ["Split"]


class Split:
    """One (X, y) pair: where it lives and how to cut batches from it.

    Host data (numpy, lists) stays on the host; rows are gathered there, cast
    to the model's dtype (halving the transfer for float64 data and a float32
    model) and moved once per batch. Backend arrays stay on their device and
    are indexed there with a device index array; they are moved once, as a
    whole, if the model lives on another backend.
    """

    def __init__(self, x_name: str, X: Any, y_name: str, y: Any) -> None:
        self.on_host = not backends.is_array(X) or backends.is_host(X)
        if self.on_host:
            X = np.asarray(X)
            y = np.asarray(backends.to_numpy(y) if backends.is_array(y) else y)
        elif not backends.is_array(y) or backends.backend_of(y) != backends.backend_of(X):
            y = backends.asarray(
                backends.to_numpy(y) if backends.is_array(y) else np.asarray(y),
                backends.backend_of(X),
                device=backends.device_of(X),
            )
        if X.ndim < 2:
            raise ValueError(f"{x_name} must be (N, ...) samples, got a {_describe(X)}")
        if y.ndim != 1:
            raise ValueError(f"{y_name} must be (N,) class labels, got a {_describe(y)}")
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                f"{x_name} and {y_name} lengths differ: {x_name} is a {_describe(X)}, "
                f"{y_name} is a {_describe(y)}"
            )
        if backends.numpy_dtype(y.dtype).kind not in "iu":
            raise TypeError(f"{y_name} must hold integer class labels, got a {_describe(y)}")
        if self.on_host:
            y = y.astype(np.int64, copy=False)
        self.x_name, self.y_name = x_name, y_name
        self.X, self.y = X, y
        self.n = int(X.shape[0])
        # Read once here, so that no training step has to read its batch's labels.
        if self.n == 0:
            self.label_range = (0, 0)
        elif self.on_host:
            self.label_range = (int(y.min()), int(y.max()))
        else:
            xp = backends.get_namespace(y=y)
            self.label_range = (int(xp.min(y)), int(xp.max(y)))
        self._placed: dict[str, tuple[Any, Any]] = {}

    def _device_arrays(self, backend: str, device: Any) -> tuple[Any, Any]:
        """X, y on ``backend`` and ``device`` (device data only; moved at most once
        per backend and device)."""
        if backends.backend_of(self.X) == backend and (
            device is None or backends.device_of(self.X) == device
        ):
            return self.X, self.y
        key = (backend, str(device))
        if key not in self._placed:
            self._placed[key] = (
                backends.asarray(self.X, backend, device=device),
                backends.asarray(self.y, backend, self._label_dtype(backend, device), device),
            )
        return self._placed[key]

    def gather(
        self, idx: np.ndarray, backend: str, dtype: np.dtype, device: Any = None
    ) -> tuple[Any, Any]:
        """Rows ``idx`` (host int array) as (X, y) arrays of ``backend`` on ``device``."""
        if self.on_host:
            return self._deliver(self.X[idx], self.y[idx], backend, dtype, device)
        X, y = self._device_arrays(backend, device)
        xp = backends.get_namespace(X=X)
        didx = backends.asarray(idx, backend, device=backends.device_of(X))
        return xp.take(X, didx, axis=0), xp.take(y, didx, axis=0)

    def rows(
        self, start: int, stop: int, backend: str, dtype: np.dtype, device: Any = None
    ) -> tuple[Any, Any]:
        """Rows ``start:stop`` as (X, y) arrays of ``backend`` on ``device``."""
        stop = min(stop, self.n)  # the standard leaves out-of-range slices unspecified
        if self.on_host:
            return self._deliver(self.X[start:stop], self.y[start:stop], backend, dtype, device)
        X, y = self._device_arrays(backend, device)
        return X[start:stop, ...], y[start:stop]

    def subset(self, idx: np.ndarray) -> Split:
        """A split of rows ``idx`` only (kept where the data lives)."""
        if self.on_host:
            return Split(self.x_name, self.X[idx], self.y_name, self.y[idx])
        xp = backends.get_namespace(X=self.X)
        didx = backends.asarray(idx, backends.backend_of(self.X), device=backends.device_of(self.X))
        return Split(
            self.x_name, xp.take(self.X, didx, axis=0), self.y_name, xp.take(self.y, didx, axis=0)
        )

    def _label_dtype(self, backend: str, device: Any) -> np.dtype | None:
        """int32 for the labels where the device holds no int64 (JAX without x64) and
        they fit (``label_range``, read once); None (their own dtype) elsewhere."""
        adapter = backends.get_backend(backend)
        if adapter.has_dtype(np.int64, adapter.resolve_device(device)):
            return None
        low, high = self.label_range
        if np.iinfo(np.int32).min <= low and high <= np.iinfo(np.int32).max:
            return np.dtype(np.int32)
        return None  # asarray then says why the device cannot hold them

    def _deliver(
        self, X: np.ndarray, y: np.ndarray, backend: str, dtype: np.dtype, device: Any
    ) -> tuple[Any, Any]:
        X = X.astype(dtype, copy=False)
        label_dtype = self._label_dtype(backend, device)
        return backends.asarray(X, backend, device=device), backends.asarray(
            y, backend, label_dtype, device
        )


def _describe(x: Any) -> str:
    return describe(x) if hasattr(x, "dtype") else type(x).__name__
