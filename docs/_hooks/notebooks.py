"""MkDocs hook: serve the tutorial notebooks from examples/notebooks/ as docs/notebooks/.

The notebooks live beside the examples, where users run them; this adds each
one to the site's files under ``notebooks/`` so mkdocs-jupyter renders it
(without executing it) and the nav can name it, with no copy in docs/.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(__file__).resolve().parents[2] / "examples" / "notebooks"


def on_files(files: Files, config) -> Files:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(File.generated(config, f"notebooks/{path.name}", abs_src_path=str(path)))
    return files
