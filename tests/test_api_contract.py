"""docs/api.md is the public contract users read: every signature it spells
(``name(arg, key=default)``) exists with those parameters, in that order,
with those defaults; every layer, optimizer and Solver keyword it names
exists; its subpackages are reachable from ``import xplayers`` alone.

What the contract lists before it is built is marked below with the issue
that builds it, as a strict xfail: the day it lands, the mark must go.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xplayers
from xplayers import checkpoint, data, distributed, gradcheck, layers, models, optim, solver

REPO = Path(__file__).resolve().parents[1]
CONTRACT = (REPO / "docs" / "api.md").read_text()

#: Where a bare or dotted name in the contract is looked up, first hit wins.
SCOPES: dict[str, Any] = {
    "xplayers.checkpoint": checkpoint,
    "xplayers.distributed": distributed,
    "xplayers": xplayers,
    "Solver": solver.Solver,
}
MODULES = (layers, optim, gradcheck, models, data, xplayers)

#: Contract entries not built yet, and the issue that builds each.
PENDING: dict[str, str] = {}


def _resolve(name: str) -> Any:
    """The object a contract name means, or None when it is not ours (``np.random.seed``)."""
    for prefix, scope in SCOPES.items():
        if name == prefix:
            return scope
        if name.startswith(prefix + "."):
            obj = scope
            for part in name[len(prefix) + 1 :].split("."):
                obj = getattr(obj, part, None)
            return obj if obj is not None else _MISSING
    if "." not in name:
        return next((getattr(m, name) for m in MODULES if hasattr(m, name)), None)
    return None


_MISSING = object()


def _spelled_signatures() -> list[tuple[str, str]]:
    """Every ``name(...)`` in the contract whose parentheses parse as a parameter list."""
    found = []
    for match in re.finditer(r"([A-Za-z_][\w.]*)\(", CONTRACT):
        depth, end = 1, match.end()
        while depth and end < len(CONTRACT):
            depth += {"(": 1, ")": -1}.get(CONTRACT[end], 0)
            end += 1
        args = CONTRACT[match.end() : end - 1]
        try:
            _parameters(args)
        except (SyntaxError, NameError):
            continue  # a call with values (``Solver(model, data, comm=comm, ...)``)
        if args.strip():
            found.append((match.group(1), args))
    return sorted(set(found))


def _parameters(args: str) -> list[tuple[str, Any]]:
    """``"x, w, h=1e-5"`` -> [("x", EMPTY), ("w", EMPTY), ("h", 1e-05)]."""
    fn = ast.parse(f"def f({args}): pass").body[0].args
    plain = [*fn.posonlyargs, *fn.args]
    defaults = [inspect.Parameter.empty] * (len(plain) - len(fn.defaults)) + [
        eval(compile(ast.Expression(d), "api.md", "eval"), {"float32": np.float32})
        for d in fn.defaults
    ]
    params = [(a.arg, d) for a, d in zip(plain, defaults, strict=True)]
    if fn.vararg:
        params.append(("*" + fn.vararg.arg, inspect.Parameter.empty))
    if fn.kwarg:
        params.append(("**" + fn.kwarg.arg, inspect.Parameter.empty))
    return params


def _same_default(documented: Any, actual: Any) -> bool:
    if documented is np.float32:  # the contract says float32; the code may say "float32"
        return np.dtype(actual) == np.float32
    return documented == actual


SIGNATURES = [(n, a) for n, a in _spelled_signatures() if _resolve(n) is not None]


def _pending(entry: str) -> list:
    return [pytest.mark.xfail(strict=True, reason=PENDING[entry])] if entry in PENDING else []


SIGNATURE_CASES = [pytest.param(n, a, id=n, marks=_pending(n)) for n, a in SIGNATURES]


def test_the_contract_spells_the_main_signatures() -> None:
    names = {n for n, _ in SIGNATURES}
    for expected in (
        "FullyConnectedNet",
        "xplayers.asarray",
        "Solver.resume",
        "affine_forward",
        "eval_numerical_gradient",
        "xplayers.load_model",
        "get_cifar10_data",
    ):
        assert expected in names, sorted(names)


@pytest.mark.parametrize(("name", "args"), SIGNATURE_CASES)
def test_signature_matches_the_contract(name: str, args: str) -> None:
    obj = _resolve(name)
    assert obj is not _MISSING, f"docs/api.md names {name}, which does not exist"
    actual = inspect.signature(obj)
    kinds = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    real = [(kinds.get(p.kind, "") + p.name, p) for p in actual.parameters.values()]
    real = [(n, p) for n, p in real if n != "self"]
    order = [n for n, _ in real]
    documented = _parameters(args)
    for pname, default in documented:
        assert pname in order, f"{name}: no parameter {pname!r} in {actual}"
        param = dict(real)[pname]
        if default is not inspect.Parameter.empty:
            assert _same_default(default, param.default), (
                f"{name}({pname}=...): the contract says {default!r}, the code {param.default!r}"
            )
    positions = [order.index(p) for p, _ in documented]
    assert positions == sorted(positions), f"{name}: the contract's order differs from {actual}"
    # What the code adds beyond the contract must be optional.
    extra = [p for n, p in real if n not in dict(documented)]
    required = [
        p.name
        for p in extra
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    assert not required, f"{name}: required parameters {required} are not in the contract"


def test_every_layer_in_the_contract_exists() -> None:
    table = CONTRACT.split("## Layers", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(\w+_(?:forward|backward|loss)\w*)", table))
    assert len(names) >= 25, names
    missing = sorted(n for n in names if not callable(getattr(layers, n, None)))
    assert not missing, f"layers named in docs/api.md but absent: {missing}"


def test_every_optimizer_in_the_contract_exists() -> None:
    section = CONTRACT.split("## Optimizers", 1)[1].split("\n## ", 1)[0]
    rules = re.findall(r"`(\w+)`", section.split("each", 1)[0])
    assert rules == ["sgd", "sgd_momentum", "rmsprop", "adam"]
    for rule in rules:
        assert list(inspect.signature(getattr(optim, rule)).parameters) == ["w", "dw", "config"]


def test_every_solver_keyword_in_the_contract_is_accepted(tmp_path) -> None:
    section = CONTRACT.split("## Training", 1)[1].split("\n## ", 1)[0]
    keywords = re.findall(r"`(\w+)`", section.split("; `data`", 1)[0])
    assert "update_rule" in keywords and "checkpoint_name" in keywords, keywords
    model = models.TwoLayerNet(input_dim=4, hidden_dim=3, num_classes=2, seed=0, backend="numpy")
    rows = {"X_train": np.zeros((4, 4)), "y_train": np.zeros(4, int)}
    rows.update(X_val=rows["X_train"], y_val=rows["y_train"])
    values = {
        "update_rule": "sgd",
        "optim_config": {},
        "lr_decay": 1.0,
        "batch_size": 2,
        "num_epochs": 1,
        "num_train_samples": None,
        "num_val_samples": None,
        "checkpoint_name": str(tmp_path / "run"),
        "print_every": 1,
        "verbose": False,
    }
    assert set(keywords) == set(values), keywords
    s = solver.Solver(model, rows, **values)
    for method in ("train", "check_accuracy"):
        assert callable(getattr(s, method))
    with pytest.raises(ValueError, match="unrecognized Solver arguments"):
        solver.Solver(model, rows, no_such_keyword=1)


@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, marks=_pending(e)) for e in PENDING],
)
def test_pending_contract_entries(entry: str) -> None:
    assert entry.split("(")[0] in CONTRACT
    assert callable(getattr(solver.Solver, entry.split(".")[1], None))


def test_solver_takes_the_contracts_jit_keyword() -> None:
    """``Solver(..., jit=None)`` (the contract): None, True and False are taken on every
    backend (the others ignore it), anything else is a TypeError naming it."""
    assert "Solver(..., jit=None)" in CONTRACT
    model = models.TwoLayerNet(input_dim=4, hidden_dim=3, num_classes=2, backend="numpy")
    rows = {"X_train": np.zeros((4, 4)), "y_train": np.zeros(4, int)}
    data = {**rows, "X_val": rows["X_train"], "y_val": rows["y_train"]}
    for jit in (None, True, False):
        assert solver.Solver(model, data, jit=jit).jit is jit
    with pytest.raises(TypeError, match=r"jit must be None .*True or False.*got 'yes'"):
        solver.Solver(model, data, jit="yes")


def test_subpackages_load_on_first_use() -> None:
    """``import xplayers`` alone reaches every public subpackage, and loads none of
    the heavy ones until asked (the checkpoint code included)."""
    code = (
        "import sys, xplayers\n"
        "heavy = ('checkpoint', 'distributed', 'parity', 'layers', 'solver', 'models')\n"
        "print(sorted(h for h in heavy if f'xplayers.{h}' in sys.modules))\n"
        "print(xplayers.distributed.init.__module__, xplayers.checkpoint.save.__module__,\n"
        "      xplayers.parity.compare.__name__, xplayers.backends.__name__,\n"
        "      xplayers.layers.affine_forward.__name__, xplayers.CheckpointError.__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    loaded, reached = proc.stdout.strip().splitlines()
    assert loaded == "[]"
    assert reached.split() == [
        "xplayers.distributed",
        "xplayers.checkpoint",
        "compare",
        "xplayers.backends",
        "affine_forward",
        "CheckpointError",
    ]
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        xplayers.nonexistent  # noqa: B018
