"""Backend-parity runs: ``xplayers.parity.compare`` and the ``xplayers parity`` command."""

from __future__ import annotations

import numpy as np
import pytest
from subprocess_helpers import assert_png

import xplayers.backends as backends
import xplayers.parity as parity
from xplayers.cli import main

pytestmark = pytest.mark.skipif(
    backends.unavailable_reason("array_api_strict") is not None,
    reason="array_api_strict is not installed",
)
CASES = ["numpy", "array_api_strict:device1"]


def test_difference_is_relative_to_the_reference() -> None:
    ref = np.array([[2.0, -4.0], [0.0, 1.0]])
    assert parity.difference(ref + np.array([[0, 0], [0, 1e-3]]), ref) == pytest.approx(
        (1e-3, 2.5e-4)
    )
    assert parity.difference(np.full(2, 1e-9), np.zeros(2)) == (1e-9, 1e-9)  # all-zero ref
    # The floor makes differences of near-zero references absolute.
    assert parity.difference(np.array([2e-9]), np.array([1e-9]), 1.0)[1] == pytest.approx(1e-9)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        parity.difference(np.zeros(3), np.zeros(2))


@pytest.mark.parametrize("model", ["fc", "cnn"])
def test_the_same_seeded_run_on_a_second_device_agrees(model) -> None:
    report = parity.compare(CASES, model=model, iterations=4)
    case = "array_api_strict:device1"
    assert report.cases == ["numpy:cpu", case]
    assert len(report.loss[case]) == len(report.params[case]) == 4
    # array_api_strict computes with NumPy: the training run is the same to the bit
    # or, where a chunked conv sums in another order, to rounding.
    assert max(report.loss[case]) <= 1e-14 and max(report.params[case]) <= 1e-14
    assert set(report.layers) == set(parity._families.FAMILIES)
    assert report.layers["affine"][case] == (0.0, 0.0)
    assert report.passed and report.worst() <= 1e-14


def test_a_layer_that_differs_on_one_backend_fails_the_report(monkeypatch) -> None:
    relu = parity._families.FAMILIES["relu"]

    def off_on_strict(a):
        out, dx = relu[2](a)
        if backends.backend_of(out) == "array_api_strict":
            out = out * (1 + 1e-6)  # a wrong layer, by far less than any plot would show
        return out, dx

    monkeypatch.setitem(parity._families.FAMILIES, "relu", (*relu[:2], off_on_strict))
    report = parity.compare(CASES, iterations=1)
    assert report.layers["relu"]["array_api_strict:device1"][1] == pytest.approx(1e-6, rel=1e-3)
    assert not report.passed  # 1e-6 > the float64 tolerance
    assert report.tolerance == parity.TOLERANCES["float64"] == 1e-8


def test_the_command_prints_both_tables_plots_and_gates(tmp_path, capsys, monkeypatch) -> None:
    png = tmp_path / "parity.png"
    argv = ["parity", "--backends", ",".join(CASES), "--iterations", "3", "--plot", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tolerance (float64): relative difference <= 1e-08" in out
    rows = out.split("after each iteration")[1].split("\n\n")[0].splitlines()[2:]
    assert [r.split()[0] for r in rows] == ["1", "2", "3"]
    assert "conv " in out and "within tolerance" in out
    assert_png(png)
    # Over the tolerance (here: none allowed, and conv sums in another order): status 1.
    monkeypatch.setitem(parity.TOLERANCES, "float64", 0.0)
    assert main(argv) == 1
    assert "OVER tolerance" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("backends_flag", "needle"),
    [("numpy", "two or more"), ("numpy,foo", "unknown backend 'foo'"),
     ("numpy,array_api_strict:device9", "device9"), ("numpy,numpy", "named twice")],
)  # fmt: skip
def test_bad_backend_lists_are_usage_errors(backends_flag, needle, capsys) -> None:
    assert main(["parity", "--backends", backends_flag]) == 2
    err = capsys.readouterr().err
    assert "argument --backends" in err and needle in err and "Traceback" not in err
