"""The NCCL engine (CuPy's ``cupy.cuda.nccl``) for CuPy arrays, one GPU per rank.

Processes are started by an MPI launcher; mpi4py sends rank 0's NCCL id to
the others and serves the small host-side collectives (shape checks,
objects, barrier, abort). Each rank uses GPU ``local_rank % device_count``;
one GPU cannot host two NCCL ranks. Collectives run on CuPy's current stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backends
from ._mpi import MPICommunicator


class NCCLCommunicator(MPICommunicator):
    """NCCL for the arrays, MPI (``MPI.COMM_WORLD``) for everything else."""

    engine = "nccl"

    def __init__(self) -> None:
        super().__init__()
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as exc:
            raise ImportError(
                "the 'nccl' engine needs CuPy with NCCL: pip install 'xplayers[cuda12]'"
            ) from exc
        self._cupy, self._nccl = cupy, nccl
        cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self._comm.bcast(uid, root=0)
        self._group = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._dtypes = {
            np.dtype(np.float16): nccl.NCCL_FLOAT16,
            np.dtype(np.float32): nccl.NCCL_FLOAT32,
            np.dtype(np.float64): nccl.NCCL_FLOAT64,
            np.dtype(np.int32): nccl.NCCL_INT32,
            np.dtype(np.int64): nccl.NCCL_INT64,
        }

    def _native(self, flat: Any) -> bool:
        return backends.backend_of(flat) == "cupy"

    def _from_host(self, host: np.ndarray) -> Any:
        return self._cupy.asarray(host)

    def _to_host(self, buf: Any) -> np.ndarray:
        return self._cupy.asnumpy(buf)

    def _nccl_args(self, buf: Any) -> tuple[int, int, int]:
        dtype = np.dtype(buf.dtype)
        if dtype not in self._dtypes:
            raise TypeError(
                f"the nccl engine moves {sorted(str(d) for d in self._dtypes)} arrays, "
                f"got a cupy {dtype} array"
            )
        return buf.data.ptr, buf.size, self._dtypes[dtype]

    def _allreduce_sum_flat(self, buf: Any) -> Any:
        ptr, count, dtype = self._nccl_args(buf)
        stream = self._cupy.cuda.get_current_stream().ptr
        self._group.allReduce(ptr, ptr, count, dtype, self._nccl.NCCL_SUM, stream)
        return buf

    def _broadcast_flat(self, buf: Any, root: int) -> Any:
        ptr, count, dtype = self._nccl_args(buf)
        stream = self._cupy.cuda.get_current_stream().ptr
        self._group.bcast(ptr, count, dtype, root, stream)
        return buf

    def abort(self, code: int = 1) -> None:
        # NCCL kernels in flight would keep the GPU busy after MPI ends the process.
        self._group.abort()
        super().abort(code)
