"""Griffe extension: find ``xplayers.backends`` where pyproject puts it.

The repository keeps the adapters in the top-level ``backends/`` folder and
installs them as ``xplayers.backends`` (``[tool.setuptools.package-dir]``).
Griffe reads the source tree, where ``xplayers/`` has no ``backends``
subfolder, so this loads ``backends/`` and attaches it under ``xplayers``:
the reference then documents it by its import name and the package's own
re-exports (``xplayers.asarray`` ...) resolve.
"""

from __future__ import annotations

from typing import Any

import griffe


class BackendsSubpackage(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "xplayers" or "backends" in pkg.members:
            return
        backends = loader.load("backends", try_relative_path=False)
        pkg.set_member("backends", backends)
