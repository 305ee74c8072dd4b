"""JAX: arrays that cannot be written, on XLA's devices (CPU, GPU, TPU).

JAX implements the standard itself (``jax.numpy``), with three differences
the rest of xplayers must see:

- arrays are immutable (``writes_in_place = False``): layers take their
  functional routes, optimizers and batch norm return new state;
- float64 exists only with x64 enabled (``JAX_ENABLE_X64=1`` or
  ``jax.config.update("jax_enable_x64", True)``); asking for it without is
  a ``BackendError`` here, never JAX's silent float32, and xplayers never
  flips that global setting itself;
- an uncommitted array meeting a committed one elsewhere is moved silently:
  ``from_numpy`` commits every array it makes to its device, and
  ``get_namespace`` refuses arrays of two devices in one call.

Devices read "cpu:0", "cpu:1", "cuda:0" (platform and id); "cpu" is the
first CPU device. Seeded random numbers come from ``jax.random`` keys, on the
device, so a compiled step draws its dropout masks without a host trip.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import device as array_device
from array_api_compat import is_jax_array

from ._base import Backend
from ._errors import BackendError
from ._policy import DEVICE, WorkPolicy

#: How to get float64 on JAX, for every error that asks for it.
X64_HINT = (
    "JAX runs without x64, where float64 silently becomes float32; enable it before "
    "making arrays: JAX_ENABLE_X64=1 in the environment, or "
    'jax.config.update("jax_enable_x64", True) (xplayers does not change that global '
    "setting for you), or ask for dtype='float32'"
)

_ALIASES = {"gpu": "cuda"}


class JaxBackend(Backend):
    name = "jax"
    writes_in_place = False
    slices_are_views = False

    def _probe(self) -> str | None:
        if importlib.util.find_spec("jax") is None:
            return "jax is not installed (pip install 'xplayers[jax]')"
        import jax

        jax.devices()  # a broken jaxlib fails here, not in the first layer
        return None

    def _load_namespace(self) -> ModuleType:
        import jax.numpy as jnp

        return jnp

    def owns(self, x: Any) -> bool:
        return is_jax_array(x)

    def array_device(self, x: Any) -> Any:
        """x's device; None for a tracer inside ``jax.jit`` (placement is then XLA's)."""
        return array_device(x)

    def default_device(self) -> Any:
        import jax

        return jax.devices()[0]

    def device_label(self, device: Any) -> str:
        if device is None:
            return "traced"
        platform = _ALIASES.get(device.platform, device.platform)
        return f"{platform}:{device.id}"

    def devices(self) -> list[str]:
        import jax

        return [self.device_label(d) for d in jax.devices()] + [
            self.device_label(d) for d in _cpu_devices() if d not in jax.devices()
        ]

    def resolve_device(self, device: Any = None) -> Any:
        import jax

        if device is None:
            return self.default_device()
        if isinstance(device, jax.Device):
            return device
        label = str(device).strip().lower()
        known = {self.device_label(d): d for d in (*jax.devices(), *_cpu_devices())}
        if label in known:
            return known[label]
        first = [d for key, d in known.items() if key.split(":")[0] == _ALIASES.get(label, label)]
        if first:
            return first[0]
        self._no_such_device(device)

    def has_dtype(self, dtype: Any, device: Any) -> bool:
        """64-bit floats only with x64; 64-bit integers always (``from_numpy`` narrows
        them to 32 bits without x64, exactly, or refuses)."""
        if np.dtype(dtype).itemsize >= 8 and np.dtype(dtype).kind in "fc":
            return _x64()
        return super().has_dtype(dtype, device) or np.dtype(dtype).kind in "iu"

    def dtype_hint(self, dtype: Any) -> str:
        return X64_HINT if np.dtype(dtype).itemsize == 8 else super().dtype_hint(dtype)

    def on_cpu(self, x: Any) -> bool:
        device = self.array_device(x)
        return device is not None and device.platform == "cpu"

    def work_policy(self, x: Any) -> WorkPolicy:
        """DEVICE on every platform: XLA parallelises inside each operation and
        keeps its own buffers, so one chunk and no kept work arrays (which could
        not be written anyway)."""
        return DEVICE

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        import jax

        return jax.jit(fn)

    def tracing_errors(self) -> tuple[type[BaseException], ...]:
        import jax

        return (jax.errors.ConcretizationTypeError,)

    def device_scalar(self, value: float, device: Any) -> Any:
        import jax

        return jax.device_put(value, device)  # a Python number's array stays weakly typed

    def wait_for(self, x: Any) -> None:
        x.block_until_ready()

    def synchronize(self) -> None:
        import jax

        jax.effects_barrier()

    def from_numpy(self, a: np.ndarray, device: Any = None) -> Any:
        import jax

        if not self.has_dtype(a.dtype, None):
            raise BackendError(f"jax cannot hold {a.dtype.name} arrays here: {X64_HINT}")
        if a.dtype.kind in "iu" and a.dtype.itemsize == 8 and not _x64():
            a = _narrowed(a)
        # device_put commits the array: JAX then refuses to move it silently.
        return jax.device_put(np.array(a, copy=True), self.resolve_device(device))

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def seed_of(self, seed: int | tuple | None) -> Any:
        """A ``jax.random`` key for ``seed``: an int's key, or for a tuple (a stream's
        entropy) the first element's key with each further one folded in, which may be
        traced (a compiled step's step count); None stays None."""
        import jax

        if seed is None or not isinstance(seed, tuple):
            return seed
        key = jax.random.key(int(seed[0]))
        for element in seed[1:]:
            key = jax.random.fold_in(key, element)
        return key

    def uniform(self, shape: tuple[int, ...], dtype: Any, device: Any, seed: Any) -> Any:
        """Uniform [0, 1) from ``jax.random`` on ``device``: a seed (an int or a key)
        always gives the same numbers (not NumPy's: JAX's generator is its own); no
        seed draws a fresh key from the host generator."""
        import jax

        if seed is None:
            seed = int(self._host_generator(None).integers(2**31))
        key = jax.random.key(seed) if isinstance(seed, int) else seed
        if device is not None:
            key = jax.device_put(key, device)
        return jax.random.uniform(key, shape, dtype=dtype)


def _x64() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


def _narrowed(a: np.ndarray) -> np.ndarray:
    """64-bit integers (labels, indices) as 32-bit ones, which is all JAX holds
    without x64: exact when every value fits, else a BackendError."""
    narrow = np.dtype(f"{a.dtype.kind}4")
    info = np.iinfo(narrow)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise BackendError(
            f"jax without x64 holds {narrow.name} at most, and these {a.dtype.name} values "
            f"span [{a.min()}, {a.max()}], past [{info.min}, {info.max}]: {X64_HINT}"
        )
    return a.astype(narrow)


def _cpu_devices() -> list[Any]:
    """JAX's CPU devices also where an accelerator is the default backend."""
    import jax

    try:
        return jax.devices("cpu")
    except RuntimeError:
        return []
