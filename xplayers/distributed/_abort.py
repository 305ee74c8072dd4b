"""The abort hook: an uncaught exception on any rank ends every rank.

Without it a failing rank exits while the others wait for it in the next
collective forever. The hook prints the traceback with the rank's name, then
calls ``comm.abort(1)``: MPI_Abort for the MPI and NCCL engines, an error exit
that torchrun's agent turns into the end of the other workers for torch.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Any

__all__ = ["install_abort_hook"]


def install_abort_hook(comm: Any) -> None:
    """Replace ``sys.excepthook`` so an uncaught exception aborts the whole group."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        try:
            text = "".join(traceback.format_exception(kind, exc, tb))
            sys.stderr.write(
                f"xplayers.distributed: rank {comm.rank} of {comm.size} failed; "
                f"aborting all ranks:\n{text}"
            )
        except Exception:  # the abort below matters more than the message
            previous(kind, exc, tb)
        comm.abort(1)

    sys.excepthook = hook
