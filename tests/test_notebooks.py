"""The tutorial notebooks in examples/notebooks/: committed clean, and each runs
top to bottom (in a fresh kernel, on the default backend) and draws its picture.

Each notebook asserts its own numbers (gradient checks, parity gaps, accuracies),
so a notebook that executes without error has also passed those checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from subprocess_helpers import REPO

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((REPO / "examples" / "notebooks").glob("*.ipynb"))
#: Seconds one cell may take; every notebook is meant to finish well under a minute.
CELL_TIMEOUT = 300


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_is_a_notebook_per_tutorial() -> None:
    assert len(NOTEBOOKS) == 6, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_and_draws(path: Path, tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert images, f"{path.name} drew no picture"
