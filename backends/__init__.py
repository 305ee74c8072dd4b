"""The backends: one adapter per array library and the registry over them.

- ``_registry``: which libraries exist, which are usable here, the default;
- ``_namespace``: which namespace an array belongs to, dtypes by name;
- ``_transfer``: explicit moves between the host, the backends and devices;
- ``_devices``: where an array lives, device names, running on a device;
- ``_ops``: what the standard lacks (random numbers, products into buffers,
  strided views, chunked work), forwarded to the array's adapter;
- ``_policy`` / ``_workspace`` / ``_threads``: how work is chunked, buffered
  and run on every core;
- ``_environment``: the ``XPLAYERS_*`` variables that tune them, parsed;
- ``_errors``: ``BackendError`` and ``EnvironmentVariableError``.

Importing this package imports no array library beyond NumPy and never
initialises CUDA: each adapter probes its library only when asked.
"""

from __future__ import annotations

from ._base import Backend
from ._devices import device_label, device_of, devices, on_device_of, parse_case, resolve_device
from ._environment import THREADS_ENV, WORKSPACE_ENV, check_environment
from ._errors import BackendError, EnvironmentVariableError
from ._formulas import UpdateFormula
from ._namespace import describe_array, dtype_name, get_namespace, numpy_dtype, resolve_dtype
from ._ops import (
    compiler,
    device_scalar,
    fused_update,
    map_chunks,
    matmul,
    matmul_into,
    slices_are_views,
    strided_view,
    synchronize,
    tracing_errors,
    uniform_like,
    work_policy,
    workspace,
    writes_in_place,
)
from ._policy import WorkPolicy
from ._registry import (
    BACKEND_NAMES,
    available_backends,
    backend_of,
    default_backend,
    describe,
    get_backend,
    is_array,
    unavailable_reason,
)
from ._transfer import asarray, is_host, to_backend, to_numpy
from ._workspace import (
    Workspace,
    release_workspace,
    workspace_bytes,
    workspace_limit,
)

__all__ = [
    "BACKEND_NAMES",
    "THREADS_ENV",
    "WORKSPACE_ENV",
    "Backend",
    "BackendError",
    "EnvironmentVariableError",
    "UpdateFormula",
    "WorkPolicy",
    "Workspace",
    "asarray",
    "available_backends",
    "backend_of",
    "check_environment",
    "compiler",
    "default_backend",
    "describe",
    "describe_array",
    "device_label",
    "device_of",
    "device_scalar",
    "devices",
    "dtype_name",
    "fused_update",
    "get_backend",
    "get_namespace",
    "is_array",
    "is_host",
    "map_chunks",
    "matmul",
    "matmul_into",
    "numpy_dtype",
    "on_device_of",
    "parse_case",
    "release_workspace",
    "resolve_device",
    "resolve_dtype",
    "slices_are_views",
    "strided_view",
    "synchronize",
    "to_backend",
    "to_numpy",
    "tracing_errors",
    "unavailable_reason",
    "uniform_like",
    "work_policy",
    "workspace",
    "workspace_bytes",
    "workspace_limit",
    "writes_in_place",
]
