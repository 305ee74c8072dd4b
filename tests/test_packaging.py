"""The installed package holds every module of the source tree: an editable
install imports from the tree and would hide a package missing from
pyproject's list, which a user's ``pip install xplayers`` would then lack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    roots = {"xplayers": REPO / "xplayers"}
    roots.update({name: REPO / path for name, path in setuptools["package-dir"].items()})
    found = set()
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but not in the tree: {sorted(listed - found)}"


def test_a_checkout_imports_its_own_backends_without_an_install() -> None:
    """``python -m pytest`` and the benchmarks put the checkout first on sys.path; with
    no editable install behind it (a plain ``pip install .``, or none), the checkout's
    ``xplayers`` still finds ``xplayers.backends`` in its sibling ``backends/``."""
    code = (
        "import sys\n"
        # Forget any editable install's finder: only the checkout on sys.path remains.
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import xplayers, xplayers.backends as b, xplayers.layers\n"
        "print(xplayers.__file__); print(b.__file__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO.parent, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    package, backends_init = proc.stdout.split()
    assert package == str(REPO / "xplayers" / "__init__.py")
    assert backends_init == str(REPO / "backends" / "__init__.py")
