"""``xplayers backends``: which array libraries run here, and on what."""

from __future__ import annotations

import argparse

from .. import backends


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``backends`` subcommand's parser."""
    b = sub.add_parser("backends", help="list the array backends and where they run")
    b.set_defaults(handler=run, subparser=b)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Print one line per backend: name, availability, default device and every device
    (what --device takes), or the reason it is not available."""
    rows = backends.describe()
    default = _default_backend_text()
    width = max(len(name) for name, _, _ in rows)
    for name, available, info in rows:
        if available:
            mark = " (default)" if name == default else ""
            print(
                f"{name:<{width}}  available      device: {info}{mark}"
                f"  devices: {', '.join(backends.devices(name))}"
            )
        else:
            print(f"{name:<{width}}  not available  reason: {info}")
    return 0


def _default_backend_text() -> str | None:
    try:
        return backends.default_backend()
    except backends.BackendError:
        return None
