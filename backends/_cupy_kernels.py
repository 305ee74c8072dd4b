"""Fused element-wise parameter updates for CuPy: one kernel per parameter.

The generic rules in ``xplayers.optim`` are chains of standard operations,
each a kernel launch and a pass over memory on a GPU (Adam: about a dozen).
Here each rule's ``UpdateFormula`` becomes one kernel doing the same
arithmetic in one pass, updating the state in place and writing next_w.
The source is generated from the formula (``kernel_source``, testable
without CuPy); it is compiled on first use, once per formula and dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ._formulas import INPUTS, OUTPUT, UpdateFormula


def kernel_source(formula: UpdateFormula) -> tuple[str, str, str, str]:
    """``cupy.ElementwiseKernel``'s (in_params, out_params, operation, name) for
    ``formula``: w, dw and the scalars in, the state and next_w out (a state
    array is read and written in place), every operand of the array's type T."""
    inputs = ", ".join(f"T {name}" for name in (*INPUTS, *formula.scalars))
    outputs = ", ".join(f"T {name}" for name in (*formula.state, OUTPUT))
    operation = "\n".join(f"{target} = {expr.strip()};" for target, expr in formula.statements)
    return inputs, outputs, operation, f"xplayers_{formula.name}"


@functools.cache
def _kernel(cupy: ModuleType, formula: UpdateFormula) -> Any:
    return cupy.ElementwiseKernel(*kernel_source(formula))


def fused_update(
    formula: UpdateFormula, w: Any, dw: Any, state: Sequence[Any], scalars: Sequence[float]
) -> Any:
    """next_w of ``formula`` on w's device, the state arrays updated in place."""
    import cupy

    with w.device:
        return run(cupy, formula, w, dw, state, scalars)


def run(
    cupy: ModuleType,
    formula: UpdateFormula,
    w: Any,
    dw: Any,
    state: Sequence[Any],
    scalars: Sequence[float],
) -> Any:
    """next_w of ``formula`` through ``cupy``'s ElementwiseKernel and empty_like (the
    tests pass a stand-in that runs the source on NumPy), the state updated in place."""
    next_w = cupy.empty_like(w)
    _kernel(cupy, formula)(w, dw, *scalars, *state, next_w)
    return next_w
