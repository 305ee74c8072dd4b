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
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Runnable from a source checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HIDDEN = [100, 100, 100, 100]
INPUT_DIM, NUM_CLASSES = 3 * 32 * 32, 10
IMAGE, FILTERS, FILTER_SIZE, CNN_HIDDEN = (3, 32, 32), 32, 7, 100
BATCH = {"fc": 200, "cnn": 128}
TARGET = {"fc": 0.9, "cnn": 1.0}
#: The compiled JAX step against torch on the CPU.
JAX_TARGET = {"fc": 1.2, "cnn": 1.5}
LEARNING_RATE = 1e-3


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


@dataclass
class Steps:
    """A full training step and its two phases, each callable on its own (a compiled
    step has none: it is one function); ``sync`` waits for the step's work."""

    step: Callable[[], None]
    gradients: Callable[[], None] | None  # forward + backward
    update: Callable[[], None] | None  # Adam on every parameter, gradients kept from before
    sync: Callable[[], None] | None = None


def _our_model(kind: str, backend: str) -> Any:
    from xplayers.models import FullyConnectedNet, ThreeLayerConvNet

    if kind == "fc":
        return FullyConnectedNet(
            HIDDEN, input_dim=INPUT_DIM, num_classes=NUM_CLASSES, dtype="float32",
            backend=backend, seed=0,
        )  # fmt: skip
    return ThreeLayerConvNet(
        input_dim=IMAGE, num_filters=FILTERS, filter_size=FILTER_SIZE, hidden_dim=CNN_HIDDEN,
        num_classes=NUM_CLASSES, dtype="float32", backend=backend, seed=0,
    )  # fmt: skip


def xplayers_steps(kind: str, backend: str, X_host: Any, y_host: Any) -> Steps:
    """The path users run: model.loss, then adam on every parameter."""
    import xplayers.backends as backends
    from xplayers.optim import adam

    model = _our_model(kind, backend)
    X = backends.asarray(X_host, backend, "float32")
    y = backends.asarray(y_host, backend, "int32")
    configs: dict[str, dict] = {k: {"learning_rate": LEARNING_RATE} for k in model.params}

    grads: dict[str, Any] = {}

    def gradients() -> None:
        grads.update(model.loss(X, y)[1])

    def update() -> None:
        for k, w in model.params.items():
            model.params[k], configs[k] = adam(w, grads[k], configs[k])

    def step() -> None:
        gradients()
        update()

    gradients()
    return Steps(step, gradients, update, lambda: backends.synchronize(*model.params.values()))


def compiled_steps(kind: str, X_host: Any, y_host: Any) -> tuple[Steps, float]:
    """The step the Solver runs on JAX: loss, gradients and Adam as one ``jax.jit``
    function; with the seconds its first call (tracing and compiling) took."""
    import xplayers.backends as backends
    from xplayers._compiled_step import CompiledStep
    from xplayers.optim import adam

    model = _our_model(kind, "jax")
    X = backends.asarray(X_host, "jax", "float32")
    y = backends.asarray(y_host, "jax", "int32")  # x64 off: no int64 on JAX
    # The labels' range, read once, as the Solver does: no value check in the trace.
    compiled = CompiledStep(model, adam, "adam", {"label_range": (0, NUM_CLASSES - 1)}, seed=0)
    state: dict[str, Any] = {
        "configs": {k: {"learning_rate": LEARNING_RATE} for k in model.params},
        "t": 0,
    }

    def step() -> None:
        _, state["configs"] = compiled(state["configs"], X, y, state["t"])
        state["t"] += 1

    def sync() -> None:
        backends.synchronize(*model.params.values())

    t0 = time.perf_counter()
    step()
    sync()
    return Steps(step, None, None, sync), time.perf_counter() - t0


def _torch_net(kind: str) -> Any:
    from torch import nn

    if kind == "fc":
        dims = [INPUT_DIM, *HIDDEN]
        layers: list[nn.Module] = []
        for d_in, d_out in itertools.pairwise(dims):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(dims[-1], NUM_CLASSES))
    c, h, w = IMAGE
    return nn.Sequential(
        nn.Conv2d(c, FILTERS, FILTER_SIZE, padding=(FILTER_SIZE - 1) // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(FILTERS * (h // 2) * (w // 2), CNN_HIDDEN),
        nn.ReLU(),
        nn.Linear(CNN_HIDDEN, NUM_CLASSES),
    )


def torch_steps(kind: str, device: str, X_host: Any, y_host: Any) -> Steps:
    """The same network written the usual PyTorch way."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = _torch_net(kind).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    X = torch.as_tensor(X_host, dtype=torch.float32, device=device)
    y = torch.as_tensor(y_host, dtype=torch.int64, device=device)

    def gradients() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(X), y).backward()

    def step() -> None:
        gradients()
        opt.step()

    gradients()
    return Steps(step, gradients, opt.step)


def conv_block_phases(backend: str, device: str, X_host: Any) -> dict[str, Callable[[], None]]:
    """The ConvNet's first block alone, forward and backward (no dx, as in the
    model), ours and torch's, on the same input and weights."""
    import numpy as np
    import torch

    import xplayers.backends as backends
    from xplayers.layers import conv_relu_pool_backward, conv_relu_pool_forward

    rng = np.random.default_rng(1)
    w_host = 1e-2 * rng.standard_normal((FILTERS, IMAGE[0], FILTER_SIZE, FILTER_SIZE))
    w_host = w_host.astype(np.float32)
    pad = (FILTER_SIZE - 1) // 2
    cp, pp = {"stride": 1, "pad": pad}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    x, w = (backends.asarray(a, backend, "float32") for a in (X_host, w_host))
    b = backends.asarray(np.zeros(FILTERS), backend, "float32")
    out, _ = conv_relu_pool_forward(x, w, b, cp, pp)
    dout = backends.asarray(rng.standard_normal(tuple(out.shape)), backend, "float32")

    tx = torch.as_tensor(X_host, device=device)
    tw = torch.as_tensor(w_host, device=device).requires_grad_()
    tb = torch.zeros(FILTERS, device=device, requires_grad=True)
    tdout = torch.as_tensor(backends.to_numpy(dout), device=device)

    def torch_forward() -> Any:
        conv = torch.nn.functional.conv2d(tx, tw, tb, padding=pad)
        return torch.nn.functional.max_pool2d(torch.relu(conv), 2)

    def torch_backward() -> None:
        torch.autograd.grad(torch_forward(), (tw, tb), tdout)

    return {
        f"{backend} block forward": lambda: conv_relu_pool_forward(x, w, b, cp, pp),
        f"{backend} block fwd+bwd": lambda: conv_relu_pool_backward(
            dout, conv_relu_pool_forward(x, w, b, cp, pp)[1], False
        ),
        "torch block forward": lambda: torch_forward(),
        "torch block fwd+bwd": torch_backward,
    }


def plain_numpy_steps(X: Any, y: Any) -> Steps:
    """The same step hand-written in NumPy, as a CS231n student would (first dx
    skipped, Adam as in the course): what "the library adds nothing" is measured against."""
    import numpy as np

    rng = np.random.default_rng(0)
    dims = [INPUT_DIM, *HIDDEN, NUM_CLASSES]
    params = []
    for d_in, d_out in itertools.pairwise(dims):
        params += [1e-2 * rng.standard_normal((d_in, d_out), dtype=np.float32)]
        params += [np.zeros(d_out, dtype=np.float32)]
    state = [[np.zeros_like(p), np.zeros_like(p), 0] for p in params]
    grads: list[Any] = []

    def gradients() -> None:
        hs = [X]
        for i in range(0, len(params) - 2, 2):
            hs.append(np.maximum(hs[-1] @ params[i] + params[i + 1], 0))
        scores = hs[-1] @ params[-2] + params[-1]
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(len(y)), y] -= 1
        d = probs / len(y)
        out: list[Any] = [None] * len(params)
        for i in range(len(params) - 2, -1, -2):
            out[i], out[i + 1] = hs[i // 2].T @ d, d.sum(axis=0)
            if i:
                d = (d @ params[i].T) * (hs[i // 2] > 0)
        grads[:] = out

    def update() -> None:
        for k, (p, g) in enumerate(zip(params, grads, strict=True)):
            m, v, t = state[k]
            t += 1
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * (g * g)
            mh, vh = m / (1 - 0.9**t), v / (1 - 0.999**t)
            params[k] = p - LEARNING_RATE * mh / (np.sqrt(vh) + 1e-8)
            state[k][2] = t

    def step() -> None:
        gradients()
        update()

    gradients()
    return Steps(step, gradients, update)


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
