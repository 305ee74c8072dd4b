"""Writing checkpoints: the files a run writes, each written atomically.

The bytes go to a temporary file in the same folder, are flushed to disk
(fsync), and the temporary file is renamed over the target, so a reader sees
the old file or the new one, whole. A temporary file left behind by a killed
process is never read, and is removed by the next save of the same
checkpoint. Nothing here reads a checkpoint (``xplayers.checkpoint`` does),
so a Solver that writes them does not load the reading code.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import safetensors.numpy

from ._checkpoint_layout import pack

SUFFIX = ".safetensors"
_EPOCH_FILE = re.compile(r"^(?P<name>.*)_epoch_(?P<epoch>\d+)" + re.escape(SUFFIX) + "$")


def epoch_path(name: str | os.PathLike, epoch: int) -> Path:
    """``{name}_epoch_{epoch}.safetensors``, the file ``Solver(checkpoint_name=name)``
    writes after ``epoch`` epochs (a trailing ``.safetensors`` on ``name`` is dropped)."""
    name = str(name)
    if name.endswith(SUFFIX):
        name = name[: -len(SUFFIX)]
    return Path(f"{name}_epoch_{epoch}{SUFFIX}")


def checkpoint_name_of(path: str | os.PathLike) -> str:
    """The ``checkpoint_name`` that wrote ``path`` (``run`` for ``run_epoch_3.safetensors``);
    the path without its suffix for any other name."""
    match = _EPOCH_FILE.match(str(path))
    if match:
        return match["name"]
    text = str(path)
    return text[: -len(SUFFIX)] if text.endswith(SUFFIX) else text


def write(
    path: str | os.PathLike, model: Any, solver: Any = None, info: dict | None = None
) -> Path:
    """``xplayers.checkpoint.save``: ``model`` (and ``solver``'s state) to ``path``."""
    tensors, metadata = pack(model, solver, info)
    _atomic_write(safetensors.numpy.save(tensors, metadata=metadata), Path(path))
    return Path(path)


def save_solver(solver: Any) -> None:
    """Write ``{checkpoint_name}_epoch_{epoch}.safetensors`` if the solver has a name.

    Without ``keep_checkpoints`` the file of the previous check is removed
    once the new one is in place, so only the latest stays; a file of another
    name (one a run under another name was resumed from) is never removed.
    """
    if solver.checkpoint_name is None:
        return
    path = epoch_path(solver.checkpoint_name, solver.epoch)
    write(path, solver.model, solver, info=solver.checkpoint_info)
    previous, solver.last_checkpoint = solver.last_checkpoint, path
    if (
        not solver.keep_checkpoints
        and previous is not None
        and previous != path
        and checkpoint_name_of(previous) == checkpoint_name_of(path)
    ):
        previous.unlink(missing_ok=True)


def _atomic_write(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, whole."""
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in folder.glob(f"{glob.escape(prefix)}*.tmp"):
        stale.unlink(missing_ok=True)  # left by a process killed mid-write
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
