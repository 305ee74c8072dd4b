"""The training steps ``bench_train_step.py`` times: ours (eager, and compiled on JAX),
native PyTorch's and a hand-written NumPy one, each with its phases where it has them.

The models: ``fc``, CS231n's FullyConnectedNet 3072-100-100-100-100-10, and ``cnn``,
ThreeLayerConvNet (3x32x32 input, 32 7x7 filters, 2x2 max pool, hidden 100); float32,
Adam at ``LEARNING_RATE``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HIDDEN = [100, 100, 100, 100]
INPUT_DIM, NUM_CLASSES = 3 * 32 * 32, 10
IMAGE, FILTERS, FILTER_SIZE, CNN_HIDDEN = (3, 32, 32), 32, 7, 100
LEARNING_RATE = 1e-3


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
