"""The torch.distributed engine, for processes started by torchrun.

gloo reduces CPU tensors and NCCL CUDA ones (``"cpu:gloo,cuda:nccl"`` when
CUDA is present); arrays of other backends are staged as CPU tensors.
torchrun's agent ends the remaining workers when one exits with an error,
which is how ``abort`` reaches every rank.
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Any

import numpy as np

from ._base import Communicator

#: How long a collective may wait for a missing rank before it fails (not hangs).
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


class TorchCommunicator(Communicator):
    """The default process group (initialised here from torchrun's environment if needed)."""

    engine = "torch"
    _trivial = False

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self._torch, self._dist = torch, dist
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(local_rank % torch.cuda.device_count())
            dist.init_process_group(
                backend="cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT
            )
            # A group still alive when the interpreter exits can abort the process
            # from a gloo thread's destructor ("terminate called"): close it first.
            atexit.register(_destroy, dist)
        super().__init__(dist.get_rank(), dist.get_world_size(), local_rank)

    def _native(self, flat: Any) -> bool:
        return isinstance(flat, self._torch.Tensor)

    def _from_host(self, host: np.ndarray) -> Any:
        return self._torch.from_numpy(host)

    def _to_host(self, buf: Any) -> np.ndarray:
        return buf.numpy()

    def _allreduce_sum_flat(self, buf: Any) -> Any:
        self._dist.all_reduce(buf, op=self._dist.ReduceOp.SUM)
        return buf

    def _broadcast_flat(self, buf: Any, root: int) -> Any:
        self._dist.broadcast(buf, src=root)
        return buf

    def _allgather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        self._dist.barrier()


def _destroy(dist: Any) -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
