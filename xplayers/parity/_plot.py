"""The picture of a parity report: differences on a log scale, the tolerance as a line.

Two loss curves that agree to 1e-15 overlap into one; their difference on a
log axis shows how far apart they are and whether the gap grows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import _save


def _floor(dtype: str) -> float:
    # Exact agreement (0) has no place on a log axis: drawn at a level far
    # below the dtype's rounding, and the axis label says so.
    return float(np.finfo(dtype).eps) * 1e-3


def plot_parity(report: Any, path: str | Path) -> Path:
    """Write ``report`` (a ParityReport) to ``path``: per-iteration loss and parameter
    differences (left) and per-layer-family differences (right), log scale."""
    from matplotlib.figure import Figure

    floor, tol = _floor(report.dtype), report.tolerance
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_run, ax_layers = fig.subplots(1, 2, width_ratios=[1, 1.3])
    for i, case in enumerate(report.cases[1:]):
        color = f"C{i % 10}"
        steps = np.arange(1, len(report.loss[case]) + 1)
        ax_run.plot(steps, np.maximum(report.loss[case], floor), "-", color=color,
                    label=f"{case} loss")  # fmt: skip
        ax_run.plot(steps, np.maximum(report.params[case], floor), "--", color=color,
                    label=f"{case} params")  # fmt: skip
    ax_run.set_xlabel("iteration")
    ax_run.xaxis.get_major_locator().set_params(integer=True)
    ax_run.set_title(f"{report.model}, {report.update_rule}: against {report.cases[0]}")

    families = list(report.layers)
    width = 0.8 / max(len(report.cases) - 1, 1)
    for i, case in enumerate(report.cases[1:]):
        rel = [max(report.layers[f][case][1], floor) for f in families]
        ax_layers.bar(np.arange(len(families)) + i * width, rel, width, color=f"C{i % 10}",
                      label=case)  # fmt: skip
    ax_layers.set_xticks(np.arange(len(families)) + width * (len(report.cases) - 2) / 2)
    ax_layers.set_xticklabels(families, rotation=35, ha="right", fontsize="small")
    ax_layers.set_title("one forward + backward per layer family")
    for ax in (ax_run, ax_layers):
        ax.set_yscale("log")
        ax.axhline(tol, color="tab:red", linewidth=1, label=f"tolerance {tol:g}")
        ax.set_ylabel(f"relative difference ({report.dtype}; 0 drawn at {floor:.0e})")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"Backend parity, {report.dtype}: {'within' if report.passed else 'OVER'} "
                 f"tolerance (worst {report.worst():.1e})")  # fmt: skip
    return _save(fig, path)
