"""Synchronous data parallelism over processes, on MPI, NCCL or torch.distributed.

``init(engine="auto")`` returns a communicator with ``rank``, ``size``,
``local_rank``, ``allreduce_mean(tree)`` (one fused contiguous buffer per
dtype), ``allreduce_sum``, ``broadcast(tree, root=0)``, ``barrier()`` and
``abort(code)``. Give it to ``Solver(..., comm=comm)`` to train on every rank
with the same results as one process. Engines:

- ``"single"``: one process, no launcher; every collective is the identity.
- ``"mpi"``: mpi4py (``pip install 'xplayers[mpi]'``, launch ``mpiexec -n N``);
  GPU arrays are staged through the host unless MPI is CUDA-aware.
- ``"nccl"``: CuPy's NCCL for CuPy arrays, bootstrapped over mpi4py; each
  rank takes GPU ``local_rank``.
- ``"torch"``: torch.distributed (gloo for CPU, NCCL for CUDA), under torchrun.

``"auto"`` reads the launcher's environment: mpiexec (Open MPI's
``OMPI_COMM_WORLD_SIZE``, MPICH's ``PMI_SIZE``, PMIx's ``PMIX_RANK``) gives
"mpi", torchrun (``TORCHELASTIC_RUN_ID``, or ``WORLD_SIZE`` with
``MASTER_ADDR``) gives "torch", nothing gives "single". With more than one
rank ``init`` installs an abort hook: an uncaught exception on any rank
ends every rank, naming the rank that failed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._abort import install_abort_hook
from ._base import Communicator, DistributedError

__all__ = ["ENGINES", "Communicator", "DistributedError", "detect_engine", "init"]

ENGINES = ("auto", "single", "mpi", "nccl", "torch")

_MPI_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")


def detect_engine(environ: Mapping[str, str] | None = None) -> str:
    """The engine ``init("auto")`` picks for the launcher ``environ`` shows."""
    env = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" in env or ("WORLD_SIZE" in env and "MASTER_ADDR" in env):
        return "torch"
    if any(v in env for v in _MPI_VARS):
        return "mpi"
    return "single"


def init(engine: str = "auto") -> Communicator:
    """A communicator over every process of the launch (see the module docstring)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "auto":
        engine = detect_engine()
    if engine == "single":
        comm = Communicator()
    elif engine == "mpi":
        from ._mpi import MPICommunicator

        comm = MPICommunicator()
    elif engine == "nccl":
        from ._nccl import NCCLCommunicator

        comm = NCCLCommunicator()
    else:
        from ._torch import TorchCommunicator

        comm = TorchCommunicator()
    if comm.size > 1:
        install_abort_hook(comm)
    return comm
