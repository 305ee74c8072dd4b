"""The package's import structure: no circles, and each part loads only what it needs."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from subprocess_helpers import REPO, run_python

PACKAGE = REPO / "xplayers"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module under xplayers/ by dotted name: (file, whether it is a package)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _module_level_imports(name: str, path: Path, is_package: bool, known: set[str]) -> set:
    """The modules of ``known`` that ``name`` imports when it is loaded: its top-level
    statements (and the branches of top-level if/try; not ``if TYPE_CHECKING``), not the
    imports inside its functions, which run only when called."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for s in statements:
            if isinstance(s, ast.Import):
                found.update(a.name for a in s.names)
            elif isinstance(s, ast.ImportFrom):
                base = s.module or ""
                if s.level:
                    parts = package.split(".")[: len(package.split(".")) - (s.level - 1)]
                    base = ".".join(parts + ([s.module] if s.module else []))
                for a in s.names:  # ``from pkg import mod`` imports the module mod
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in known else base)
            elif isinstance(s, ast.If):
                if not (isinstance(s.test, ast.Name) and s.test.id == "TYPE_CHECKING"):
                    visit(s.body)
                    visit(s.orelse)
            elif isinstance(s, ast.Try):
                visit(s.body)
                visit(s.orelse)
                visit(s.finalbody)
                for handler in s.handlers:
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in found if m in known and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_in_a_circle() -> None:
    modules = _modules()
    graph = {m: _module_level_imports(m, *modules[m], set(modules)) for m in modules}
    assert "xplayers._model_registry" in graph["xplayers.models._base"]  # the graph is real
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _loaded_after(code: str) -> list[str]:
    """The xplayers modules loaded (but backends' and the layers' own) after ``code`` runs
    in a fresh interpreter."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('xplayers'))))\n"
    )
    proc = run_python("-c", probe)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    return [m for m in loaded if not m.startswith(("xplayers.backends.", "xplayers.layers."))]


def test_the_layers_load_only_the_layers_checks_and_backends() -> None:
    loaded = _loaded_after("import xplayers.layers")
    assert loaded == ["xplayers", "xplayers._checks", "xplayers.backends", "xplayers.layers"]


def test_the_models_load_no_checkpoint_or_training_code() -> None:
    loaded = _loaded_after("import xplayers.models")
    outside = [m for m in loaded if not m.startswith("xplayers.models")]
    assert outside == [
        "xplayers", "xplayers._checks", "xplayers._model_registry", "xplayers.backends",
        "xplayers.layers",
    ]  # fmt: skip


READING = ["xplayers._checkpoint_fit", "xplayers._checkpoint_reader", "xplayers._resume",
           "xplayers.checkpoint"]  # fmt: skip


def test_training_with_checkpoints_loads_no_reading_code(tmp_path) -> None:
    """The Solver writes checkpoints; the code that reads them loads on a resume only."""
    train = (
        "import numpy as np\n"
        "from xplayers.solver import Solver\n"
        "from xplayers.models import TwoLayerNet\n"
        "model = TwoLayerNet(input_dim=4, hidden_dim=3, num_classes=2, seed=0, backend='numpy')\n"
        "X, y = np.ones((8, 4)), np.arange(8) % 2\n"
        "data = dict(X_train=X, y_train=y, X_val=X, y_val=y)\n"
        f"run = {str(tmp_path / 'run')!r}\n"
        "Solver(model, data, batch_size=4, num_epochs=1, checkpoint_name=run, verbose=False)"
        ".train()\n"
    )
    loaded = _loaded_after(train)
    assert "xplayers._checkpoint_writer" in loaded and "xplayers.solver" in loaded
    assert [m for m in READING if m in loaded] == []
    assert (tmp_path / "run_epoch_1.safetensors").is_file()
    resumed = train.replace(".train()", ".load_checkpoint(run + '_epoch_1.safetensors')")
    assert set(READING) <= set(_loaded_after(resumed))


def test_load_model_in_a_fresh_interpreter_knows_the_built_in_models(tmp_path) -> None:
    """The registry of model classes sits below the checkpoint code; reading a checkpoint
    defines (so registers) the built-in classes without the caller importing them."""
    from xplayers import checkpoint
    from xplayers.models import ThreeLayerConvNet

    model = ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4,
                              num_classes=3, seed=0, backend="numpy")  # fmt: skip
    path = checkpoint.save(tmp_path / "cnn.safetensors", model)
    proc = run_python("-c", f"import xplayers; print(type(xplayers.load_model({str(path)!r})))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "<class 'xplayers.models.cnn.ThreeLayerConvNet'>"
