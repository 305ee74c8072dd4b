"""xplayers.distributed and Solver(comm=...): unit tests in one process, and
real runs under mpiexec (1, 2, 3 ranks) and torchrun (2 ranks) compared with
the one-process run of tests/distributed_worker.py.

Every launch runs under a subprocess timeout, so a hang fails the test.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from distributed_helpers import (
    MPIEXEC,
    Loopback,
    launch,
    mpiexec,
    needs_mpi,
    needs_torch,
    torchrun,
)
from distributed_worker import make_solver, run_case

import xplayers.backends as backends
from xplayers import distributed
from xplayers._parallel_step import share_bounds
from xplayers.distributed import DistributedError
from xplayers.distributed._tree import Packed
from xplayers.models import FullyConnectedNet


# ------------------------------------------------------------ one process
def test_detect_engine_reads_the_launcher_environment() -> None:
    assert distributed.detect_engine({}) == "single"
    assert distributed.detect_engine({"PMI_SIZE": "2"}) == "mpi"
    assert distributed.detect_engine({"OMPI_COMM_WORLD_SIZE": "2"}) == "mpi"
    assert distributed.detect_engine({"PMIX_RANK": "0"}) == "mpi"
    assert distributed.detect_engine({"TORCHELASTIC_RUN_ID": "x", "PMI_SIZE": "2"}) == "torch"
    assert distributed.detect_engine({"WORLD_SIZE": "2", "MASTER_ADDR": "h"}) == "torch"
    with pytest.raises(ValueError, match="engine must be one of"):
        distributed.init("gloo")


def test_single_engine_collectives_are_the_identity() -> None:
    comm = distributed.init("single")
    assert (comm.rank, comm.size, comm.local_rank, comm.engine) == (0, 1, 0, "single")
    tree = {"a": np.arange(3.0), "b": [np.ones((2, 2))]}
    for out in (comm.allreduce_mean(tree), comm.allreduce_sum(tree), comm.broadcast(tree)):
        np.testing.assert_array_equal(out["a"], tree["a"])
        np.testing.assert_array_equal(out["b"][0], tree["b"][0])
    comm.check_same(tree)
    comm.barrier()
    assert comm.broadcast_object({"x": 1}) == {"x": 1}
    with pytest.raises(ValueError, match="root must be a rank"):
        comm.broadcast(tree, root=1)


def test_packed_trees_use_one_contiguous_buffer_per_dtype(backend) -> None:
    xp = backend.xp
    tree = {
        "W": backends.asarray(np.arange(6.0).reshape(2, 3), backend.name, "float64"),
        "nested": [backends.asarray(np.array(2.5), backend.name, "float64")],
        "h": backends.asarray(np.arange(4.0), backend.name, "float32"),
    }
    packed = Packed(tree)
    buffers = packed.buffers()
    assert sorted(buffers) == ["float32", "float64"]
    assert tuple(buffers["float64"].shape) == (7,) and tuple(buffers["float32"].shape) == (4,)
    out = packed.unpack(buffers)
    assert tuple(out["W"].shape) == (2, 3) and tuple(out["nested"][0].shape) == ()
    for got, want in ((out["W"], tree["W"]), (out["nested"][0], tree["nested"][0])):
        assert bool(xp.all(got == want))
    assert out["h"].dtype == tree["h"].dtype
    with pytest.raises(TypeError, match=r"tree\['bad'\] must be an array"):
        Packed({"bad": "text"})


def test_allreduce_is_one_fused_call_and_stages_other_backends(backend) -> None:
    comm = Loopback(size=3)
    grads = {
        k: backends.asarray(np.full(s, i + 1.0), backend.name, "float64")
        for i, (k, s) in enumerate({"W1": (4, 3), "b1": (3,), "W2": (3, 2)}.items())
    }
    summed = comm.allreduce_sum(grads)
    mean = comm.allreduce_mean(grads)
    assert len(comm.reductions) == 2  # one fused buffer per call
    assert all(isinstance(r, np.ndarray) and r.shape == (21,) for r in comm.reductions)
    for k, g in grads.items():
        assert backends.backend_of(summed[k]) == backend.name
        np.testing.assert_array_equal(backends.to_numpy(summed[k]), 3 * backends.to_numpy(g))
        np.testing.assert_allclose(backends.to_numpy(mean[k]), backends.to_numpy(g), rtol=1e-15)
    with pytest.raises(TypeError, match="floating"):
        comm.allreduce_mean({"n": np.arange(3)})


def test_check_same_names_the_parameter_and_the_ranks() -> None:
    def tree(rank: int) -> dict:
        return {
            "W1": np.zeros((4, 5) if rank == 2 else (4, 3)),
            "b1": np.zeros(3, np.float32 if rank == 2 else None),
        }

    others = [Loopback(3, r) for r in (0, 1)]
    for r, comm in enumerate(others):
        comm.check_same(tree(r), name="model")
    comm = Loopback(3, 2, others=[c.sent[0] for c in others])
    with pytest.raises(DistributedError) as info:
        comm.check_same(tree(2), name="model")
    text = str(info.value)
    assert text.startswith("ranks disagree on 2 parameter(s) (rank 2 of 3 reporting): ")
    assert (
        "model['W1']: shape (4, 3) float64 on ranks [0, 1]; shape (4, 5) float64 on ranks [2]"
        in text
    )
    assert (
        "model['b1']: shape (3,) float64 on ranks [0, 1]; shape (3,) float32 on ranks [2]" in text
    )


def test_shares_cover_the_batch_and_weights_sum_to_one() -> None:
    for n, size in ((10, 3), (100, 3), (7, 7), (64, 2)):
        bounds = [share_bounds(n, size, r) for r in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        assert max(h - lo for lo, h in bounds) - min(h - lo for lo, h in bounds) <= 1


def test_stream_seed_folds_in_the_step_the_layer_and_the_stream_key() -> None:
    net = FullyConnectedNet([5], input_dim=4, num_classes=3, dropout=0.5, seed=9)
    net.begin_step(4)
    plain = net.stream_seed(9, 2)
    assert plain == int(np.random.SeedSequence([9, 4, 2]).generate_state(1)[0])
    assert net.stream_seed(9, 1) != plain  # another layer, another stream
    net.stream_key = (1,)
    assert net.stream_seed(9, 2) == int(np.random.SeedSequence([9, 4, 2, 1]).generate_state(1)[0])


def test_parallel_gives_each_rank_a_dropout_stream_and_checks_the_batch() -> None:
    solver = make_solver(comm=Loopback(size=2, rank=1), seed=None, verbose=True)
    assert solver.model.stream_key == (1,)
    assert isinstance(solver.seed, int)  # rank 0's entropy, the same on every rank
    assert solver.verbose is False and solver.progress is False
    with pytest.raises(ValueError, match=r"batch_size is the global batch.*at least 3, got 2"):
        make_solver(comm=Loopback(size=3), batch_size=2)


def test_single_communicator_repeats_the_serial_run_exactly() -> None:
    serial = run_case("fc")
    single = run_case("fc", comm=distributed.init("single"))
    assert single.loss_history == serial.loss_history
    assert single.model.stream_key == ()
    for k, v in serial.model.params.items():
        np.testing.assert_array_equal(single.model.params[k], v)


# ---------------------------------------------------------- multi-process
def _ranks(out: Path, n: int) -> list[dict[str, np.ndarray]]:
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(n)]


def _assert_same_run(got: dict[str, np.ndarray], solver, atol: float) -> None:
    np.testing.assert_allclose(got["loss_history"], solver.loss_history, rtol=0, atol=atol)
    np.testing.assert_array_equal(got["train_acc"], solver.train_acc_history)
    np.testing.assert_array_equal(got["val_acc"], solver.val_acc_history)
    for k, v in solver.model.params.items():
        np.testing.assert_allclose(got[f"param_{k}"], backends.to_numpy(v), rtol=0, atol=atol)


@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_mpi_run_equals_the_one_process_run(ranks: int, tmp_path: Path) -> None:
    # Batch 10 on 3 ranks: shares of 3, 3 and 4 rows, weighted by their size.
    proc = mpiexec(ranks, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    serial = run_case("fc")
    assert len(serial.loss_history) == 18
    for got in _ranks(tmp_path, ranks):
        _assert_same_run(got, serial, atol=1e-10)


@needs_mpi
def test_nccl_engine_wiring_under_mpiexec_with_a_stand_in_nccl(tmp_path: Path) -> None:
    """The nccl engine at 2 ranks over tests/fake_nccl.py (host buffers, MPI
    underneath; no GPU, so real NCCL stays unverified here): each rank takes
    GPU local_rank, both join with rank 0's id, each step's gradients travel
    as one buffer of every parameter, and the run equals the one-process run."""
    proc = mpiexec(2, str(tmp_path), "--engine", "nccl", "--fake-nccl")
    assert proc.returncode == 0, proc.stderr
    serial = run_case("fc")
    ranks = _ranks(tmp_path, 2)
    assert [int(r["nccl_device"]) for r in ranks] == [0, 1]
    np.testing.assert_array_equal(ranks[0]["nccl_uid"], ranks[1]["nccl_uid"])
    n_params = sum(int(np.prod(v.shape)) for v in serial.model.params.values())
    for got in ranks:
        _assert_same_run(got, serial, atol=1e-10)
        assert int(got["nccl_bcasts"]) >= 1  # rank 0's parameters at the start
        counts = got["nccl_allreduce_counts"]
        assert np.sum(counts >= n_params) == len(serial.loss_history)  # one fused buffer a step


@needs_mpi
def test_mpi_batchnorm_ranks_agree_and_one_rank_is_the_serial_run(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    for out, n in ((one, 1), (two, 2)):
        proc = mpiexec(n, str(out), "--case", "bn")
        assert proc.returncode == 0, proc.stderr
    _assert_same_run(_ranks(one, 1)[0], run_case("bn"), atol=1e-10)
    first, second = _ranks(two, 2)
    assert any(k.startswith("norm0_running_mean") for k in first)
    for k in first:
        np.testing.assert_allclose(second[k], first[k], rtol=0, atol=1e-12, err_msg=k)


@needs_mpi
def test_an_exception_on_one_rank_ends_every_rank_naming_it(tmp_path: Path) -> None:
    proc = mpiexec(3, str(tmp_path), "--fail-rank", "1")
    assert proc.returncode != 0
    assert "rank 1 of 3 failed; aborting all ranks" in proc.stderr
    assert "injected failure at step 3" in proc.stderr
    assert not list(tmp_path.glob("rank*.npz"))  # no rank finished training


@needs_mpi
def test_mismatched_parameter_shapes_raise_distributed_error(tmp_path: Path) -> None:
    proc = mpiexec(2, str(tmp_path), "--mismatch-rank", "1")
    assert proc.returncode != 0
    assert "DistributedError" in proc.stderr
    assert "model['params']['W2']: shape (10, 8) float64 on ranks [0]; " in proc.stderr
    assert "shape (10, 9) float64 on ranks [1]" in proc.stderr


@needs_mpi
def test_only_rank_zero_prints_and_writes_the_checkpoint(tmp_path: Path) -> None:
    name = tmp_path / "run"
    proc = mpiexec(2, str(tmp_path), "--verbose", "--checkpoint", str(name))
    assert proc.returncode == 0, proc.stderr
    iterations = [line for line in proc.stdout.splitlines() if line.startswith("(Iteration")]
    assert len(iterations) == 18, proc.stdout
    assert proc.stdout.count("(Epoch 3 / 3)") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == [
        f"run_epoch_{k}.safetensors" for k in range(4)
    ]


@needs_mpi
def test_cli_train_distributed_matches_the_one_process_command(tmp_path: Path) -> None:
    flags = ["-m", "xplayers", "train", "--epochs", "2", "--quiet", "--dtype", "float64"]
    alone = launch([sys.executable, *flags])
    proc = launch([MPIEXEC, "-n", "2", sys.executable, *flags, "--distributed"])
    assert alone.returncode == 0 and proc.returncode == 0, proc.stderr
    accuracies = [line for line in alone.stdout.splitlines() if "accuracy:" in line]
    assert len(accuracies) == 3
    assert [line for line in proc.stdout.splitlines() if "accuracy:" in line] == accuracies


@needs_torch
def test_torch_engine_under_torchrun_equals_the_one_process_run(tmp_path: Path) -> None:
    proc = torchrun(str(tmp_path), "--engine", "torch", "--backend", "torch")
    assert proc.returncode == 0, proc.stderr
    serial = run_case("fc", backend="torch")
    for got in _ranks(tmp_path, 2):
        _assert_same_run(got, serial, atol=1e-10)
