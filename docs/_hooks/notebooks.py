"""MkDocs hook: serve the tutorial notebooks from examples/notebooks/ as docs/notebooks/.

The notebooks live beside the examples, where users run them; this adds each
one to the site's files under ``notebooks/`` so mkdocs-jupyter executes and
renders it (outputs and figures on the page) and the nav can name it, with no
copy in docs/. The notebooks stay committed without outputs.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# Hooks run after the plugins by default; mkdocs-jupyter turns the notebooks it
# finds in its own on_files into pages, so they must be in the list before that.
@event_priority(50)
def on_files(files: Files, config) -> Files:
    # A plain File rooted at examples/ (not File.generated): mkdocs-jupyter's
    # wrapper recomputes the source path from src_dir, which a generated file lacks.
    for path in sorted((EXAMPLES / "notebooks").glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(EXAMPLES),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files
