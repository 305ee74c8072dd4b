"""Import boundaries, read from the source (AST): the layers and optimizers see
arrays only through the standard and ``xplayers.backends``; the models and the
Solver use NumPy only for host-side data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xplayers"
LIBRARIES = ("numpy", "torch", "cupy", "jax", "array_api_strict")
IMPORTERS = ("__import__", "import_module")  # builtins.__import__, importlib.import_module

#: What models/* and solver.py may take from NumPy, each host-side by nature:
HOST_NUMPY = {
    # seeded generators and seed streams: weight init, shuffling, batch order
    "random.default_rng",
    "random.SeedSequence",
    # the course's global stream (np.random.seed(231) reproduces its numbers)
    "random.normal",
    # initial parameters built on the host, then moved by backends.to_backend
    "zeros",
    "ones",
    # types of host data: annotations, isinstance checks of host inputs and
    # of the scalars a config or checkpoint holds, dtype names
    "ndarray",
    "generic",
    "dtype",
    "integer",
    "floating",
    "bool_",
    "float32",
    "float64",
}


def _modules(*relative: str) -> list[Path]:
    out = []
    for rel in relative:
        path = PACKAGE / rel
        out.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    return out


def _root(name: str | None) -> str:
    return (name or "").split(".")[0]


def library_imports(source: str) -> list[str]:
    """'line: what' for every import of an array library, in any form."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if _root(a.name) in LIBRARIES]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.level == 0 and _root(node.module) in LIBRARIES else []
        elif isinstance(node, ast.Call):
            fn = node.func
            called = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
            first = node.args[0] if node.args else None
            text = first.value if isinstance(first, ast.Constant) else None
            names = [text] if called in IMPORTERS and _root(str(text)) in LIBRARIES else []
        else:
            names = []
        found += [f"{node.lineno}: imports {n}" for n in names]
    return found


def backend_names(source: str) -> list[str]:
    """'line: what' for every string literal that is a backend's name."""
    return [
        f"{node.lineno}: names {node.value!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if node.value.strip().lower() in LIBRARIES
    ]


def numpy_uses(source: str) -> list[str]:
    """'line: np.<attr>' for every use of NumPy outside HOST_NUMPY (whatever its
    local name), and every bare use of the module (passed around, called)."""
    tree = ast.parse(source)
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "numpy"}
        elif isinstance(node, ast.ImportFrom) and _root(node.module) == "numpy":
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names]
    chains = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in chains:
            parts, inner = [], node
            while isinstance(inner, ast.Attribute):
                chains.add(id(inner))
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                attr = ".".join(reversed(parts))
                chains.add(id(inner))
                if attr not in HOST_NUMPY:
                    found.append(f"{node.lineno}: {inner.id}.{attr}")
    found += [
        f"{node.lineno}: {node.id} itself"
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id in aliases and id(node) not in chains
    ]
    return found


PURE = _modules("layers", "optim.py")
HOST_SIDE = _modules("models", "solver.py")


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_layers_and_optimizers_reach_no_library_but_through_backends(path: Path) -> None:
    source = path.read_text()
    assert library_imports(source) + backend_names(source) == []


@pytest.mark.parametrize("path", HOST_SIDE, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_models_and_solver_use_numpy_for_host_data_only(path: Path) -> None:
    assert numpy_uses(path.read_text()) == []


def test_the_boundary_modules_are_found() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in PURE + HOST_SIDE}
    assert {"layers/conv.py", "optim.py", "models/cnn.py", "solver.py"} <= names


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import numpy as np", ["1: imports numpy"]),
        ("import os, torch.nn", ["1: imports torch.nn"]),
        ("from cupy import cuda", ["1: imports cupy"]),
        ("from jax.numpy import sum", ["1: imports jax.numpy"]),
        ("x = __import__('array_api_strict')", ["1: imports array_api_strict"]),
        ("m = importlib.import_module('numpy.linalg')", ["1: imports numpy.linalg"]),
        ("from .. import backends\nfrom .numpy_like import f\nimport math", []),
    ],
)
def test_every_form_of_library_import_is_caught(source: str, expected: list[str]) -> None:
    assert library_imports(source) == expected


def test_backend_names_as_strings_are_caught() -> None:
    source = 'if backends.backend_of(x) == "torch":\n    pass\nflag = name in ("cupy", "jax")\n'
    assert backend_names(source) == ["1: names 'torch'", "3: names 'cupy'", "3: names 'jax'"]
    assert backend_names('"""Runs on numpy, torch and cupy."""\nkey = "x-last"') == []


def test_numpy_compute_in_host_side_modules_is_caught() -> None:
    source = (
        "import numpy as onp\n"
        "from numpy.linalg import norm\n"
        "rng = onp.random.default_rng(0)\n"  # allowed
        "w: onp.ndarray = onp.zeros(3)\n"  # allowed
        "y = onp.sum(w) + onp.linalg.norm(w)\n"
        "f(onp)\n"
    )
    assert sorted(numpy_uses(source)) == sorted(
        [
            "2: from numpy.linalg import norm",
            "5: onp.sum",
            "5: onp.linalg.norm",
            "6: onp itself",
        ]
    )
