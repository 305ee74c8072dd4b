"""Backend-parity runs: the same seeded model and inputs on several backends and
devices, side by side, with every difference measured against the first one.

    report = compare(["numpy", "torch", "array_api_strict:device1"], model="fc")
    report.passed            # every relative difference within TOLERANCES[dtype]

Differences are relative to the size of the reference:
``max|a - ref| / max|ref|`` over an array (absolute where ``ref`` is all zero),
the largest over the arrays compared (the loss; a layer's output and
gradients). Parameters are measured against ``max(1, max|ref|)``: a bias
before batch norm has a zero gradient in exact arithmetic, so it stays at
rounding-noise size and only an absolute difference means anything there.

The seed fixes the initial weights (drawn on the host) and the minibatch
order (sampled on the host), so the backends run the same arithmetic and only
the order of floating-point additions inside each library differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backends
from ._families import FAMILIES, family_inputs, run_family

__all__ = ["TOLERANCES", "ParityReport", "compare", "compare_layers", "compare_training"]

#: The largest relative difference a dtype allows. float64 leaves ~1e-3 of
#: headroom over the ~1e-12 a 20-step run drifts; float32 sums ~1e-6 per pass.
TOLERANCES = {"float64": 1e-8, "float32": 1e-3}


@dataclasses.dataclass
class ParityReport:
    """What ``compare`` measured; ``cases[0]`` is the reference.

    ``loss[case][t]`` / ``params[case][t]``: relative differences at iteration
    t (after its update); ``layers[family][case]``: (max abs, max rel).
    """

    cases: list[str]
    model: str
    dtype: str
    update_rule: str
    loss: dict[str, list[float]]
    params: dict[str, list[float]]
    layers: dict[str, dict[str, tuple[float, float]]]

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.dtype]

    def worst(self) -> float:
        """The largest relative difference of the whole report."""
        values = [max(v, default=0.0) for v in (*self.loss.values(), *self.params.values())]
        values += [rel for row in self.layers.values() for _, rel in row.values()]
        return max(values, default=0.0)

    @property
    def passed(self) -> bool:
        return self.worst() <= self.tolerance


def difference(a: Any, ref: Any, floor: float = 0.0) -> tuple[float, float]:
    """(max |a - ref|, that over max(floor, max |ref|)) of two arrays of any backends."""
    a64 = backends.to_numpy(a).astype(np.float64)
    r64 = backends.to_numpy(ref).astype(np.float64)
    if a64.shape != r64.shape:
        raise ValueError(f"shapes differ: {a64.shape} against the reference's {r64.shape}")
    if a64.size == 0:
        return 0.0, 0.0
    gap = float(np.max(np.abs(a64 - r64)))
    scale = max(float(np.max(np.abs(r64))), floor)
    return gap, gap / scale if scale > 0 else gap


def parse_cases(cases: Sequence[str]) -> list[tuple[str, Any]]:
    """'numpy', 'array_api_strict:device1' -> (backend, device object), each checked
    available; BackendError with the reason otherwise."""
    placed = []
    for case in cases:
        name, device = backends.parse_case(case)
        reason = backends.unavailable_reason(name)
        if reason is not None:
            raise backends.BackendError(f"backend {name!r} is not available here: {reason}")
        placed.append((name, backends.resolve_device(name, device)))
    return placed


def _label(name: str, device: Any) -> str:
    return f"{name}:{backends.get_backend(name).device_label(device)}"


def compare_layers(
    cases: Sequence[str], dtype: str = "float64", seed: int = 0
) -> dict[str, dict[str, tuple[float, float]]]:
    """One forward/backward of each layer family on every case, against the first:
    ``{family: {case: (max abs, max rel)}}`` (the reference itself left out)."""
    placed = parse_cases(cases)
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for family in FAMILIES:
        host = family_inputs(family, seed)
        results = []
        for name, device in placed:
            arrays = {
                k: backends.asarray(v, name, None if k == "y" else dtype, device)
                for k, v in host.items()
            }
            results.append(run_family(family, arrays))
        table[family] = {}
        for (name, device), outputs in zip(placed[1:], results[1:], strict=True):
            pairs = [difference(a, r) for a, r in zip(outputs, results[0], strict=True)]
            table[family][_label(name, device)] = (
                max(g for g, _ in pairs),
                max(r for _, r in pairs),
            )
    return table


def _build(model: str, name: str, device: Any, dtype: str, seed: int) -> Any:
    from ..models import FullyConnectedNet, ThreeLayerConvNet

    place = dict(backend=name, device=device, dtype=dtype, seed=seed, num_classes=10)
    if model == "cnn":
        return ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=8, filter_size=3,
                                 hidden_dim=32, weight_scale=0.05, **place)  # fmt: skip
    if model == "fc":
        return FullyConnectedNet([64, 64], input_dim=64, normalization="batchnorm",
                                 weight_scale=0.1, **place)  # fmt: skip
    raise ValueError(f"model must be 'fc' or 'cnn', got {model!r}")


def compare_training(
    cases: Sequence[str],
    model: str = "fc",
    iterations: int = 20,
    dtype: str = "float64",
    update_rule: str = "sgd_momentum",
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Train ``model`` ("fc": 64-64-64-10 with batchnorm; "cnn": ThreeLayerConvNet)
    on the digits on every case in lockstep: per case but the first, the relative
    loss and parameter differences after each iteration."""
    from ..data import get_digits_data
    from ..defaults import DEFAULT_LEARNING_RATES
    from ..solver import Solver

    placed = parse_cases(cases)
    data = get_digits_data(image=model == "cnn", dtype=np.float64)
    solvers = [
        Solver(
            _build(model, name, device, dtype, seed),
            data,
            update_rule=update_rule,
            optim_config={"learning_rate": DEFAULT_LEARNING_RATES[update_rule]},
            batch_size=50,
            seed=seed,
            verbose=False,
        )
        for name, device in placed
    ]
    labels = [_label(name, device) for name, device in placed[1:]]
    loss: dict[str, list[float]] = {k: [] for k in labels}
    params: dict[str, list[float]] = {k: [] for k in labels}
    steps = range(iterations)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="parity", unit="it", leave=False)
    for _ in steps:
        ref_loss = solvers[0].step()
        ref_params = solvers[0].model.params
        for label, solver in zip(labels, solvers[1:], strict=True):
            gap = abs(solver.step() - ref_loss)
            loss[label].append(gap / abs(ref_loss) if ref_loss else gap)
            params[label].append(
                max(difference(w, ref_params[k], 1.0)[1] for k, w in solver.model.params.items())
            )
    return loss, params


def compare(
    cases: Sequence[str],
    model: str = "fc",
    iterations: int = 20,
    dtype: str = "float64",
    update_rule: str = "sgd_momentum",
    seed: int = 0,
    progress: bool = False,
) -> ParityReport:
    """Training and layer parity of ``cases`` (two or more; the first is the reference)."""
    if len(cases) < 2:
        raise ValueError(f"parity needs two or more backends to compare, got {list(cases)}")
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be one of {sorted(TOLERANCES)}, got {dtype!r}")
    placed = parse_cases(cases)
    labels = [_label(name, device) for name, device in placed]
    if len(set(labels)) < len(labels):
        raise ValueError(f"a backend and device is named twice in {list(cases)}")
    loss, params = compare_training(cases, model, iterations, dtype, update_rule, seed, progress)
    layers = compare_layers(cases, dtype, seed)
    return ParityReport(labels, model, dtype, update_rule, loss, params, layers)
