"""The cross-backend comparison itself fails where it should."""

from __future__ import annotations

import numpy as np
import pytest
from asserts import assert_close


def test_assert_close_checks_backend_dtype_and_values(other_backend, numpy_case) -> None:
    host = np.array([1.0, 2.0, 1e-9])
    ref = numpy_case.asarray(host)
    x = other_backend.asarray(host)
    assert_close(x, ref, like=x, rtol=1e-12)  # the tiny entry compares to the largest
    with pytest.raises(AssertionError, match="expected the backend of the inputs"):
        assert_close(ref, ref, like=x, rtol=1e-12)
    with pytest.raises(AssertionError, match="dtype float32, expected float64"):
        assert_close(other_backend.asarray(host, "float32"), ref, like=x, rtol=1e-3)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        assert_close(other_backend.asarray(host * 1.001), ref, like=x, rtol=1e-6)
