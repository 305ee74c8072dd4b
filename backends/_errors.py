"""The errors every backends module raises, at the bottom of the import graph.

The adapters (``_base`` and below) raise them as well as the registry above
them, so they live here, importing nothing: ``backends.BackendError`` and
``xplayers.BackendError`` re-export the first.
"""

from __future__ import annotations


class BackendError(ValueError):
    """An unknown or unavailable backend, or arrays of several backends mixed."""


class EnvironmentVariableError(BackendError):
    """A bad value in an ``XPLAYERS_*`` environment variable.

    ``variable``, ``value`` and ``expected`` (what it must be) are attributes,
    and the message names all three.
    """

    def __init__(self, variable: str, value: str, expected: str, detail: str = "") -> None:
        super().__init__(variable, value, expected, detail)
        self.variable, self.value, self.expected, self.detail = variable, value, expected, detail

    def __str__(self) -> str:
        text = f"environment variable {self.variable} must be {self.expected}, got {self.value!r}"
        return f"{text} ({self.detail})" if self.detail else text
