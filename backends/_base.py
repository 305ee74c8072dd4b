"""The small interface every array-library adapter implements (Thinc's Ops idea).

Layers never see this class: they take the standard namespace from their
inputs. The adapter covers only what the Array API standard lacks: whether
the library is usable here, host <-> library transfer, seeded random numbers,
device names, synchronisation, and optional fast paths (matmul into a
buffer, strided views, chunks run on several cores).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np

from ._errors import BackendError
from ._formulas import UpdateFormula
from ._policy import WorkPolicy

#: Hooks with no safe default: every adapter class must define them itself.
_REQUIRED = ("on_cpu", "work_policy")


class Backend:
    """One array library as xplayers sees it. Subclasses fill in the hooks; those
    in ``_REQUIRED`` have no default, and an adapter class that does not define
    them is a TypeError where it is defined."""

    name: str = ""
    #: Basic slices share the array's memory (in-place updates reach the parent).
    slices_are_views: bool = True
    #: The library has one device only, so arrays never need a device check.
    single_device: bool = False
    #: Arrays can be written (``x[i] = v``); False (JAX): layers take their
    #: functional routes and state is returned, never updated in place.
    writes_in_place: bool = True

    def __init__(self) -> None:
        self._reason: str | None = None
        self._checked = False
        self._global_rng: Any = None
        self._namespace: ModuleType | None = None
        self._dtypes: dict[tuple[str, str], bool] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in _REQUIRED if getattr(cls, name) is getattr(Backend, name)]
        if missing:
            raise TypeError(
                f"backend adapter {cls.__qualname__} must define {', '.join(missing)}: "
                f"where its arrays live and how work on them is chunked have no default "
                f"(a GPU adapter answering like a CPU one gets host chunking and kept work arrays)"
            )

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

    def array_device(self, x: Any) -> Any:
        """The device array ``x`` lives on (None where the library cannot say: a traced
        array inside a compiled function)."""
        return x.device

    def default_device(self) -> Any:
        return "cpu"

    def device_name(self, device: Any = None) -> str:
        """A device as a user reads it (with the hardware's name where there is one)."""
        return self.device_label(device)

    def device_label(self, device: Any) -> str:
        """A device as a user types it: 'cpu', 'cuda:1', 'device1'."""
        return "cpu"

    def devices(self) -> list[str]:
        """The devices usable here, as ``device_label`` writes them."""
        return [self.device_label(self.default_device())]

    def resolve_device(self, device: Any = None) -> Any:
        """A device string or object (None: the default device) -> the library's
        device object; BackendError naming the devices there are if it is not one."""
        if device is None:
            return self.default_device()
        label = str(device).strip().lower()
        if label not in self.devices():
            self._no_such_device(device)
        return self.default_device()

    def _no_such_device(self, device: Any) -> None:
        raise BackendError(
            f"backend {self.name!r} has no device {device!r}; devices here: {self.devices()}"
        )

    def device_context(self, device: Any) -> contextlib.AbstractContextManager:
        """A context under which the library allocates on ``device`` by default
        (CuPy: its current device); nothing to do for the others."""
        return contextlib.nullcontext()

    def has_dtype(self, dtype: Any, device: Any) -> bool:
        """True when ``device`` holds arrays of ``dtype`` (strict's 'no_float64' does not)."""
        key = (np.dtype(dtype).name, self.device_label(device))
        found = self._dtypes.get(key)
        if found is None:
            try:
                info = self.namespace().__array_namespace_info__()
                found = key[0] in info.dtypes(device=device)
            except Exception:  # a library that cannot answer: let it decide itself
                found = True
            self._dtypes[key] = found
        return found

    def dtype_hint(self, dtype: Any) -> str:
        """What to do when a device lacks ``dtype`` (``has_dtype`` False), for the error."""
        return "ask for a dtype it holds (e.g. dtype='float32') or pick another device"

    def on_cpu(self, x: Any) -> bool:
        """True when array ``x`` lives in host memory (required: no default)."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on CPU libraries)."""

    def wait_for(self, x: Any) -> None:
        """Wait until array ``x`` is computed (the work queued on its device)."""
        with self.device_context(self.array_device(x)):
            self.synchronize()

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

    def seed_of(self, seed: int | tuple | None) -> Any:
        """``seed`` as ``uniform`` takes it: None or an int as they are, a tuple of
        ints (a stream's entropy) as the int ``SeedSequence`` makes of it."""
        if seed is None or not isinstance(seed, tuple):
            return seed
        return int(np.random.SeedSequence([int(e) for e in seed]).generate_state(1)[0])

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

    def matmul(self, a: Any, b: Any) -> Any:
        """``a @ b`` for 2-d arrays (libraries whose BLAS leaves cores idle split it)."""
        return a @ b

    def strided_view(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        """A view of contiguous ``x``'s memory of ``shape`` with element ``strides``
        (windows may overlap: read it, never write it), or None where the
        library has none. The standard has no such view; callers then copy
        slice by slice."""
        return None

    def fused_update(
        self, formula: UpdateFormula, w: Any, dw: Any, state: tuple, scalars: tuple
    ) -> Any:
        """next_w of ``formula`` in one fused kernel, updating ``state`` in place,
        or None where the library has none (the generic chain then runs)."""
        return None

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any] | None:
        """``fn`` (a pure function of arrays) compiled as one program by the library
        (JAX: ``jax.jit``), or None where operations run one by one (the default)."""
        return None

    def tracing_errors(self) -> tuple[type[BaseException], ...]:
        """The errors a compiled function raises when it reads a traced value back
        (``float()`` of an array inside ``compile``); () where nothing compiles."""
        return ()

    def device_scalar(self, value: float, device: Any) -> Any:
        """A 0-d array of the Python number ``value`` on ``device`` that, like the
        number, takes the dtype of the arrays it meets (JAX: weakly typed)."""
        return self.namespace().asarray(value, device=device)

    def work_policy(self, x: Any) -> WorkPolicy:
        """How work on array ``x`` is chunked, threaded, buffered and lowered
        (``_policy.WorkPolicy``; ``_policy.HOST`` / ``DEVICE`` are the shared
        answers). Required: each adapter states its own."""
        raise NotImplementedError

    def map_chunks(
        self, fn: Callable[[Any], Any], items: Iterable[Any], uses_blas: bool = True
    ) -> list[Any]:
        """[fn(item) for item in items]; libraries whose own operations leave
        cores idle (numpy) run the items concurrently (``uses_blas``: whether
        ``fn`` multiplies matrices, so the library's BLAS threads need holding)."""
        return [fn(item) for item in items]

    def __repr__(self) -> str:
        return f"<backend {self.name!r}>"
