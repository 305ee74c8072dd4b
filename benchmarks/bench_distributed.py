"""Data-parallel step time at 1 and 2 ranks: FullyConnectedNet and ThreeLayerConvNet.

    python benchmarks/bench_distributed.py [--ranks 1,2] [--steps 20] [--quick]

For each model and rank count the script launches ``mpiexec -n P`` on itself
(``--worker``), with ``XPLAYERS_NUM_THREADS=1`` (and one BLAS thread) per
rank, so P ranks use P cores. Every rank runs ``Solver`` steps on the same
global batch (each its share), timed between barriers after untimed warm-up
steps; the median over steps is the step time, and samples/s is the global
batch over it. The allreduce column is the median time of the step's fused
allreduce alone (the model's gradients and loss, timed on their own between
barriers), and its share of the step. The last column is the throughput over
the 1-rank throughput of the same model: on P free cores the ideal is P.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Runnable from a source checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {  # name -> (global batch, quick global batch)
    "fc": (256, 64),
    "cnn": (64, 16),
}


def _model(name: str) -> Any:
    from xplayers.models import FullyConnectedNet, ThreeLayerConvNet

    if name == "fc":
        return FullyConnectedNet([100, 100, 100, 100], weight_scale=5e-2, seed=0, backend="numpy")
    return ThreeLayerConvNet(weight_scale=1e-2, seed=0, backend="numpy")


def worker(name: str, batch: int, steps: int) -> None:
    """One rank: median step and allreduce times; rank 0 prints them as JSON."""
    import numpy as np

    from xplayers import distributed
    from xplayers.solver import Solver

    comm = distributed.init("mpi")
    rng = np.random.default_rng(0)
    n = 4 * batch
    data = {
        "X_train": rng.standard_normal((n, 3, 32, 32)).astype(np.float32),
        "y_train": rng.integers(10, size=n),
        "X_val": np.zeros((1, 3, 32, 32), np.float32),
        "y_val": np.zeros(1, np.int64),
    }
    model = _model(name)
    solver = Solver(model, data, comm=comm, batch_size=batch, verbose=False, seed=0)
    grads = {k: v * 1.0 for k, v in model.params.items()}
    grads_and_loss = {"loss": np.zeros((), np.float32), "grads": grads}

    def timed(fn: Any) -> float:
        out = []
        for i in range(steps + 3):
            comm.barrier()
            start = time.perf_counter()
            fn()
            comm.barrier()
            if i >= 3:  # warm-up: first touches of memory and caches
                out.append(time.perf_counter() - start)
        return statistics.median(out)

    step = timed(solver._step)
    reduce = timed(lambda: comm.allreduce_sum(grads_and_loss))
    if comm.rank == 0:
        print(json.dumps({"step": step, "allreduce": reduce}), flush=True)


def _launch(name: str, ranks: int, batch: int, steps: int, mpiexec: str) -> dict[str, float]:
    env = dict(os.environ)
    env.update(XPLAYERS_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", name]
    cmd += ["--batch", str(batch), "--steps", str(steps)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2", help="rank counts to run (default: 1,2)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--quick", action="store_true", help="small batches, 5 steps")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.batch, args.steps)
        return
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if mpiexec is None:
        raise SystemExit("mpiexec not found: pip install 'xplayers[mpi]'")
    steps = 5 if args.quick else args.steps
    ranks = [int(r) for r in args.ranks.split(",")]
    print(f"cores: {os.cpu_count()}, one thread per rank, float32, {steps} timed steps")
    print(
        f"{'model':6} {'batch':>5} {'ranks':>5} {'step ms':>9} {'samples/s':>10} "
        f"{'allreduce ms':>12} {'share':>6} {'vs 1 rank':>9}"
    )
    for name, (batch, quick_batch) in MODELS.items():
        batch = quick_batch if args.quick else batch
        base = None
        for p in ranks:
            t = _launch(name, p, batch, steps, mpiexec)
            rate = batch / t["step"]
            base = rate if base is None else base
            share = t["allreduce"] / t["step"] if p > 1 else 0.0
            print(
                f"{name:6} {batch:5d} {p:5d} {1e3 * t['step']:9.2f} {rate:10.0f} "
                f"{1e3 * t['allreduce']:12.3f} {100 * share:5.1f}% {rate / base:8.2f}x"
            )


if __name__ == "__main__":
    main()
