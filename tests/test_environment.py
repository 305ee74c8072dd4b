"""The XPLAYERS_* environment variables from Python: a bad value raises
EnvironmentVariableError (a BackendError, so a ValueError) naming the variable,
its value and what it must be, when the value is read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import xplayers
import xplayers.backends as backends

BAD = [
    (
        "XPLAYERS_NUM_THREADS",
        "abc",
        "a positive integer",
        lambda: backends.map_chunks(abs, [1, 2], np.zeros(1)),
    ),
    ("XPLAYERS_NUM_THREADS", "0", "a positive integer", backends.check_environment),
    ("XPLAYERS_WORKSPACE_MB", "-1", "a number of megabytes >= 0", backends.workspace_limit),
    ("XPLAYERS_WORKSPACE_MB", "inf", "a number of megabytes >= 0", backends.check_environment),
    ("XPLAYERS_BACKEND", "nope", "a backend available here", xplayers.default_backend),
]


@pytest.mark.parametrize(("variable", "value", "expected", "read"), BAD)
def test_a_bad_value_raises_a_typed_error_naming_it(
    monkeypatch, variable, value, expected, read
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(backends.EnvironmentVariableError) as info:
        read()
    err = info.value
    assert (err.variable, err.value, err.expected.split(" (")[0]) == (variable, value, expected)
    assert str(err).startswith(f"environment variable {variable} must be {expected}")
    assert f"got {value!r}" in str(err)
    assert isinstance(err, xplayers.BackendError) and isinstance(err, ValueError)
    # It survives a trip between processes (pickled), message and all.
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_good_values_and_blanks_are_read(monkeypatch) -> None:
    monkeypatch.setenv("XPLAYERS_WORKSPACE_MB", " 1.5 ")
    monkeypatch.setenv("XPLAYERS_NUM_THREADS", "")
    backends.check_environment()
    assert backends.workspace_limit() == int(1.5 * 2**20)
    monkeypatch.setenv("XPLAYERS_WORKSPACE_MB", "")
    assert backends.workspace_limit() == 256 << 20
