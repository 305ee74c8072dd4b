"""The error every backends module raises, at the bottom of the import graph.

The adapters (``_base`` and below) raise it as well as the registry above
them, so it lives here, importing nothing: ``backends.BackendError`` and
``xplayers.BackendError`` re-export it.
"""

from __future__ import annotations


class BackendError(ValueError):
    """An unknown or unavailable backend, or arrays of several backends mixed."""
