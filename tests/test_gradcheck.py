"""The numerical gradient helpers themselves, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from xplayers.gradcheck import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)


def test_scalar_gradient_of_known_function(backend) -> None:
    host = np.array([[0.5, -1.0], [2.0, 0.25]])
    x = backend.asarray(host)
    grad = eval_numerical_gradient(lambda v: backend.xp.sum(v**3), x, verbose=False)
    assert rel_error(grad, 3 * host**2) < 1e-9
    np.testing.assert_array_equal(backend.numpy(x), host)  # restored after probing


def test_array_gradient_of_known_function(backend) -> None:
    host = np.array([0.3, -0.7, 1.1])
    df = np.array([1.0, 2.0, -1.0])
    grad = eval_numerical_gradient_array(
        lambda v: backend.xp.sin(v), backend.asarray(host), backend.asarray(df)
    )
    assert rel_error(grad, np.cos(host) * df) < 1e-9


def test_sparse_check_reports_worst_error(backend, capsys) -> None:
    host = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = backend.asarray(host)
    f = lambda v: backend.xp.sum(v * v)  # noqa: E731
    good = grad_check_sparse(f, x, backend.asarray(2 * host), num_checks=5, seed=0)
    assert good < 1e-9 and "relative error" in capsys.readouterr().out
    bad = grad_check_sparse(f, x, backend.asarray(3 * host), num_checks=5, seed=0, verbose=False)
    assert abs(bad - 0.2) < 1e-6  # |2 - 3| / (2 + 3)


def test_rel_error() -> None:
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.ones(2), np.ones(3))
