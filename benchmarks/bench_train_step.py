"""One training step of a model: xplayers vs native PyTorch.

    python benchmarks/bench_train_step.py                  # both models, numpy vs torch CPU
    python benchmarks/bench_train_step.py --model cnn      # only the ConvNet
    python benchmarks/bench_train_step.py --backend cupy   # cupy vs torch CUDA
    python benchmarks/bench_train_step.py --backend jax    # jax compiled and eager vs torch, numpy

The models: ``fc``, CS231n's FullyConnectedNet 3072-100-100-100-100-10 (ReLU,
softmax loss), batch 200; ``cnn``, ThreeLayerConvNet (3x32x32 input, 32 7x7
filters, 2x2 max pool, hidden 100), batch 128; float32. One step is what
``Solver`` does per iteration: ``model.loss(X, y)`` (forward + backward) and
``xplayers.optim.adam`` on every parameter. The reference is the same network
as an ``nn.Sequential`` trained with autograd (input without grad) and
``torch.optim.Adam`` (its defaults), i.e. what a user would otherwise write.

Fairness rules (docs/performance.md says why they matter):

* Everything runs in one process and the contenders are interleaved: each
  round times every contender once, in a rotated order, so drifting clock
  speed or memory state hits all of them alike.
* Each timed block is preceded by one untimed step: memory left idle for a
  couple of seconds is handed back to the OS and is slow to touch again.
* The thread count is the same for both: NumPy's BLAS (OpenBLAS) uses every
  core it may run on unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS say
  otherwise, so torch is given ``torch.set_num_threads`` of that same number
  (``--threads`` overrides both through the environment before NumPy loads).
* The reported figure is the median step time over all timed steps; the
  spread is the inter-quartile range. On a GPU every step ends with a device
  synchronize before its timer stops.

With ``--backend jax`` the headline is the step the Solver runs on JAX, compiled
as one ``jax.jit`` function (``xplayers._compiled_step``; its first call, the
compilation, is timed apart), beside the same step run eagerly on JAX, our
NumPy run and torch on the CPU, all in the same run (targets: FC <= 1.2,
ConvNet <= 1.5 of torch). JAX is timed in float32 (x64 off).

Besides the headline ratio (targets: FC <= 0.9, ConvNet <= 1.0) the table
shows samples per second, for the FC net the same step hand-written in plain
NumPy (what the library's layers must not add to), and what the conformance
backend (array_api_strict) and our layers on torch tensors (backend "torch")
cost relative to our NumPy run. The phases split each step into gradients
and update; for the ConvNet also its conv-relu-pool block, forward and
backward, against torch's conv2d + relu + max_pool2d.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Runnable from a source checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _train_steps import (
    FILTER_SIZE,
    FILTERS,
    HIDDEN,
    IMAGE,
    INPUT_DIM,
    NUM_CLASSES,
    Steps,
    compiled_steps,
    conv_block_phases,
    plain_numpy_steps,
    torch_steps,
    xplayers_steps,
)

BATCH = {"fc": 200, "cnn": 128}
TARGET = {"fc": 0.9, "cnn": 1.0}
#: The compiled JAX step against torch on the CPU.
JAX_TARGET = {"fc": 1.2, "cnn": 1.5}


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time one training step (forward+backward+Adam): xplayers vs torch."
    )
    p.add_argument(
        "--model", choices=["fc", "cnn", "all"], default="all", help="which model (default all)"
    )
    p.add_argument(
        "--backend",
        choices=["numpy", "cupy", "jax"],
        default="numpy",
        help=(
            "numpy: compare with torch on the CPU; cupy: compare with torch on CUDA; "
            "jax: the compiled and the eager JAX step against numpy and torch on the CPU"
        ),
    )
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--repeats", type=int, default=25, help="timed steps per block (default 25)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both libraries (default: the BLAS default, all usable cores)",
    )
    p.add_argument(
        "--no-extra",
        action="store_true",
        help="skip the array_api_strict and torch-backend overhead rows",
    )
    args = p.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        p.error("--rounds and --repeats must be at least 1")
    return args


def _thread_count(requested: int | None) -> int:
    """Pin the BLAS thread count before NumPy is imported; return it."""
    if requested is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(requested)
        return requested
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return _usable_cores()


@dataclass
class Contender:
    """A named step function and the step times measured for it (seconds)."""

    name: str
    step: Callable[[], None]
    sync: Callable[[], None]
    times: list[float] = field(default_factory=list)

    def run_block(self, repeats: int) -> None:
        self.step()  # untimed: wakes memory the OS may have reclaimed while idle
        self.sync()
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.step()
            self.sync()
            self.times.append(time.perf_counter() - t0)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        q = statistics.quantiles(self.times, n=4) if len(self.times) > 1 else [0, 0, 0]
        return q[2] - q[0]


def _warn_if_busy(threads: int) -> None:
    """Say so when other processes compete for the cores: torch's OpenMP threads
    spin-wait on each other, so a busy machine slows torch far more than NumPy
    (seen here: a 3 ms torch step taking 120 ms), and the ratio means nothing."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return
    if load > max(1.0, 0.5 * _usable_cores()):
        print(
            f"warning: 1-minute load average {load:.1f} on {_usable_cores()} cores before the "
            f"run: other processes are busy; timings with {threads} threads may be distorted"
        )


def run_model(kind: str, args: argparse.Namespace, threads: int, torch_device: str) -> float:
    """Time one model's contenders and phases interleaved, print the tables;
    return the headline ratio (ours / torch)."""
    import numpy as np
    import torch

    import xplayers.backends as backends

    rng = np.random.default_rng(0)
    batch = BATCH[kind]
    shape = (batch, INPUT_DIM) if kind == "fc" else (batch, *IMAGE)
    X_host = rng.standard_normal(shape, dtype=np.float32)
    y_host = rng.integers(0, NUM_CLASSES, size=batch)

    def sync_of(name: str) -> Callable[[], None]:
        if name in steps and steps[name].sync is not None:
            return steps[name].sync
        if name.startswith("torch native") or name.startswith("torch block"):
            return torch.cuda.synchronize if torch_device == "cuda" else (lambda: None)
        if name == "plain numpy":
            return lambda: None
        return lambda: backends.synchronize(name.split()[0])

    ours = args.backend
    steps: dict[str, Steps] = {}
    compile_s = None
    if ours == "jax":  # the headline: the compiled step; beside it the eager one and numpy
        steps["jax compiled"], compile_s = compiled_steps(kind, X_host, y_host)
    steps[ours] = xplayers_steps(kind, ours, X_host, y_host)
    steps["torch native"] = torch_steps(kind, torch_device, X_host, y_host)
    if ours == "jax":
        steps["numpy"] = xplayers_steps(kind, "numpy", X_host, y_host)
    if ours == "numpy" and kind == "fc":
        steps["plain numpy"] = plain_numpy_steps(X_host, y_host)
    if not args.no_extra and ours != "jax":
        # array_api_strict runs on the CPU only: no use as a yardstick for a GPU run.
        extras = ("torch",) if ours == "cupy" else ("array_api_strict", "torch")
        for extra in extras:
            if backends.unavailable_reason(extra) is None:
                steps[extra] = xplayers_steps(kind, extra, X_host, y_host)
    contenders = [Contender(name, s.step, sync_of(name)) for name, s in steps.items()]
    # The phases of the headline pair, to show where a gap comes from.
    phases = [
        Contender(f"{name} {phase}", getattr(steps[name], phase), sync_of(name))
        for name in (ours, "torch native")
        for phase in ("gradients", "update")
    ]
    if kind == "cnn":
        blocks = conv_block_phases(ours, torch_device, X_host)
        phases += [Contender(name, fn, sync_of(name)) for name, fn in blocks.items()]

    if kind == "fc":
        title = f"FC {INPUT_DIM}-{'-'.join(map(str, HIDDEN))}-{NUM_CLASSES}"
    else:
        title = f"ThreeLayerConvNet {IMAGE}, {FILTERS} {FILTER_SIZE}x{FILTER_SIZE} filters"
    print(f"{title}, batch {batch}, float32, forward+backward+Adam")
    print(f"{args.rounds} interleaved rounds x {args.repeats} timed steps, medians")
    if compile_s is not None:
        print(f"jax compiled: first call (trace + compile) {compile_s * 1e3:.0f} ms, untimed")
    _warn_if_busy(threads)
    print()

    everyone = contenders + phases
    for r in range(args.rounds):
        # Rotate the order so that no contender always runs first (or last).
        k = r % len(everyone)
        for c in everyone[k:] + everyone[:k]:
            c.run_block(args.repeats)

    by_name = {c.name: c for c in contenders}
    headline = "jax compiled" if ours == "jax" else ours
    ref, base = by_name["torch native"], by_name[headline]
    print(
        f"{'full step':<32}{'median ms':>10}{'IQR ms':>9}{'samples/s':>11}"
        f"{'/ torch':>9}{'/ ' + headline:>16}"
    )
    for c in contenders:
        label = {
            "torch native": "torch native (autograd + Adam)",
            "plain numpy": "hand-written numpy step",
        }.get(c.name, f"xplayers on {c.name}")
        print(
            f"{label:<32}{c.median * 1e3:>10.3f}{c.iqr * 1e3:>9.3f}{batch / c.median:>11.0f}"
            f"{c.median / ref.median:>9.2f}{c.median / base.median:>16.2f}"
        )
    print(f"\n{'phase':<32}{'median ms':>10}{'IQR ms':>9}{'/ torch':>9}")
    pairs = list(zip(phases[:2], phases[2:4], strict=True))
    if kind == "cnn":
        pairs += list(zip(phases[4:6], phases[6:8], strict=True))
    for ours_phase, torch_phase in pairs:
        for c in (ours_phase, torch_phase):
            print(
                f"{c.name:<32}{c.median * 1e3:>10.3f}{c.iqr * 1e3:>9.3f}"
                f"{c.median / torch_phase.median:>9.2f}"
            )

    ratio = base.median / ref.median
    target = (JAX_TARGET if ours == "jax" else TARGET)[kind]
    verdict = "meets" if ratio <= target else "misses"
    print(
        f"\n{kind}: ratio xplayers[{headline}] / torch native = {ratio:.3f} "
        f"({verdict} the target <= {target})"
    )
    if ours == "jax":
        print(f"jax eager / jax compiled: {by_name['jax'].median / base.median:.2f}x")
    if "plain numpy" in by_name:
        plain = by_name["plain numpy"].median
        print(f"xplayers[numpy] / hand-written numpy = {base.median / plain:.2f}")
    for name in ("array_api_strict", "torch"):
        if name in by_name:
            overhead = by_name[name].median / base.median
            print(f"overhead of backend {name!r} vs {ours}: {overhead:.2f}x")
    print()
    return ratio


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = _thread_count(args.threads)

    # Imported only now: the thread count above must be set before NumPy loads.
    import numpy as np
    import torch

    import xplayers.backends as backends

    reason = backends.unavailable_reason(args.backend)
    if reason is not None:
        print(f"error: backend {args.backend!r} is not available here: {reason}", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)
    if args.backend == "cupy":
        if not torch.cuda.is_available():
            print("error: --backend cupy compares with torch CUDA, which is not available")
            return 2
        torch_device = "cuda"
    else:
        torch_device = "cpu"

    dev = backends.get_backend(args.backend)
    print(
        f"device: {dev.device_name(dev.default_device())}; threads: numpy BLAS {threads}, "
        f"torch {torch.get_num_threads()}; numpy {np.__version__}, torch {torch.__version__}\n"
    )
    kinds = ["fc", "cnn"] if args.model == "all" else [args.model]
    ratios = {kind: run_model(kind, args, threads, torch_device) for kind in kinds}
    print("summary: " + ", ".join(f"{k} {r:.3f}x torch" for k, r in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
