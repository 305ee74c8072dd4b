"""xplayers.plotting: PNGs from histories, without a display."""

from __future__ import annotations

import pytest
from subprocess_helpers import assert_png

from xplayers.plotting import History, plot_comparison, plot_history

RUN = {"loss": [2.3, 1.5, 0.9, 0.7], "train_acc": [0.1, 0.6, 0.8], "val_acc": [0.1, 0.5, 0.7]}


def test_plot_history_from_a_dict(tmp_path) -> None:
    path = plot_history(RUN, tmp_path / "sub" / "h.png", title="run")
    assert path == tmp_path / "sub" / "h.png"
    assert_png(path)


def test_plot_comparison_overlays_runs(tmp_path) -> None:
    assert_png(plot_comparison({"a": RUN, "b": History.of(RUN)}, tmp_path / "c.png"))


def test_history_uses_the_solver_epoch_of_each_check() -> None:
    solver_like = {
        "loss_history": [1.0, 0.5],
        "train_acc_history": [0.2, 0.9],
        "val_acc_history": [0.1, 0.8],
        "acc_epochs": [0.1, 1.0],
    }
    assert History.of(solver_like).acc_epochs == [0.1, 1.0]
    assert History.of(RUN).acc_epochs == [0.0, 1.0, 2.0]


def test_bad_inputs_say_what_is_missing(tmp_path) -> None:
    with pytest.raises(TypeError, match="loss_history"):
        plot_history({"val_acc": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one run"):
        plot_comparison({}, tmp_path / "x.png")
