"""The update rules' formulas (``optim.FORMULAS``): the CuPy kernels generated from
them, and the generic chains held to them, with no GPU needed."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers import defaults, optim
from xplayers.backends import _cupy_kernels

#: What the kernel generator makes of each rule (CuPy's ElementwiseKernel arguments).
KERNELS = {
    "sgd": ("T w, T dw, T lr", "T next_w", "next_w = w - lr * dw;"),
    "sgd_momentum": (
        "T w, T dw, T mu, T lr",
        "T velocity, T next_w",
        "velocity = mu * velocity - lr * dw;\nnext_w = w + velocity;",
    ),
    "rmsprop": (
        "T w, T dw, T decay, T lr, T eps",
        "T cache, T next_w",
        "cache = cache + (1 - decay) * (dw * dw - cache);\n"
        "next_w = w - lr * (dw / (sqrt(cache) + eps));",
    ),
    "adam": (
        "T w, T dw, T b1, T b2, T eps, T step",
        "T m, T v, T next_w",
        "m = m + (1 - b1) * (dw - m);\nv = v + (1 - b2) * (dw * dw - v);\n"
        "next_w = w - step * (m / (sqrt(v) + eps));",
    ),
}


class NumpyKernels:
    """A stand-in for the ``cupy`` module that ``_cupy_kernels.run`` is given: its
    ElementwiseKernel runs the generated source line by line on NumPy arrays
    (each line ``x = expr;`` is also Python), writing outputs in place as CuPy does."""

    empty_like = staticmethod(np.empty_like)

    class ElementwiseKernel:
        def __init__(self, in_params: str, out_params: str, operation: str, name: str) -> None:
            def names(params: str) -> list[str]:
                return [re.fullmatch(r"T (\w+)", p.strip()).group(1) for p in params.split(",")]

            self.inputs, self.outputs = names(in_params), names(out_params)
            self.lines = [line.removesuffix(";") for line in operation.splitlines()]
            assert all(line.endswith(";") for line in operation.splitlines())
            assert name.isidentifier()

        def __call__(self, *args: object) -> None:
            env = {"sqrt": np.sqrt, **dict(zip(self.inputs + self.outputs, args, strict=True))}
            for line in self.lines:
                exec(line, {}, env)  # generated from the formulas, constants of optim
            for name, array in zip(self.outputs, args[len(self.inputs) :], strict=True):
                array[...] = env[name]


@pytest.mark.parametrize("name", optim.UPDATE_RULES)
def test_the_kernel_source_is_generated_from_the_formula(name) -> None:
    formula = optim.FORMULAS[name]
    assert _cupy_kernels.kernel_source(formula) == (*KERNELS[name], f"xplayers_{name}")


def test_rule_names_are_defined_once() -> None:
    assert optim.UPDATE_RULES == tuple(KERNELS) == defaults.UPDATE_RULES
    assert set(defaults.DEFAULT_LEARNING_RATES) == set(optim.UPDATE_RULES)
    assert defaults.DEFAULT_UPDATE_RULE in optim.UPDATE_RULES
    for name in optim.UPDATE_RULES:
        assert optim.get_update_rule(name) is getattr(optim, name)
        assert optim.FORMULAS[name].name == name


@pytest.mark.parametrize("name", optim.UPDATE_RULES)
def test_each_generic_rule_computes_its_formula(name, monkeypatch) -> None:
    """Five float64 steps from a non-zero state: the rule's generic chain and its
    generated kernel (run on NumPy) give the same bits, next_w and state; the rule
    hands the kernel its formula and its scalars as floats in the formula's order."""
    rule = getattr(optim, name)
    rng = np.random.default_rng(5)
    w0 = 1e-3 * rng.standard_normal((6, 7))  # small, so the step's rounding shows in w
    grads = [rng.standard_normal((6, 7)) for _ in range(5)]
    start = {"velocity": 0.1, "cache": 0.2, "m": 0.1, "v": 0.2}
    start = {k: np.full((6, 7), value) for k, value in start.items()}

    def five_steps():
        w, config = w0, dict(start, t=3, learning_rate=1e-2)
        config = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in config.items()}
        for dw in grads:
            w, config = rule(w, dw, config)
        return w, config

    generic = five_steps()
    calls = []
    numpy_adapter = backends.get_backend("numpy")
    real = backends.fused_update

    def spy(formula, w, dw, state, scalars):
        calls.append((formula, scalars))
        return real(formula, w, dw, state, scalars)

    def fused(formula, w, dw, state, scalars):
        return _cupy_kernels.run(kernels, formula, w, dw, state, scalars)

    kernels = NumpyKernels()
    monkeypatch.setattr(backends, "fused_update", spy)
    monkeypatch.setattr(numpy_adapter, "fused_update", fused)
    kernel = five_steps()

    assert len(calls) == 5 and all(f is optim.FORMULAS[name] for f, _ in calls)
    for _, scalars in calls:
        assert type(scalars)._fields == optim.FORMULAS[name].scalars
        assert all(type(s) is float for s in scalars)
    np.testing.assert_array_equal(kernel[0], generic[0])
    for key in optim.FORMULAS[name].state:
        np.testing.assert_array_equal(kernel[1][key], generic[1][key], err_msg=key)
    assert kernel[1]["t"] == generic[1]["t"]


def test_a_numpy_scalar_config_keeps_the_parameter_dtype() -> None:
    """A learning rate drawn with numpy (np.float64) is a float like the others: the
    float32 parameter stays float32 (NumPy 2 would promote to float64)."""
    w = np.ones((3, 2), dtype=np.float32)
    for rule in optim.UPDATE_RULES:
        next_w, _ = optim.get_update_rule(rule)(w, w, {"learning_rate": np.float64(1e-2)})
        assert next_w.dtype == np.float32, rule


def test_only_cupy_has_fused_updates(backend) -> None:
    x = backend.asarray(np.ones((2, 2)))
    adam = optim.FORMULAS["adam"]
    scalars = optim.AdamScalars(b1=0.9, b2=0.999, eps=1e-8, step=1e-3)
    assert backend.name == "cupy" or backends.fused_update(adam, x, x, (x, x), scalars) is None
    with pytest.raises(ValueError, match=r"'adam' takes state \('m', 'v'\).*got 1 state"):
        backends.fused_update(adam, x, x, (x,), scalars)


def _formula(scalars=("a",), state=("s",), **statements):
    statements = statements or {"s": "s + a * dw", "next_w": "w - s"}
    return backends.UpdateFormula("rule", scalars, state, tuple(statements.items()))


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        ({"s": "s + b * dw", "next_w": "w - s"}, "'b' is none of"),
        ({"s": "s + 1e-8 * dw", "next_w": "w - s"}, "literal 1e-08 is not an integer"),
        ({"s": "s ** 2", "next_w": "w - s"}, "the only operators are"),
        ({"s": "s + (1 / 2) * dw", "next_w": "w - s"}, "C divides integer literals"),
        ({"s": "exp(s)", "next_w": "w - s"}, "'exp\\(s\\)' is not common to Python and C"),
        ({"s": "s if a else dw", "next_w": "w - s"}, "is not common to Python and C"),
        ({"s": "s +", "next_w": "w - s"}, "not an expression"),
        ({"next_w": "w - s"}, "expected each of \\['s'\\] once, then 'next_w'"),
        ({"next_w": "w - s", "s": "s + a * dw"}, "expected each of"),
        ({"s": "s", "w": "s", "next_w": "w - s"}, "expected each of"),
    ],
)
def test_a_formula_outside_the_common_language_is_refused(statements, message) -> None:
    with pytest.raises(ValueError, match=f"formula 'rule'.*{message}"):
        _formula(**statements)


@pytest.mark.parametrize(
    ("scalars", "state", "message"),
    [
        (("w",), ("s",), "'w' cannot name a scalar or state"),
        (("a",), ("i",), "'i' cannot name a scalar or state"),
        (("T",), ("s",), "'T' cannot name"),
        (("a",), ("a",), "names repeat"),
    ],
)
def test_formula_names_are_checked(scalars, state, message) -> None:
    with pytest.raises(ValueError, match=message):
        _formula(scalars, state, **{s: "a * dw" for s in state}, next_w="w")
