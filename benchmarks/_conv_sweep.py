"""The conv layers of well-known networks, for ``bench_conv.py --sweep``.

SWEEP_SHAPES is the one list of them; ``sweep`` times each with the timer
bench_conv.py passes in and prints one row per shape, then the worst and the
geometric-mean ratio of ours to torch (forward+backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable

Shape = tuple[str, tuple[int, int, int, int], tuple[int, int, int, int], int, int]

#: (label, x shape, w shape, stride, pad): CIFAR-sized inputs unless the network says otherwise.
SWEEP_SHAPES: list[Shape] = [
    ("small batch 3x3 64ch", (8, 64, 32, 32), (64, 64, 3, 3), 1, 1),
    ("small batch 5x5 16ch", (4, 16, 32, 32), (32, 16, 5, 5), 1, 2),
    ("small batch 7x7 RGB", (2, 3, 32, 32), (32, 3, 7, 7), 1, 3),
    ("LeNet-5 C1", (128, 1, 32, 32), (6, 1, 5, 5), 1, 0),
    ("LeNet-5 C3", (128, 6, 14, 14), (16, 6, 5, 5), 1, 0),
    ("LeNet-5 C5", (128, 16, 5, 5), (120, 16, 5, 5), 1, 0),
    ("CS231n ThreeLayerConvNet conv 7x7", (64, 3, 32, 32), (32, 3, 7, 7), 1, 3),
    ("VGG-CIFAR conv1 3x3 3->64", (64, 3, 32, 32), (64, 3, 3, 3), 1, 1),
    ("VGG-CIFAR conv2 3x3 64->128 @16", (64, 64, 16, 16), (128, 64, 3, 3), 1, 1),
    ("VGG-CIFAR conv3 3x3 128->256 @8", (64, 128, 8, 8), (256, 128, 3, 3), 1, 1),
    ("VGG-CIFAR conv4 3x3 256->512 @4", (64, 256, 4, 4), (512, 256, 3, 3), 1, 1),
    ("ResNet-18 stage1 3x3", (64, 64, 32, 32), (64, 64, 3, 3), 1, 1),
    ("ResNet-18 stage2 3x3 s2", (64, 64, 32, 32), (128, 64, 3, 3), 2, 1),
    ("ResNet-18 stage2 3x3", (64, 128, 16, 16), (128, 128, 3, 3), 1, 1),
    ("ResNet-18 stage2 1x1 proj s2", (64, 64, 32, 32), (128, 64, 1, 1), 2, 0),
    ("ResNet-18 stage3 3x3 s2", (64, 128, 16, 16), (256, 128, 3, 3), 2, 1),
    ("ResNet-18 stage3 3x3", (64, 256, 8, 8), (256, 256, 3, 3), 1, 1),
    ("ResNet-18 stage3 1x1 proj s2", (64, 128, 16, 16), (256, 128, 1, 1), 2, 0),
    ("ResNet-18 stage4 3x3 s2", (64, 256, 8, 8), (512, 256, 3, 3), 2, 1),
    ("ResNet-18 stage4 1x1 proj s2", (64, 256, 8, 8), (512, 256, 1, 1), 2, 0),
    ("5x5 8->16 @32 (issue 26)", (128, 8, 32, 32), (16, 8, 5, 5), 1, 2),
    ("5x5 16->32 @32 (issue 26)", (128, 16, 32, 32), (32, 16, 5, 5), 1, 2),
    ("5x5 16->32 @16 (issue 26)", (128, 16, 16, 16), (32, 16, 5, 5), 1, 2),
    ("5x5 16->32 @16 batch 512 (issue 26)", (512, 16, 16, 16), (32, 16, 5, 5), 1, 2),
    ("5x5 32->64 @8 batch 512 (issue 26)", (512, 32, 8, 8), (64, 32, 5, 5), 1, 2),
    ("5x5 3->64 @32", (128, 3, 32, 32), (64, 3, 5, 5), 1, 2),
    ("3x3 16->64 @32 (issue 26)", (128, 16, 32, 32), (64, 16, 3, 3), 1, 1),
    ("1x1 64->128 @16", (128, 64, 16, 16), (128, 64, 1, 1), 1, 0),
    ("1x1 256->64 @8 bottleneck", (128, 256, 8, 8), (64, 256, 1, 1), 1, 0),
]

#: ``--sweep --quick``: this many shapes, at most this batch.
QUICK_SHAPES, QUICK_BATCH = 4, 4


def quick_shapes() -> list[Shape]:
    """The first QUICK_SHAPES shapes with their batch cut to QUICK_BATCH: a smoke run."""
    return [
        (label, (min(xs[0], QUICK_BATCH), *xs[1:]), ws, stride, pad)
        for label, xs, ws, stride, pad in SWEEP_SHAPES[:QUICK_SHAPES]
    ]


def sweep(
    shapes: list[Shape],
    time_case: Callable[[tuple, tuple, int, int], dict],
    lowering: Callable[[tuple, tuple, int, int], str],
) -> list[float]:
    """Print a row per shape and the closing summary; return the fwd+bwd ratios.

    ``time_case(xs, ws, stride, pad)`` gives median seconds under the keys
    fwd, fb (ours) and tfwd, tfb (torch); ``lowering`` names the layout used.
    """
    print(
        f"{'shape':<38s} {'x':<18s} {'w':<18s} s p | {'fwd ours':>9s} {'torch':>8s} "
        f"{'ratio':>6s} | {'fwd+bwd ours':>12s} {'torch':>8s} {'ratio':>6s} | lowering"
    )
    ratios: list[float] = []
    for label, xs, ws, stride, pad in shapes:
        t = time_case(xs, ws, stride, pad)
        ratio = t["fb"] / t["tfb"]
        ratios.append(ratio)
        print(
            f"{label:<38s} {_dims(xs):<18s} {_dims(ws):<18s} {stride} {pad} | "
            f"{t['fwd'] * 1e3:7.2f}ms {t['tfwd'] * 1e3:6.2f}ms {t['fwd'] / t['tfwd']:5.2f}x | "
            f"{t['fb'] * 1e3:10.2f}ms {t['tfb'] * 1e3:6.2f}ms {ratio:5.2f}x | "
            f"{lowering(xs, ws, stride, pad)}",
            flush=True,
        )
    worst = max(range(len(ratios)), key=ratios.__getitem__)
    gmean = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(
        f"sweep: worst {ratios[worst]:.2f}x ({shapes[worst][0]}), "
        f"geometric mean {gmean:.2f}x over {len(ratios)} shapes (fwd+bwd)"
    )
    return ratios


def _dims(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, shape)) + ")"


#: The lowerings ``--sweep --lowerings`` times, as ``conv.LOWERING`` names them.
LOWERINGS = ("flat", "channels_last", "rows", "pointwise")


def sweep_lowerings(
    shapes: list[Shape],
    time_case: Callable[[tuple, tuple, int, int, list[str]], dict],
    layout: Callable[..., str],
) -> None:
    """Print, per shape, ours fwd+bwd on every lowering that runs it, the fastest
    and the one "auto" picks; the data behind the rule.

    ``time_case(xs, ws, stride, pad, names)`` gives seconds per lowering name;
    ``layout(xs, ws, stride, pad[, name])`` the lowering used with name forced
    (flat where name cannot run the shape), or by "auto".
    """
    print(
        f"{'shape':<38s} | " + " ".join(f"{n:>13s}" for n in LOWERINGS) + " | best, auto (x best)"
    )
    losses = []
    for label, xs, ws, stride, pad in shapes:
        names = [n for n in LOWERINGS if layout(xs, ws, stride, pad, n) == n]
        t = time_case(xs, ws, stride, pad, names)
        best, auto = min(t, key=t.__getitem__), layout(xs, ws, stride, pad)
        losses.append(t[auto] / t[best])
        cells = " ".join(f"{t[n] * 1e3:11.2f}ms" if n in t else f"{'-':>13s}" for n in LOWERINGS)
        print(f"{label:<38s} | {cells} | {best}, {auto} ({losses[-1]:.2f}x)", flush=True)
    gmean = math.exp(sum(map(math.log, losses)) / len(losses))
    print(f"auto vs the fastest lowering: worst {max(losses):.2f}x, geometric mean {gmean:.2f}x")
