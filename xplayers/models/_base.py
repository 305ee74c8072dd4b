"""What every model shares: its backend, device and dtype, seeded host-side
initialisation, moving between backends and devices, random streams, state
dicts, and the constructor arguments a checkpoint needs to rebuild it.

Subclasses draw their initial weights with ``self.normal(scale, shape)`` and
hand them to ``_set_params``, which moves them to the model's backend and
device once: the same seed therefore gives the same starting weights on
NumPy, CuPy and torch, on every device. With ``seed=None`` the draws come
from NumPy's global random state in the course's order, so
``np.random.seed(231)`` reproduces the course's numbers.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import _model_registry, backends

Shape = tuple[int, ...]


class StateShapes(NamedTuple):
    """What a model built from given arguments would hold, told without building it.

    ``params`` yields ``(name, shape)`` per parameter and ``norm`` one dict per
    normalisation layer of the running statistics it may hold (name -> shape),
    both lazily, so a reader can stop as soon as they outgrow what it expects;
    a bad argument raises TypeError or ValueError when the iteration reaches it.
    """

    params: Iterator[tuple[str, Shape]]
    norm: Iterator[dict[str, Shape]]
    dtype: np.dtype


def size_arg(name: str, value: Any) -> int:
    """A layer size: a positive integer (an integral float is taken, as JSON may write one)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive integer, got {value!r:.60}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(value)


def number_arg(name: str, value: Any) -> float:
    """A finite real number (a scale, a penalty, a probability)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not ok or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r:.60}")
    return float(value)


def float_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype of ``dtype``; TypeError unless it is a floating one."""
    out = backends.numpy_dtype(dtype)
    if out.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r:.60}")
    return out


def _recording_init(init: Callable) -> Callable:
    """``init`` that first stores its bound arguments as ``self.init_args``, once: the
    outermost constructor of a subclass chain records, the ``super()`` calls do not."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        if "init_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded: dict[str, Any] | None = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:  # not expressible by keyword: the model cannot be rebuilt
                        recorded = None
                        break
                else:
                    recorded[name] = value
            self.init_args = recorded
        init(self, *args, **kwargs)

    return wrapper


class Model:
    """Base class: ``params`` (dict of arrays), ``reg``, ``loss(X, y=None)``.

    ``norm_params`` lists the per-layer parameter dicts (bn_param / ln_param)
    whose running statistics travel with the model in ``to`` and state dicts.
    ``init_args`` holds the arguments the model was constructed with (recorded
    for every subclass), so a checkpoint can rebuild it, and the classmethod
    ``state_shapes(init_args)`` tells the shapes such a model would hold
    without building it, so a checkpoint's arguments are checked against its
    tensors before anything is allocated. ``stream_key`` is
    mixed into every random stream the model derives (the Solver sets
    ``(rank,)`` on data-parallel ranks), ``train_step`` is the step
    ``begin_step`` announced.
    """

    #: Extra entropy for the model's random streams (e.g. ``(rank,)``); () by default.
    stream_key: tuple[int, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _model_registry.register(cls)  # the classes xplayers.load_model may rebuild
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__init__)

    def __init__(
        self,
        backend: str | None = None,
        dtype: Any = "float32",
        seed: int | None = None,
        device: Any = None,
    ):
        self.backend = backends.get_backend(backend).name
        self.device = backends.resolve_device(self.backend, device)
        self.dtype = float_dtype(dtype)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, Any] = {}
        self.norm_params: list[dict] = []
        self.reg = 0.0
        self.train_step = 0

    @classmethod
    def state_shapes(cls, init_args: Mapping[str, Any]) -> StateShapes | None:
        """The shapes ``cls(**init_args)`` would give its params and normalisation
        statistics, computed from the arguments alone (nothing is allocated), so that a
        checkpoint's arguments are checked against its tensors before a model is built.

        TypeError or ValueError for arguments the constructor would refuse (unknown
        names included). None when the class cannot tell: a subclass with its own
        ``__init__`` says so by defining the classmethod ``_state_shapes(args)``, which
        receives every argument (defaults applied) but ``backend`` and ``device``.
        """
        for klass in cls.__mro__:
            if "_state_shapes" in klass.__dict__:
                break
            if "__init__" in klass.__dict__:
                return None
        signature = inspect.signature(cls)
        placement = {"backend", "device"} & set(init_args)
        if placement:
            raise TypeError(f"{sorted(placement)} are chosen by the caller, not the arguments")
        bound = signature.bind(**init_args)
        bound.apply_defaults()
        args = {k: v for k, v in bound.arguments.items() if k not in ("backend", "device")}
        seed = args.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise TypeError(f"seed must be None or an integer >= 0, got {seed!r:.60}")
        return cls._state_shapes(args)

    def normal(self, scale: float, shape: tuple[int, ...]) -> np.ndarray:
        """Host weights ~ N(0, scale**2): from ``seed``'s generator, or, with seed=None,
        ``np.random.normal(0, scale, shape)`` from NumPy's global state (the course's)."""
        if self.seed is None:
            return np.random.normal(0, scale, shape)  # noqa: NPY002 (the course's stream)
        return scale * self.rng.standard_normal(shape)

    def _set_params(self, host_params: dict[str, np.ndarray]) -> None:
        """Move host-drawn initial weights to the model's backend, device and dtype."""
        self.params = {
            k: backends.asarray(v, self.backend, self.dtype, self.device)
            for k, v in host_params.items()
        }

    def fill_norm_stats(self) -> None:
        """Zeros, on the params' device and in their dtype, for each running statistic
        the model does not hold yet: what batch norm starts from, so a compiled step's
        first call has the inputs of every later one. Nothing for a class that cannot
        tell its shapes (``state_shapes`` None)."""
        init_args = getattr(self, "init_args", None)
        if not self.norm_params or init_args is None:
            return
        placement = ("backend", "device")
        shapes = type(self).state_shapes({k: v for k, v in init_args.items() if k not in placement})
        if shapes is None:
            return
        first = next(iter(self.params.values()))
        xp = backends.get_namespace(param=first)
        for live, stats in zip(self.norm_params, shapes.norm, strict=False):
            for key, shape in stats.items():
                if live.get(key) is None:
                    live[key] = xp.zeros(shape, dtype=first.dtype, device=backends.device_of(first))

    def compute_dtype(self) -> Any:
        """The dtype the model computes in: that of the params it holds now."""
        first = next(iter(self.params.values()))
        return first.dtype

    def prepare_input(self, X: Any, y: Any = None) -> tuple[Any, Any]:
        """X (and y) -> arrays of the params' backend; X cast to the params' dtype.

        An array of another backend is an error, not a silent transfer.
        """
        xp = backends.get_namespace(
            X=X, **{"params['" + k + "']": v for k, v in self.params.items()}
        )
        dtype = self.compute_dtype()
        if X.dtype != dtype:
            X = xp.astype(X, dtype)
        if y is not None:
            backends.get_namespace(X=X, y=y)
        return X, y

    def to(self, backend: str, device: Any = None) -> Model:
        """Move params and normalisation statistics to ``backend`` and ``device``
        (None: the backend's default device); in place, returns self."""
        target = backends.get_backend(backend).name
        device = backends.resolve_device(target, device)
        self.params = backends.to_backend(self.params, target, device=device)
        self.norm_params = [backends.to_backend(p, target, device=device) for p in self.norm_params]
        self.backend, self.device = target, device
        return self

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the model's numbers, as host numpy arrays."""
        return {
            "params": {k: backends.to_numpy(v).copy() for k, v in self.params.items()},
            "norm_params": [
                {k: backends.to_numpy(v).copy() for k, v in p.items() if backends.is_array(v)}
                for p in self.norm_params
            ],
            "reg": self.reg,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore params and running statistics (exactly) from ``state_dict()``."""
        missing = set(self.params) - set(state["params"])
        if missing:
            raise KeyError(f"state dict lacks params {sorted(missing)}")
        self.params = {
            k: backends.asarray(v, self.backend, v.dtype, self.device)
            for k, v in state["params"].items()
        }
        saved = state.get("norm_params", [])
        if len(saved) != len(self.norm_params):
            raise ValueError(
                f"state dict has {len(saved)} normalisation layers, "
                f"the model has {len(self.norm_params)}"
            )
        for live, stored in zip(self.norm_params, saved, strict=True):
            for k, v in stored.items():
                live[k] = backends.asarray(v, self.backend, v.dtype, self.device)
        self.reg = state.get("reg", self.reg)

    def loss(self, X: Any, y: Any = None, label_range: tuple[int, int] | None = None) -> Any:
        """Scores (N, C) when ``y`` is None, else ``(loss, grads)``. ``label_range``, the
        (min, max) y is known to lie within, goes to the loss layer, which then checks the
        labels without reading them back (the Solver passes its training labels')."""
        raise NotImplementedError

    def begin_step(self, iteration: Any) -> None:
        """Called by the Solver before training step ``iteration`` (0-based): an int,
        or a 0-d integer array (traced inside a compiled step).

        Seeded randomness (dropout) derives its streams from the step, so
        training sees fresh masks per step yet repeats exactly for a given
        seed, while direct ``loss`` calls (gradient checks) keep their masks.
        """
        concrete = isinstance(iteration, (int, np.integer))
        self.train_step = int(iteration) if concrete else iteration

    def stream_entropy(self, seed: int, *key: int) -> tuple:
        """The entropy of one random stream, (seed, train_step, *key, *stream_key), so
        each layer (``key``) of each step gets its own stream; ``backends.uniform_like``
        takes it as its seed (the step may be a traced array there)."""
        return (int(seed), self.train_step, *key, *self.stream_key)

    def stream_seed(self, seed: int, *key: int) -> int:
        """The int seed of stream ``stream_entropy(seed, *key)`` on the host libraries:
        ``SeedSequence`` over that entropy (an int step only)."""
        entropy = [int(e) for e in self.stream_entropy(seed, *key)]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def _add_l2(self, loss: Any, grads: dict[str, Any], names: Any = None) -> Any:
        """Add ``0.5 * reg * sum(W**2)`` to ``loss`` and ``reg * W`` to ``grads[W]``.

        ``names`` are the weight matrices to penalise (default: every param whose
        name starts with 'W', the CS231n convention; biases and norm scales are
        not penalised). ``self.reg`` is read at each call, so callers may change
        it between steps. Everything stays on the params' device: no sync.
        """
        reg = float(self.reg)
        if reg == 0.0:
            return loss
        if names is None:
            names = [k for k in self.params if k.startswith("W")]
        for k in names:
            w = self.params[k]
            xp = backends.get_namespace(**{f"params[{k!r}]": w})
            loss = loss + 0.5 * reg * xp.sum(w * w)
            grads[k] = grads[k] + reg * w
        return loss
