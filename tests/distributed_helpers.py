"""What the distributed tests share: a loopback communicator for one-process
tests, and launchers that run tests/distributed_worker.py under mpiexec or
torchrun with a time limit (a hang fails the test, it never stalls CI).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xplayers.distributed import Communicator

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "distributed_worker.py"
LAUNCH_TIMEOUT = 90  # seconds; a hung collective fails the test instead of stalling CI
MPIEXEC = shutil.which(
    "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
HAVE_MPI = MPIEXEC is not None and importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI, reason="mpiexec or mpi4py not installed (pip install 'xplayers[mpi]')"
)
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"
)


class Loopback(Communicator):
    """``size`` ranks that all hold this rank's values (collectives counted),
    except that ``others`` (in rank order) stand for the objects the other
    ranks give to each allgather; ``sent`` keeps what this rank gave."""

    engine = "loopback"
    _trivial = False

    def __init__(self, size: int, rank: int = 0, others: list | None = None) -> None:
        super().__init__(rank, size, rank)
        self.others = others
        self.sent: list = []
        self.reductions: list[np.ndarray] = []

    def _allreduce_sum_flat(self, buf):
        self.reductions.append(buf)
        return buf * self.size

    def _allgather_object(self, obj):
        self.sent.append(obj)
        if self.others is None:
            return [obj] * self.size
        return [*self.others[: self.rank], obj, *self.others[self.rank :]]


def gathered_by(build, size: int = 2) -> list:
    """What ranks ``0 .. size-2`` give to the first allgather of ``build(comm)``."""
    sent = []
    for rank in range(size - 1):
        comm = Loopback(size, rank)
        build(comm)
        sent.append(comm.sent[0])
    return sent


def launch_env() -> dict[str, str]:
    """The environment of a launch: one thread per rank, the worker importable."""
    env = dict(os.environ)
    env["XPLAYERS_NUM_THREADS"] = "1"  # ranks share the cores
    env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    # The worker, and the checkout under test rather than the installed one.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "tests"), str(REPO), env.get("PYTHONPATH")])
    )
    return env


def launch(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd``; a launch still running after LAUNCH_TIMEOUT (a hang) fails the test."""
    return subprocess.run(
        cmd, cwd=REPO, env=launch_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT
    )


def mpiexec(n: int, *args: str) -> subprocess.CompletedProcess:
    """The worker with ``args`` on ``n`` MPI ranks."""
    return launch([MPIEXEC, "-n", str(n), sys.executable, str(WORKER), *args])


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """The worker with ``args`` on 2 ranks started by torchrun."""
    return launch(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(WORKER),
            *args,
        ]
    )
