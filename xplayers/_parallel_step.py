"""How the Solver splits its work over the ranks of a communicator.

Every rank draws the same global batch of ``batch_size`` row indices (same
seed, same generator) and takes the contiguous share ``[r*B//P, (r+1)*B//P)``.
The model's loss is the mean over its share, so rank r's gradient is
``g_r = (1/n_r) sum_{i in share r} grad l_i``; the global-batch gradient is
``g = (1/B) sum_i grad l_i = sum_r (n_r/B) g_r``. Each rank therefore scales
its loss and gradients by ``n_r/B`` and ONE fused allreduce-sum of
``{loss, grads}`` gives every rank the loss and gradient of the whole batch,
whether or not P divides B (3 ranks and a batch of 100: shares 33, 33, 34).
The L2 term, which every rank adds in full, keeps its weight because the
``n_r/B`` sum to one. The update then runs on identical numbers on every
rank, so the parameters stay equal to those of a one-process run.

Batch norm normalises with its share's statistics (as Horovod and PyTorch
DDP do without SyncBatchNorm), so a batch-norm net is not the one-process
run; its running statistics are averaged over ranks before each accuracy
check, so every rank scores, keeps and saves the same model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backends
from ._batches import Split
from ._solver_state import norm_arrays

__all__ = ["Parallel", "Serial", "parallel_for"]


def share_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that rank ``rank`` of ``size`` takes (contiguous, balanced)."""
    return rank * n // size, (rank + 1) * n // size


class Serial:
    """One process: every rank-dependent step is the identity."""

    is_root = True

    def share(self, idx: np.ndarray) -> tuple[np.ndarray, float]:
        return idx, 1.0

    def combine(self, loss: Any, grads: dict[str, Any], weight: float) -> tuple[Any, dict]:
        return loss, grads

    def bounds(self, n: int) -> tuple[int, int]:
        return 0, n

    def total(self, count: int) -> int:
        return count

    def sync_norm_stats(self, model: Any) -> None:
        pass

    def agreed_seed(self, seed: int | None) -> int | None:
        """The seed every rank draws its batches with: ``seed`` itself in one process."""
        return seed


class Parallel(Serial):
    """The Solver's side of data parallelism over ``comm`` (see the module docstring).

    At construction, in ONE exchange, checks that every rank's Solver agrees
    on everything the ranks must share (``agreed_settings``) and that the
    models have the same parameter and running-statistic shapes and dtypes
    (DistributedError on every rank otherwise, naming each difference and
    the value on each rank); then broadcasts the parameters and statistics
    from rank 0 and gives the model its per-rank dropout stream. The Solver
    then takes its seed from ``agreed_seed`` and, on every rank but the root
    (``is_root``), stays silent.
    """

    def __init__(self, comm: Any, solver: Any, splits: tuple[Split, ...]) -> None:
        self.comm = comm
        self.is_root = comm.rank == 0
        model = solver.model
        state = {"params": model.params, "norm_params": norm_arrays(model) or []}
        comm.check_same(state, name="model", settings=agreed_settings(solver, splits))
        if solver.batch_size < comm.size:  # after the check: then every rank raises it
            raise ValueError(
                f"batch_size is the global batch, split over the {comm.size} ranks: it must be "
                f"at least {comm.size}, got {solver.batch_size}"
            )
        state = comm.broadcast(state, root=0)
        model.params = state["params"]
        _set_norm_arrays(model, state["norm_params"])
        if comm.size > 1:
            model.stream_key = (comm.rank,)

    def agreed_seed(self, seed: int | None) -> int:
        """``seed`` (alike on every rank: the settings check compared it); for None, rank
        0's fresh entropy, since unseeded ranks would draw different batches (collective:
        every rank calls it)."""
        if seed is not None:
            return seed
        return self.comm.broadcast_object(np.random.SeedSequence().entropy)

    def share(self, idx: np.ndarray) -> tuple[np.ndarray, float]:
        lo, hi = share_bounds(len(idx), self.comm.size, self.comm.rank)
        return idx[lo:hi], (hi - lo) / len(idx)

    def combine(self, loss: Any, grads: dict[str, Any], weight: float) -> tuple[Any, dict]:
        """The global batch's loss and gradients from this share's (weight = n_r / B)."""
        out = self.comm.allreduce_sum(
            {"loss": loss * weight, "grads": {k: g * weight for k, g in grads.items()}}
        )
        return out["loss"], out["grads"]

    def bounds(self, n: int) -> tuple[int, int]:
        return share_bounds(n, self.comm.size, self.comm.rank)

    def total(self, count: int) -> int:
        return int(self.comm.allreduce_sum(np.asarray([count], dtype=np.int64))[0])

    def sync_norm_stats(self, model: Any) -> None:
        arrays = norm_arrays(model) or []
        if any(arrays):
            _set_norm_arrays(model, self.comm.allreduce_mean(arrays))


def parallel_for(comm: Any, solver: Any, splits: tuple[Split, ...]) -> Serial:
    """The Solver's work splitter: Serial without a communicator."""
    return Serial() if comm is None else Parallel(comm, solver, splits)


#: Constructor arguments a rank may choose for itself: where its model lives,
#: and what the parameter check already compares (dtype) or ``model.reg`` does.
_PER_RANK_ARGS = frozenset({"backend", "device", "dtype", "reg"})


def agreed_settings(solver: Any, splits: tuple[Split, ...]) -> dict[str, Any]:
    """What every rank's Solver must hold alike, by name.

    A difference either desynchronises the collectives (other epochs, batch
    counts, data lengths or check intervals: a rank waits forever or a
    message is cut) or silently trains something else (seeds, update rule,
    model settings). Data is compared by shape and dtype, not by content.
    """
    model = solver.model
    init_args = getattr(model, "init_args", None) or {}
    data = {
        name: f"shape {tuple(int(d) for d in x.shape)} {backends.numpy_dtype(x.dtype)}"
        for split in splits
        for name, x in ((split.x_name, split.X), (split.y_name, split.y))
    }
    return {
        "model class": type(model),
        **{f"model argument {k}": v for k, v in init_args.items() if k not in _PER_RANK_ARGS},
        "model.reg": getattr(model, "reg", None),
        **data,
        "num_epochs": solver.num_epochs,
        "batch_size": solver.batch_size,
        "iterations_per_epoch": solver.iterations_per_epoch,
        "num_train_samples": solver.num_train_samples,
        "num_val_samples": solver.num_val_samples,
        "print_every": solver.print_every,
        "seed": solver.seed,
        "update_rule": solver.update_rule,
        "optim_config": solver.optim_config,
        "lr_decay": solver.lr_decay,
    }


def _set_norm_arrays(model: Any, arrays: list[dict[str, Any]]) -> None:
    for live, new in zip(getattr(model, "norm_params", []), arrays, strict=True):
        live.update(new)
