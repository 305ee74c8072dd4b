"""One rank of a data-parallel training run, launched by tests/test_distributed.py.

``python tests/distributed_worker.py OUT [--engine E] [--case fc|bn] ...``
under mpiexec or torchrun (or alone, for the one-process reference through
``run_case``). Every rank writes ``OUT/rank<r>.npz`` with its loss history,
accuracies, final parameters and running statistics; with ``--disagree
CASE ...`` it only builds Solvers that must refuse to start and writes their
messages to ``OUT/rank<r>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from xplayers.models import FullyConnectedNet
from xplayers.solver import Solver

#: Small enough for a 2-core machine, big enough for several steps per epoch.
NUM_TRAIN, NUM_VAL, DIM, CLASSES = 60, 20, 12, 4


def toy_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((CLASSES, DIM)) * 2.0
    y = rng.integers(CLASSES, size=NUM_TRAIN + NUM_VAL)
    X = centers[y] + rng.standard_normal((y.size, DIM))
    return {
        "X_train": X[:NUM_TRAIN],
        "y_train": y[:NUM_TRAIN],
        "X_val": X[NUM_TRAIN:],
        "y_val": y[NUM_TRAIN:],
    }


def build_model(case: str, backend: str = "numpy", hidden_last: int = 8) -> FullyConnectedNet:
    return FullyConnectedNet(
        [10, hidden_last],
        input_dim=DIM,
        num_classes=CLASSES,
        normalization="batchnorm" if case == "bn" else None,
        reg=0.01,
        weight_scale=0.1,
        dtype="float64",
        seed=3,
        backend=backend,
    )


#: Each disagreement case: what ranks above 0 change in their Solver
#: (rank 0 keeps run_case's 3 epochs, 60 training and 20 validation rows,
#: seed 11 and adam).
DISAGREEMENTS = {
    "num_epochs": {"num_epochs": 6},
    "X_train": {"train_rows": 30},
    "X_val": {"val_rows": 10},
    "seed": {"seed": 12},
    "update_rule": {"update_rule": "sgd"},
}


def make_solver(
    case: str = "fc",
    comm: Any = None,
    backend: str = "numpy",
    batch_size: int = 10,
    hidden_last: int = 8,
    checkpoint_name: str | None = None,
    verbose: bool = False,
    train_rows: int = NUM_TRAIN,
    val_rows: int = NUM_VAL,
    **settings: Any,
) -> Solver:
    """The toy problem's Solver; the model of a rank > 0 is perturbed, so only
    the broadcast from rank 0 can make the runs agree."""
    model = build_model(case, backend, hidden_last)
    if comm is not None and comm.rank > 0:
        model.params = {k: v + 1.0 for k, v in model.params.items()}
    data = toy_data()
    data = {
        "X_train": data["X_train"][:train_rows],
        "y_train": data["y_train"][:train_rows],
        "X_val": data["X_val"][:val_rows],
        "y_val": data["y_val"][:val_rows],
    }
    kwargs = {
        "update_rule": "adam",
        "optim_config": {"learning_rate": 1e-2},
        "batch_size": batch_size,
        "num_epochs": 3,
        "num_train_samples": None,
        "print_every": 1,
        "verbose": verbose,
        "progress": False,
        "seed": 11,
        "checkpoint_name": checkpoint_name,
        **settings,
    }
    return Solver(model, data, comm=comm, **kwargs)


def run_case(case: str = "fc", comm: Any = None, backend: str = "numpy", **kwargs: Any) -> Solver:
    """Train the toy problem (``make_solver``'s arguments)."""
    solver = make_solver(case, comm, backend, **kwargs)
    solver.train()
    return solver


def report_disagreements(comm: Any, cases: list[str], out: Path) -> None:
    """Build each case's Solver in turn, ranks above 0 changed as DISAGREEMENTS
    says; every rank must raise DistributedError at construction (one that does
    not ends the launch through the abort hook). Writes each case's message to
    ``OUT/rank<r>.json``."""
    from xplayers.distributed import DistributedError

    messages = {}
    for case in cases:
        try:
            make_solver(comm=comm, **(DISAGREEMENTS[case] if comm.rank > 0 else {}))
        except DistributedError as exc:
            messages[case] = str(exc)
        else:
            raise AssertionError(f"rank {comm.rank}: no DistributedError for {case}")
    (out / f"rank{comm.rank}.json").write_text(json.dumps(messages))


def save_run(solver: Solver, path: Path, **extra: np.ndarray) -> None:
    model = solver.model
    stats = {
        f"norm{i}_{k}": np.asarray(v)
        for i, p in enumerate(model.norm_params)
        for k, v in p.items()
        if hasattr(v, "shape")
    }
    np.savez(
        path,
        loss_history=np.asarray(solver.loss_history),
        train_acc=np.asarray(solver.train_acc_history),
        val_acc=np.asarray(solver.val_acc_history),
        **{f"param_{k}": np.asarray(v) for k, v in model.params.items()},
        **stats,
        **extra,
    )


def main() -> None:
    from xplayers import distributed

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--case", default="fc", choices=("fc", "bn"))
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--mismatch-rank", type=int, default=-1)
    parser.add_argument("--fail-rank", type=int, default=-1)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--disagree", nargs="+", choices=sorted(DISAGREEMENTS), default=[])
    parser.add_argument("--fake-nccl", action="store_true", help="tests/fake_nccl.py as cupy")
    args = parser.parse_args()
    if args.fake_nccl:
        import fake_nccl

        fake_nccl.install()

    comm = distributed.init(args.engine)
    if args.disagree:
        report_disagreements(comm, args.disagree, args.out)
        return
    if comm.rank == args.fail_rank:
        _fail_at_third_step()
    solver = run_case(
        args.case,
        comm,
        args.backend,
        batch_size=args.batch_size,
        hidden_last=9 if comm.rank == args.mismatch_rank else 8,
        checkpoint_name=args.checkpoint,
        verbose=args.verbose,
    )
    extra = {}
    if args.fake_nccl:
        log = fake_nccl.log
        extra = {
            "nccl_device": np.asarray(log["device"]),
            "nccl_uid": np.frombuffer(log["uid"], dtype=np.uint8),
            "nccl_allreduce_counts": np.asarray([n for op, n in log["calls"] if op == "allreduce"]),
            "nccl_bcasts": np.asarray(sum(op == "bcast" for op, _ in log["calls"])),
        }
    save_run(solver, args.out / f"rank{comm.rank}.npz", **extra)


def _fail_at_third_step() -> None:
    """Make this rank's third training step raise, as a bug in user code would."""
    original = FullyConnectedNet.begin_step

    def begin_step(self: FullyConnectedNet, iteration: int) -> None:
        if iteration == 2:
            raise RuntimeError("injected failure at step 3")
        original(self, iteration)

    FullyConnectedNet.begin_step = begin_step


if __name__ == "__main__":
    main()
