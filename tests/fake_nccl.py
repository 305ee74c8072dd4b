"""A stand-in for ``cupy.cuda.nccl``, to test the nccl engine's wiring without a GPU.

It is not a GPU and proves nothing about NCCL itself: its "device buffers"
are host NumPy arrays and its NcclCommunicator runs each collective over
``MPI.COMM_WORLD`` on them. What it does check, under a real mpiexec:
which device each rank selects, that every rank joins with rank 0's unique
id, and that each collective gets a pointer, element count, NCCL dtype and
stream that match the buffer. ``install()`` puts it in ``sys.modules`` of
the worker process only; CUDA reports itself unavailable, so the cupy
backend stays off and the arrays stay numpy.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import numpy as np

NCCL_DTYPES = {
    "NCCL_FLOAT16": np.float16,
    "NCCL_FLOAT32": np.float32,
    "NCCL_FLOAT64": np.float64,
    "NCCL_INT32": np.int32,
    "NCCL_INT64": np.int64,
}
NCCL_SUM = 0
DEVICE_COUNT = 2
STREAM_PTR = 4242

#: What the engine did on this rank: the device it used, the id it joined
#: with, and one (operation, element count) entry per collective.
log: dict = {"device": None, "uid": None, "calls": []}
_buffers: dict[int, np.ndarray] = {}


class _Memory:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class FakeDeviceArray:
    """A host array posing as device memory (``.data.ptr``, ``.size``, ``.dtype``)."""

    def __init__(self, host: np.ndarray) -> None:
        self.host = np.array(host, copy=True, order="C")
        self.dtype, self.size = self.host.dtype, self.host.size
        self.data = _Memory(self.host.ctypes.data)
        _buffers[self.data.ptr] = self.host


class _Device:
    def __init__(self, index: int = 0) -> None:
        self.index = index

    def use(self) -> None:
        log["device"] = self.index


class _Stream:
    ptr = STREAM_PTR

    def synchronize(self) -> None:
        pass


class NcclCommunicator:
    def __init__(self, ndev: int, uid: bytes, rank: int) -> None:
        from mpi4py import MPI

        self._comm = MPI.COMM_WORLD
        assert (ndev, rank) == (self._comm.Get_size(), self._comm.Get_rank())
        log["uid"] = uid

    def _buffer(self, ptr: int, count: int, dtype: int, stream: int) -> np.ndarray:
        buf = _buffers[ptr]
        expected = NCCL_DTYPES[_dtype_names[dtype]]
        assert buf.size == count and buf.dtype == expected and stream == STREAM_PTR
        return buf

    def allReduce(self, send: int, recv: int, count: int, dtype: int, op: int, stream: int):
        from mpi4py import MPI

        assert send == recv and op == NCCL_SUM
        self._comm.Allreduce(MPI.IN_PLACE, self._buffer(send, count, dtype, stream), op=MPI.SUM)
        log["calls"].append(("allreduce", count))

    def bcast(self, ptr: int, count: int, dtype: int, root: int, stream: int) -> None:
        self._comm.Bcast(self._buffer(ptr, count, dtype, stream), root=root)
        log["calls"].append(("bcast", count))

    def abort(self) -> None:
        pass


_dtype_names = {code: name for code, name in enumerate(NCCL_DTYPES)}


def _module(name: str, **attrs: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    mod.__dict__.update(attrs)
    return mod


def install() -> None:
    """Make ``import cupy`` and ``from cupy.cuda import nccl`` give the stand-in."""
    rng = np.random.default_rng()
    nccl = _module(
        "cupy.cuda.nccl",
        NcclCommunicator=NcclCommunicator,
        NCCL_SUM=NCCL_SUM,
        get_unique_id=lambda: rng.bytes(16),
        **{name: code for code, name in _dtype_names.items()},
    )
    runtime = _module("cupy.cuda.runtime", getDeviceCount=lambda: DEVICE_COUNT)
    cuda = _module(
        "cupy.cuda",
        Device=_Device,
        runtime=runtime,
        nccl=nccl,
        is_available=lambda: False,
        get_current_stream=_Stream,
    )
    cupy = _module(
        "cupy",
        cuda=cuda,
        ndarray=FakeDeviceArray,
        asarray=FakeDeviceArray,
        asnumpy=lambda a: a.host.copy(),
    )
    sys.modules.update(
        {"cupy": cupy, "cupy.cuda": cuda, "cupy.cuda.nccl": nccl, "cupy.cuda.runtime": runtime}
    )
