"""200 seeded mutations of valid checkpoints: each loads, or is a CheckpointError."""

from __future__ import annotations

from checkpoint_fuzz import run


def test_mutated_checkpoints_load_or_raise_checkpoint_error(tmp_path) -> None:
    result = run(200, seed=0, folder=tmp_path)
    assert result["failures"] == [], result["failures"][:5]
    outcomes = result["outcomes"]
    for way in ("load_model", "resume"):  # both ends exercised, nothing else
        assert outcomes[f"{way} loaded"] + outcomes[f"{way} CheckpointError"] == 200
        assert outcomes[f"{way} loaded"] > 5 and outcomes[f"{way} CheckpointError"] > 100
    assert result["peak_bytes"] < 64 * 2**20  # the files are a few KB
