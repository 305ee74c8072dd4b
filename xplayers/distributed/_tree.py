"""Trees of arrays (an array, or nested dicts/lists/tuples of them) packed
into flat contiguous buffers and rebuilt from them.

Collectives move one flat buffer per dtype: gloo reduces strided views
wrongly without an error and MPI refuses them, and one large message costs
far less latency than one per parameter.
"""

from __future__ import annotations

from typing import Any

from .. import backends

__all__ = ["Packed", "leaves"]


def leaves(tree: Any, path: str = "tree") -> list[tuple[str, Any]]:
    """(path, array) for every array of ``tree``, in a fixed order.

    Dicts are walked in insertion order, so every rank must build its tree
    the same way (the Solver does: it walks the model's own dicts).
    """
    if isinstance(tree, dict):
        return [item for k, v in tree.items() for item in leaves(v, f"{path}[{k!r}]")]
    if isinstance(tree, (list, tuple)):
        return [item for i, v in enumerate(tree) for item in leaves(v, f"{path}[{i}]")]
    if backends.is_array(tree):
        return [(path, tree)]
    raise TypeError(
        f"{path} must be an array or a dict/list/tuple of arrays, got {type(tree).__name__}"
    )


def _rebuild(tree: Any, values: list[Any]) -> Any:
    """``tree`` with its arrays replaced, in ``leaves`` order, by ``values`` (consumed)."""
    if isinstance(tree, dict):
        return {k: _rebuild(v, values) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        out = [_rebuild(v, values) for v in tree]
        return tuple(out) if isinstance(tree, tuple) else out
    return values.pop(0)


class Packed:
    """The arrays of a tree as one flat contiguous buffer per dtype.

    ``buffers`` maps a dtype name to a 1-d array of the leaves' backend and
    device, the leaves of that dtype concatenated in ``leaves`` order;
    ``unpack(buffers)`` rebuilds the tree from buffers of the same layout.
    """

    def __init__(self, tree: Any, name: str = "tree") -> None:
        self.tree = tree
        self.items = leaves(tree, name)
        named = {path: x for path, x in self.items}
        self.xp = backends.get_namespace(**named) if named else None
        self.groups: dict[str, list[int]] = {}
        for i, (_, x) in enumerate(self.items):
            self.groups.setdefault(str(backends.numpy_dtype(x.dtype)), []).append(i)

    def buffers(self) -> dict[str, Any]:
        xp = self.xp
        return {
            dtype: xp.concat([xp.reshape(self.items[i][1], (-1,)) for i in idx])
            for dtype, idx in self.groups.items()
        }

    def unpack(self, buffers: dict[str, Any]) -> Any:
        """The tree rebuilt from ``buffers`` (views into them)."""
        values: list[Any] = [None] * len(self.items)
        for dtype, idx in self.groups.items():
            flat = buffers[dtype]
            start = 0
            for i in idx:
                x = self.items[i][1]
                size = _size(x.shape)
                values[i] = self.xp.reshape(flat[start : start + size], tuple(x.shape))
                start += size
        return _rebuild(self.tree, values)

    def signature(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """path -> (shape, dtype name), what every rank must agree on."""
        return {
            path: (tuple(int(d) for d in x.shape), str(backends.numpy_dtype(x.dtype)))
            for path, x in self.items
        }


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
