"""Ranks whose Solvers disagree (settings, data sizes, model) refuse to start:
in one process over a loopback communicator, and under mpiexec and torchrun,
where every rank must raise DistributedError naming the difference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from distributed_helpers import Loopback, gathered_by, mpiexec, needs_mpi, needs_torch, torchrun
from distributed_worker import DISAGREEMENTS, make_solver

from xplayers import optim
from xplayers.distributed import DistributedError


def _refusal(rank0: dict, rank1: dict) -> str:
    """The DistributedError that rank 1 raises when rank 0 builds
    ``make_solver(**rank0)`` and rank 1 ``make_solver(**rank1)``."""
    sent = gathered_by(lambda comm: make_solver(comm=comm, **rank0))
    with pytest.raises(DistributedError) as info:
        make_solver(comm=Loopback(2, 1, others=sent), **rank1)
    return str(info.value)


@pytest.mark.parametrize(
    ("rank1", "expected"),
    [
        ({"num_epochs": 6}, ["setting num_epochs: 3 on ranks [0]; 6 on ranks [1]"]),
        (
            {"train_rows": 30},
            [
                "setting X_train: shape (60, 12) float64 on ranks [0]; "
                "shape (30, 12) float64 on ranks [1]",
                "setting y_train: shape (60,) int64 on ranks [0]; shape (30,) int64 on ranks [1]",
                "setting iterations_per_epoch: 6 on ranks [0]; 3 on ranks [1]",
            ],
        ),
        (
            {"val_rows": 10},
            [
                "setting X_val: shape (20, 12) float64 on ranks [0]; "
                "shape (10, 12) float64 on ranks [1]"
            ],
        ),
        ({"seed": None}, ["setting seed: 11 on ranks [0]; None on ranks [1]"]),
        ({"batch_size": 20}, ["setting batch_size: 10 on ranks [0]; 20 on ranks [1]"]),
        (
            {"update_rule": "sgd"},
            [
                "setting update_rule: xplayers.optim.adam on ranks [0]; "
                "xplayers.optim.sgd on ranks [1]"
            ],
        ),
        (
            {"optim_config": {"learning_rate": 1e-3}},
            [
                "setting optim_config: {'learning_rate': 0.01} on ranks [0]; "
                "{'learning_rate': 0.001} on ranks [1]"
            ],
        ),
        ({"lr_decay": 0.5}, ["setting lr_decay: 1.0 on ranks [0]; 0.5 on ranks [1]"]),
        ({"num_val_samples": 5}, ["setting num_val_samples: None on ranks [0]; 5 on ranks [1]"]),
        ({"print_every": 2}, ["setting print_every: 1 on ranks [0]; 2 on ranks [1]"]),
        (
            {"hidden_last": 9},
            [
                "setting model argument hidden_dims: [10, 8] on ranks [0]; [10, 9] on ranks [1]",
                "parameter model['params']['W2']: shape (10, 8) float64 on ranks [0]; "
                "shape (10, 9) float64 on ranks [1]",
            ],
        ),
        (
            {"case": "bn"},
            [
                "setting model argument normalization: None on ranks [0]; batchnorm on ranks [1]",
                "parameter model['params']['gamma1']: missing on ranks [0]; "
                "shape (10,) float64 on ranks [1]",
            ],
        ),
    ],
)
def test_ranks_that_disagree_on_a_setting_refuse_to_start_naming_it(rank1, expected) -> None:
    text = _refusal({}, rank1)
    assert text.startswith("ranks disagree on "), text
    assert "(rank 1 of 2 reporting)" in text
    for needle in expected:
        assert needle in text, (needle, text)


def test_ranks_that_write_the_same_settings_differently_agree() -> None:
    """Equal values in other spellings are no disagreement: a rule by name or
    function, dict keys in another order, numpy integers, another backend."""
    rank0 = {"optim_config": {"learning_rate": 1e-2, "beta1": 0.9}, "seed": 11}
    rank1 = {
        "update_rule": optim.adam,
        "optim_config": {"beta1": 0.9, "learning_rate": 1e-2},
        "seed": np.int64(11),
        "backend": "array_api_strict",  # in the test extra, like numpy
    }
    sent = gathered_by(lambda comm: make_solver(comm=comm, **rank0))
    solver = make_solver(comm=Loopback(2, 1, others=sent), **rank1)
    assert solver.seed == 11


#: A phrase of the refusal each DISAGREEMENTS case must give on every rank.
REFUSALS = {
    "num_epochs": "setting num_epochs: 3 on ranks [0]; 6 on ranks [1]",
    "X_train": "setting X_train: shape (60, 12) float64 on ranks [0]; shape (30, 12) float64 on "
    "ranks [1]",
    "X_val": "setting X_val: shape (20, 12) float64 on ranks [0]; shape (10, 12) float64 on "
    "ranks [1]",
    "seed": "setting seed: 11 on ranks [0]; 12 on ranks [1]",
    "update_rule": "setting update_rule: xplayers.optim.adam on ranks [0]; xplayers.optim.sgd "
    "on ranks [1]",
}


def _assert_refused(out: Path, cases: list[str]) -> None:
    """Every rank wrote, for each case in turn, a refusal naming the setting."""
    for rank in range(2):
        messages = json.loads((out / f"rank{rank}.json").read_text())
        assert list(messages) == cases
        for case in cases:
            assert f"(rank {rank} of 2 reporting)" in messages[case]
            assert REFUSALS[case] in messages[case], messages[case]


@needs_mpi
def test_mpi_ranks_that_disagree_on_settings_or_data_all_refuse_to_start(tmp_path: Path) -> None:
    """Before the check, other epochs left rank 0 finished and rank 1 waiting
    forever, other row counts ended in MPI's "Message truncated", and other
    seeds trained on silently different batches. Now every rank raises in
    one case after the other, so the ranks also stay in step between them."""
    cases = sorted(DISAGREEMENTS)
    proc = mpiexec(2, str(tmp_path), "--disagree", *cases)
    assert proc.returncode == 0, proc.stderr
    _assert_refused(tmp_path, cases)


@needs_torch
def test_torch_engine_ranks_that_disagree_refuse_to_start(tmp_path: Path) -> None:
    proc = torchrun(str(tmp_path), "--engine", "torch", "--disagree", "num_epochs")
    assert proc.returncode == 0, proc.stderr
    _assert_refused(tmp_path, ["num_epochs"])
