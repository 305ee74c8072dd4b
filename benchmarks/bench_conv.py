"""Time xplayers' convolution and max pooling against the naive layers and PyTorch.

    python benchmarks/bench_conv.py [--backend numpy|cupy|torch] [--repeats 7] [--quick]
    python benchmarks/bench_conv.py --sweep [--quick]   # conv layers of well-known networks
    python benchmarks/bench_conv.py --sweep --lowerings # the same, ours on every lowering

The last table is the peak memory of one conv forward+backward at
x(128,64,32,32) (ours and torch's, each in a fresh process; host backends).

Everything runs in one process, interleaved (ours, then the reference, in
every repeat), and reports medians in float32. Each timed call is preceded
by one untimed call of the same function, which touches memory that was
returned to the host while idle. The device is synchronized before every
timer stops. ``--settle S`` also pauses S seconds before each of them, so
that threads the previous contender left spinning go idle first: OpenBLAS
threads wait ~0.1 s for more work after a multi-threaded call and measurably
slowed torch's calls that came right after one (xplayers' conv now holds the
BLAS at one thread, so it leaves none spinning).
The reference is torch.nn.functional (+ autograd for the backward) on CPU
with the same thread count, or on CUDA when the backend is cupy and CUDA
answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Runnable from a source checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _conv_memory
import _conv_sweep

import xplayers.backends as backends
from xplayers.layers import conv
from xplayers.layers.conv import (
    conv_backward_fast,
    conv_backward_naive,
    conv_forward_fast,
    conv_forward_naive,
    fast_layout,
)

CONV_SHAPES = [  # x shape, w shape, stride, pad
    ((128, 3, 32, 32), (32, 3, 7, 7), 1, 3),
    _conv_memory.MEMORY_SHAPE,  # x(128,64,32,32) w(64,64,3,3) s1 p1, also the memory row's
    # 16 + 2 - 3 = 15 is not a multiple of 2: needs conv_param['truncate'] (floor, as torch).
    ((128, 64, 16, 16), (128, 64, 3, 3), 2, 1),
]
NAIVE_SHAPE = ((100, 3, 31, 31), (25, 3, 3, 3), 2, 1)
POOL_SHAPE = (128, 32, 32, 32)


#: Repeats of each sweep shape: ~30 shapes at 7 would take many minutes on 2 cores.
SWEEP_REPEATS = 3

#: Seconds to let the previous contender's spinning threads go idle (--settle).
SETTLE_S = 0.0


def timed(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    sync: Callable[[], None],
    stat: Callable[[list[float]], float] = statistics.median,
) -> dict:
    """Median (or ``stat``) seconds of each function, interleaved; a pause and an
    untimed call before each."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(SETTLE_S)
            fn()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {k: stat(v) for k, v in times.items()}


def conv_flops(xs: tuple, ws: tuple, stride: int, pad: int) -> float:
    n, _, h, w = xs
    f, c, hh, ww = ws
    ho = (h + 2 * pad - hh) // stride + 1
    wo = (w + 2 * pad - ww) // stride + 1
    return 2.0 * n * f * ho * wo * c * hh * ww


class Setup:
    """The backend under test and the torch reference, with their synchronisation."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.adapter = backends.get_backend(name)
        self.xp = self.adapter.namespace()
        self.torch = None
        self.tdevice = None
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(threads)
            if name == "cupy" or (
                name == "torch" and str(self.adapter.default_device()).startswith("cuda")
            ):
                if torch.cuda.is_available():
                    self.torch, self.tdevice = torch, torch.device("cuda")
            else:
                self.torch, self.tdevice = torch, torch.device("cpu")

    def sync(self) -> None:
        backends.synchronize(self.name)
        if self.torch is not None and self.tdevice.type == "cuda":
            self.torch.cuda.synchronize()

    def array(self, a: np.ndarray) -> Any:
        return backends.asarray(a, self.name)

    def tensor(self, a: np.ndarray, grad: bool = False) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(a)).to(self.tdevice)
        return t.requires_grad_(grad)


def matmul_gflops(s: Setup, repeats: int) -> float:
    a = s.array(np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32))
    t = timed({"mm": lambda: a @ a}, repeats, s.sync)["mm"]
    return 2 * 2048**3 / t / 1e9


def row(label: str, ours: float, ref: float | None, flops: float | None, peak: float) -> None:
    parts = [f"{label:<44s} ours {ours * 1e3:8.2f} ms"]
    if ref is not None:
        parts.append(f"ref {ref * 1e3:8.2f} ms  ratio {ours / ref:5.2f}x")
    else:
        parts.append(" " * 33)
    if flops is not None:
        gf = flops / ours / 1e9
        parts.append(f"{gf:6.1f} GFLOP/s ({100 * gf / peak:4.1f}% of matmul)")
    print("  ".join(parts), flush=True)


def bench_conv(s: Setup, repeats: int, peak: float, rng: np.random.Generator) -> None:
    print(f"\nconvolution (ref = torch conv2d on {s.tdevice or 'n/a'}; ratio = ours / ref)")
    for xs, ws, stride, pad in CONV_SHAPES:
        t = _conv_case(s, xs, ws, conv_param(xs, ws, stride, pad), repeats, rng)
        flops = conv_flops(xs, ws, stride, pad)
        print(f"x{xs} w{ws} s{stride} p{pad}  ({lowering(s, xs, ws, stride, pad)} columns)")
        row("  forward", t["fwd"], t.get("tfwd"), flops, peak)
        row("  forward+backward", t["fb"], t.get("tfb"), 3 * flops, peak)


def conv_param(xs: tuple, ws: tuple, stride: int, pad: int) -> dict:
    """conv_param for the layer; ``truncate`` (floor, as torch) where the stride does not divide."""
    param: dict[str, Any] = {"stride": stride, "pad": pad}
    if (xs[2] + 2 * pad - ws[2]) % stride or (xs[3] + 2 * pad - ws[3]) % stride:
        param["truncate"] = True
    return param


def lowering(s: Setup, xs: tuple, ws: tuple, stride: int, pad: int) -> str:
    """The column layout conv_forward_fast picks for these shapes on s's backend."""
    layout = fast_layout(xs, ws, stride, pad, backends.work_policy(s.array(np.zeros(1))))
    return layout.replace("_", "-")


def bench_sweep(s: Setup, repeats: int, quick: bool, rng: np.random.Generator) -> None:
    """The conv layers of _conv_sweep.SWEEP_SHAPES, ours against torch."""
    shapes = _conv_sweep.quick_shapes() if quick else _conv_sweep.SWEEP_SHAPES
    print(f"\nconv sweep (ref = torch conv2d on {s.tdevice}; ratio = ours / ref; medians)")
    _conv_sweep.sweep(
        shapes,
        lambda xs, ws, st, pd: _conv_case(s, xs, ws, conv_param(xs, ws, st, pd), repeats, rng),
        lambda xs, ws, st, pd: lowering(s, xs, ws, st, pd),
    )


def bench_lowerings(s: Setup, repeats: int, quick: bool, rng: np.random.Generator) -> None:
    """Ours on every lowering of each sweep shape, interleaved (what the rule is fitted to)."""
    shapes = _conv_sweep.quick_shapes() if quick else _conv_sweep.SWEEP_SHAPES
    print("\nconv sweep, ours on each lowering (fwd+bwd, minima; - : does not run it)")
    policy = backends.work_policy(s.array(np.zeros(1, dtype=np.float32)))

    def layout(xs: tuple, ws: tuple, stride: int, pad: int, name: str = "auto") -> str:
        old, conv.LOWERING = conv.LOWERING, name
        try:
            return fast_layout(xs, ws, stride, pad, policy)
        finally:
            conv.LOWERING = old

    def time_case(xs: tuple, ws: tuple, stride: int, pad: int, names: list[str]) -> dict:
        return _conv_case(s, xs, ws, conv_param(xs, ws, stride, pad), repeats, rng, names)

    _conv_sweep.sweep_lowerings(shapes, time_case, layout)


def _conv_case(
    s: Setup,
    xs: tuple,
    ws: tuple,
    param: dict,
    repeats: int,
    rng: np.random.Generator,
    lowerings: list[str] | None = None,
) -> dict:
    """Median seconds of ours (fwd, fb) and torch's (tfwd, tfb); with ``lowerings``,
    only ours fwd+bwd under each of those ``conv.LOWERING`` names."""
    xh = rng.standard_normal(xs, dtype=np.float32)
    wh = rng.standard_normal(ws, dtype=np.float32) * 0.1
    bh = rng.standard_normal(ws[0], dtype=np.float32)
    x, w, b = s.array(xh), s.array(wh), s.array(bh)
    out, _ = conv_forward_fast(x, w, b, param)
    doh = rng.standard_normal(tuple(out.shape), dtype=np.float32)
    dout = s.array(doh)
    del out

    def fwd() -> Any:
        return conv_forward_fast(x, w, b, param)[0]

    def fwd_bwd() -> Any:
        _, cache = conv_forward_fast(x, w, b, param)
        return conv_backward_fast(dout, cache)

    if lowerings is not None:

        def forced(name: str) -> Any:
            conv.LOWERING = name
            try:
                return fwd_bwd()
            finally:
                conv.LOWERING = "auto"

        # The minimum: each lowering's own speed, the least disturbed by other load.
        fns = {n: (lambda n=n: forced(n)) for n in lowerings}
        return timed(fns, repeats, s.sync, min)
    fns: dict[str, Callable[[], Any]] = {"fwd": fwd, "fb": fwd_bwd}
    if s.torch is not None:
        F = s.torch.nn.functional
        tx, tw, tb = s.tensor(xh, True), s.tensor(wh, True), s.tensor(bh, True)
        tdout = s.tensor(doh)
        stride, pad = param["stride"], param["pad"]

        def tfwd() -> Any:
            with s.torch.no_grad():
                return F.conv2d(tx, tw, tb, stride=stride, padding=pad)

        def tfwd_bwd() -> Any:
            tx.grad = tw.grad = tb.grad = None
            F.conv2d(tx, tw, tb, stride=stride, padding=pad).backward(tdout)

        fns |= {"tfwd": tfwd, "tfb": tfwd_bwd}
    return timed(fns, repeats, s.sync)


def bench_naive(s: Setup, repeats: int, peak: float, rng: np.random.Generator) -> None:
    xs, ws, stride, pad = NAIVE_SHAPE
    x = s.array(rng.standard_normal(xs, dtype=np.float32))
    w = s.array(rng.standard_normal(ws, dtype=np.float32))
    b = s.array(rng.standard_normal(ws[0], dtype=np.float32))
    param = {"stride": stride, "pad": pad}
    out, _ = conv_forward_fast(x, w, b, param)
    dout = s.array(rng.standard_normal(tuple(out.shape), dtype=np.float32))

    def step(fwd: Callable, bwd: Callable) -> Callable[[], Any]:
        def run() -> Any:
            _, cache = fwd(x, w, b, param)
            return bwd(dout, cache)

        return run

    fast = timed({"fast": step(conv_forward_fast, conv_backward_fast)}, max(repeats, 5), s.sync)
    # The naive layer loops over every output pixel: a few repeats suffice.
    naive = timed({"naive": step(conv_forward_naive, conv_backward_naive)}, 2, s.sync)
    print(f"\nfast vs naive, forward+backward, x{xs} w{ws} s{stride} p{pad}")
    print(
        f"  naive {naive['naive'] * 1e3:9.2f} ms   fast {fast['fast'] * 1e3:7.2f} ms   "
        f"speed-up {naive['naive'] / fast['fast']:6.1f}x",
        flush=True,
    )


def bench_pool(s: Setup, repeats: int, rng: np.random.Generator) -> None:
    print("\nmax pool 2x2 stride 2, x(128, 32, 32, 32)")
    try:
        from xplayers.layers.pool import max_pool_backward_fast, max_pool_forward_fast
    except ImportError as exc:
        print(f"  skipped: xplayers.layers.pool is not usable here ({exc})")
        return
    xh = rng.standard_normal(POOL_SHAPE, dtype=np.float32)
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    x = s.array(xh)
    out, _ = max_pool_forward_fast(x, param)
    doh = rng.standard_normal(tuple(out.shape), dtype=np.float32)
    dout = s.array(doh)
    del out

    def fwd_bwd() -> Any:
        _, cache = max_pool_forward_fast(x, param)
        return max_pool_backward_fast(dout, cache)

    fns: dict[str, Callable[[], Any]] = {"fwd": lambda: max_pool_forward_fast(x, param)[0]}
    fns["fb"] = fwd_bwd
    if s.torch is not None:
        F = s.torch.nn.functional
        tx, tdout = s.tensor(xh, True), s.tensor(doh)

        def tfwd() -> Any:
            with s.torch.no_grad():
                return F.max_pool2d(tx, 2, 2)

        def tfwd_bwd() -> Any:
            tx.grad = None
            F.max_pool2d(tx, 2, 2).backward(tdout)

        fns |= {"tfwd": tfwd, "tfb": tfwd_bwd}
    t = timed(fns, repeats, s.sync)
    gb = xh.nbytes / 1e9
    for key, label in (("fwd", "forward"), ("fb", "forward+backward")):
        ref = t.get("t" + key)
        extra = f"  ratio {t[key] / ref:5.2f}x (ref {ref * 1e3:7.2f} ms)" if ref else ""
        print(f"  {label:<42s} ours {t[key] * 1e3:8.2f} ms  ({gb / t[key]:5.1f} GB/s of x){extra}")


def bench_memory(s: Setup) -> None:
    if s.torch is None or s.tdevice.type != "cpu" or not s.adapter.on_cpu(s.array(np.zeros(1))):
        return
    xs, ws, stride, pad = _conv_memory.MEMORY_SHAPE
    print(f"\npeak memory of conv forward+backward above its inputs, x{xs} w{ws} s{stride} p{pad}")
    peaks = {
        contender: _conv_memory.peak_in_child(contender, s.name) for contender in ("ours", "torch")
    }
    print(
        f"  ours {peaks['ours']:7.1f} MiB  torch {peaks['torch']:7.1f} MiB  "
        f"ratio {peaks['ours'] / peaks['torch']:5.2f}x (target < 1)"
    )


def main(argv: list[str] | None = None) -> int:
    global SETTLE_S
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "torch"])
    p.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    p.add_argument("--quick", action="store_true", help="3 repeats: a smoke run")
    p.add_argument(
        "--settle",
        type=float,
        default=SETTLE_S,
        help="seconds of pause before each timed function (0: none)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch CPU threads (numpy's BLAS uses all cores by default)",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="only the conv layers of well-known networks, fwd and fwd+bwd vs torch\n"
        "(default 3 repeats; with --quick: 1 repeat, 4 small shapes)",
    )
    p.add_argument(
        "--lowerings",
        action="store_true",
        help="with --sweep: ours fwd+bwd on every lowering that runs each shape\n"
        "(the measurements the lowering rule is fitted to; minima), no torch",
    )
    args = p.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    if args.sweep:
        repeats = 1 if args.quick else min(args.repeats, SWEEP_REPEATS)
    SETTLE_S = max(0.0, args.settle)
    try:
        s = Setup(args.backend, args.threads)
    except backends.BackendError as exc:
        print(f"backend {args.backend!r} unavailable: {exc}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    print(
        f"backend {args.backend} on {s.adapter.device_name(s.adapter.default_device())}, float32, "
        f"{repeats} repeats (medians), torch threads {args.threads}, "
        f"chunk workers {backends.work_policy(s.array(np.zeros(1, dtype=np.float32))).workers}"
        + ("" if s.torch is not None else "; torch reference unavailable")
    )
    if args.sweep:
        if s.torch is None:
            print("--sweep compares against torch, which is unavailable", file=sys.stderr)
            return 2
        if args.lowerings:
            bench_lowerings(s, repeats, args.quick, rng)
        else:
            bench_sweep(s, repeats, args.quick, rng)
        return 0
    peak = matmul_gflops(s, repeats)
    print(f"float32 matmul 2048^3 on {args.backend}: {peak:.1f} GFLOP/s")
    bench_conv(s, repeats, peak, rng)
    bench_naive(s, repeats, peak, rng)
    bench_pool(s, repeats, rng)
    bench_memory(s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
