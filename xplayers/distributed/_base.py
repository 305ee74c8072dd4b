"""What every engine's communicator offers, built on a few flat-buffer primitives.

An engine implements ``_allreduce_sum_flat`` / ``_broadcast_flat`` on its
native 1-d buffers, ``_allgather_object``, ``barrier`` and ``abort``; this
class packs trees into those buffers, stages arrays the engine cannot take
directly through the host, and checks that ranks agree on shapes and settings.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import backends
from ._tree import Packed

__all__ = ["Communicator", "DistributedError", "flush_output"]


class DistributedError(RuntimeError):
    """Ranks disagree on something they must share: a parameter's shape or
    dtype, a training setting, a data split's shape (see ``check_same``)."""

    __module__ = "xplayers.distributed"


class Communicator:
    """A group of ``size`` processes; this one is ``rank`` (``local_rank`` on its machine).

    Trees are an array or nested dicts/lists/tuples of arrays, built in the
    same order on every rank. Every collective must be called by all ranks.
    This base class is the "single" engine (one process, no messages).
    """

    engine = "single"
    #: Collectives return their input untouched (only the single engine):
    #: real engines pack and send even at one rank, so a 1-rank launch runs
    #: the same code as a larger one.
    _trivial = True

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0) -> None:
        self.rank, self.size, self.local_rank = int(rank), int(size), int(local_rank)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} engine={self.engine!r} rank={self.rank} "
            f"size={self.size} local_rank={self.local_rank}>"
        )

    # ------------------------------------------------------------ collectives
    def allreduce_sum(self, tree: Any) -> Any:
        """``tree`` summed elementwise over ranks: one fused flat buffer per dtype."""
        packed = Packed(tree)
        if self._trivial or not packed.items:
            return tree
        return packed.unpack(
            {d: self._staged(self._allreduce_sum_flat, b) for d, b in packed.buffers().items()}
        )

    def allreduce_mean(self, tree: Any) -> Any:
        """``tree`` (floating arrays) averaged over ranks: sum over ranks / size.

        Trees of one dtype (a model's gradients) travel as ONE contiguous buffer.
        """
        packed = Packed(tree)
        bad = [p for p, x in packed.items if backends.numpy_dtype(x.dtype).kind != "f"]
        if bad:
            raise TypeError(f"allreduce_mean averages floating arrays; {bad} are not floating")
        if self._trivial or not packed.items:
            return tree
        scale = 1.0 / self.size
        return packed.unpack(
            {
                d: self._staged(self._allreduce_sum_flat, b) * scale
                for d, b in packed.buffers().items()
            }
        )

    def broadcast(self, tree: Any, root: int = 0) -> Any:
        """Rank ``root``'s values of ``tree`` on every rank (same shapes everywhere)."""
        self._check_root(root)
        packed = Packed(tree)
        if self._trivial or not packed.items:
            return tree
        return packed.unpack(
            {
                d: self._staged(lambda buf: self._broadcast_flat(buf, root), b)
                for d, b in packed.buffers().items()
            }
        )

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s picklable ``obj`` on every rank."""
        self._check_root(root)
        return obj if self.size == 1 else self._allgather_object(obj)[root]

    def check_same(
        self,
        tree: Any,
        name: str = "tree",
        what: str = "parameter",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise DistributedError on every rank unless all ranks' trees have
        the same paths, shapes and dtypes and all ranks' ``settings`` (name ->
        value, compared as text with dict keys sorted) the same values.

        ONE exchange (an allgather of this rank's small description) serves
        both, so every rank reaches the same verdict and none is left waiting.
        The message names each differing setting or parameter (paths start
        with ``name``) and groups the ranks by the value they hold.
        """
        if self.size == 1:
            return
        mine = {("setting", key): _as_text(v) for key, v in (settings or {}).items()}
        for path, (shape, dtype) in Packed(tree, name).signature().items():
            mine[(what, path)] = f"shape {shape} {dtype}"
        every = self._allgather_object(mine)
        problems, counts = [], {}
        for kind, key in dict.fromkeys(k for sig in every for k in sig):
            seen: dict[str, list[int]] = {}
            for r, sig in enumerate(every):
                seen.setdefault(sig.get((kind, key), "missing"), []).append(r)
            if len(seen) > 1:
                parts = "; ".join(f"{text} on ranks {ranks}" for text, ranks in seen.items())
                problems.append(f"{kind} {key}: {parts}")
                counts[kind] = counts.get(kind, 0) + 1
        if problems:
            tally = " and ".join(f"{n} {kind}(s)" for kind, n in counts.items())
            raise DistributedError(
                f"ranks disagree on {tally} (rank {self.rank} of {self.size} reporting): "
                + " | ".join(problems)
            )

    def barrier(self) -> None:
        """Wait until every rank has reached this call."""

    def abort(self, code: int = 1) -> None:
        """End every rank of the group now with exit status ``code``."""
        _exit_now(code)

    # ----------------------------------------------------- engine primitives
    def _native(self, flat: Any) -> bool:
        """Whether the engine takes ``flat`` as it is (otherwise it goes through the host)."""
        return isinstance(flat, np.ndarray)

    def _from_host(self, host: np.ndarray) -> Any:
        """A host buffer as the engine's native buffer."""
        return host

    def _to_host(self, buf: Any) -> np.ndarray:
        return backends.to_numpy(buf)

    def _staged(self, op: Any, flat: Any) -> Any:
        """``op`` on ``flat``, staged through the engine's native buffer type if needed."""
        if self._native(flat):
            return op(flat)
        host = np.require(backends.to_numpy(flat), requirements=["C", "W"])
        out = self._to_host(op(self._from_host(host)))
        return backends.asarray(out, backends.backend_of(flat), device=flat.device)

    def _allreduce_sum_flat(self, buf: Any) -> Any:
        return buf

    def _broadcast_flat(self, buf: Any, root: int) -> Any:
        return buf

    def _allgather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def _check_root(self, root: int) -> None:
        if not 0 <= int(root) < self.size:
            raise ValueError(f"root must be a rank in [0, {self.size}), got {root!r}")


def _as_text(value: Any) -> str:
    """``value`` as text that two ranks can compare: a string as it is, numbers
    by value (3 and np.int64(3) agree), dicts with sorted keys, lists and tuples
    alike, functions and classes by qualified name, anything else by repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return repr(float(value))
    if isinstance(value, Mapping):
        items = sorted((str(k), _inner_text(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inner_text(v) for v in value) + "]"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    return repr(value)


def _inner_text(value: Any) -> str:
    """``_as_text`` inside a dict or list, where strings keep their quotes."""
    return repr(value) if isinstance(value, str) else _as_text(value)


def flush_output() -> None:
    """Flush stdout and stderr (before an abort, so the last messages are seen)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit_now(code: int) -> None:
    """End this process at once, after flushing (no cleanup that could block)."""
    flush_output()
    os._exit(int(code))
