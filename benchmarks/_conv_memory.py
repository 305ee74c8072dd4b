"""Peak memory of one conv forward+backward above its inputs, ours or torch's,
each measured in a fresh process (``bench_conv.py``'s last table).

    python benchmarks/_conv_memory.py ours|torch [numpy|torch]   # prints MiB
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

# Runnable from a source checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xplayers.backends as backends
from xplayers.layers.conv import conv_backward_fast, conv_forward_fast

#: x shape, w shape, stride, pad: the 3x3 64-channel layer of bench_conv.py.
MEMORY_SHAPE = ((128, 64, 32, 32), (64, 64, 3, 3), 1, 1)


def _peak_rss_mib() -> float:
    """This process's resident high-water mark. Linux's VmHWM belongs to the
    process's own memory; ru_maxrss would also carry the parent's peak
    across fork and exec (the parent runs the timings first)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_mib(contender: str, backend: str) -> float:
    """The high-water mark of resident memory, in MiB, that two conv forward+backward
    calls at MEMORY_SHAPE add above their inputs in this process."""
    import torch  # loaded by both contenders, so their baselines match

    xs, ws, stride, pad = MEMORY_SHAPE
    rng = np.random.default_rng(0)
    xh = rng.standard_normal(xs, dtype=np.float32)
    wh = rng.standard_normal(ws, dtype=np.float32) * 0.1
    bh = np.zeros(ws[0], dtype=np.float32)
    doh = rng.standard_normal((xs[0], ws[0], xs[2], xs[3]), dtype=np.float32)
    if contender == "ours":
        x, w, b, dout = (backends.asarray(a, backend) for a in (xh, wh, bh, doh))
        base = _peak_rss_mib()
        for _ in range(2):
            _, cache = conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
            grads = conv_backward_fast(dout, cache)
            del cache, grads
    else:
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (xh, wh, bh))
        tdout = torch.from_numpy(doh)
        base = _peak_rss_mib()
        for _ in range(2):
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad).backward(tdout)
    return _peak_rss_mib() - base


def peak_in_child(contender: str, backend: str) -> float:
    """``peak_mib`` measured in a fresh Python process (a fresh high-water mark)."""
    cmd = [sys.executable, __file__, contender, backend]
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


if __name__ == "__main__":
    print(f"{peak_mib(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else 'numpy'):.1f}")
