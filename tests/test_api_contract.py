"""docs/api.md is the public contract users read: it stays equal to the
team's shared copy, and every layer it names exists with that name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xplayers import layers

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO / "docs" / "api.md"
SHARED = REPO.parent / "shared" / "API.md"


def test_docs_copy_equals_the_shared_contract() -> None:
    if not SHARED.is_file():
        pytest.skip(f"no shared contract beside the checkout ({SHARED})")
    assert CONTRACT.read_bytes() == SHARED.read_bytes(), "cp ../shared/API.md docs/api.md"


def test_every_layer_in_the_contract_exists() -> None:
    table = CONTRACT.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(\w+_(?:forward|backward|loss)\w*)", table))
    assert len(names) >= 25, names
    missing = sorted(n for n in names if not callable(getattr(layers, n, None)))
    assert not missing, f"layers named in docs/api.md but absent: {missing}"
