"""One comparison for every cross-backend check (the idea of SciPy's
``xp_assert_close``): the array must be of the expected namespace, dtype,
shape and device before its values are compared."""

from __future__ import annotations

from typing import Any

import numpy as np

import xplayers.backends as backends


def assert_close(
    actual: Any,
    desired: Any,
    *,
    like: Any,
    rtol: float,
    atol: float | None = None,
    err_msg: str = "",
) -> None:
    """``actual`` matches ``desired`` (any backend's array) and lives where ``like`` does.

    ``like``: an input of the computation, whose backend and device
    ``actual`` must share. The dtype must equal ``desired``'s. ``atol``
    defaults to ``rtol`` times the largest ``|desired|``, so entries that
    cancel to far below the largest compare relative to it.
    """
    what = f"{err_msg}: " if err_msg else ""
    assert backends.backend_of(actual) == backends.backend_of(like), (
        f"{what}a {backends.describe_array(actual)}, expected the backend of the inputs "
        f"({backends.backend_of(like)})"
    )
    assert actual.device == like.device, (
        f"{what}on device {actual.device}, expected the inputs' {like.device}"
    )
    got, want = backends.to_numpy(actual), backends.to_numpy(desired)
    assert got.dtype == want.dtype, f"{what}dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{what}shape {got.shape}, expected {want.shape}"
    if atol is None:
        atol = rtol * float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=err_msg)
