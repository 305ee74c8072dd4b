"""Training loop: minibatch SGD-family optimisation of a model, as in CS231n.

The Solver samples minibatches on the host with its own seeded NumPy
generator and moves each batch to the model's backend once; parameters and
optimizer state never leave the device during training.

Loss synchronisation policy
---------------------------
``model.loss`` returns a 0-d device array. Reading it as a float waits for the
device, so the Solver keeps the arrays of the last few iterations and converts
them together (one transfer) only at a *flush*: every ``print_every``
iterations (to show the loss), before each accuracy check / checkpoint, and
when training ends or stops. ``loss_history`` is therefore a list of floats
whenever ``train()`` is not running. A non-finite loss is detected at the
next flush (at most ``print_every`` iterations late), always before any
checkpoint is written; the error names the iteration where it first appeared.
The batches' labels are not read back either: the model's loss gets the
training labels' range (``label_range``), read once when the Solver is built.

Around the loop
---------------
``_solver_settings`` checks the keywords, model and data; ``_solver_state``
holds the state's structure (``state_dict``), its checks and the random
streams; ``_divergence`` the error a NaN raises; ``_accuracy`` the counting;
``_parallel_step`` the split over a communicator's ranks; ``_progress`` what is
shown. With ``checkpoint_name=name`` every accuracy check writes
``{name}_epoch_{k}.safetensors`` atomically (``_checkpoint_writer``);
``load_checkpoint`` and ``resume`` load the reading code (``_resume``) when called.

Compiled steps
--------------
On JAX the whole step (forward, backward, update, batch-norm statistics,
dropout keys) runs as one ``jax.jit`` function of the Solver's state
(``_compiled_step``), compiled once per shape; ``jit=False`` runs it eagerly,
and the other backends ignore ``jit``. The optimizer configs' numbers then
live on the device during training and are read back as Python numbers where
the Solver reads its state back: ``state_dict()`` (so checkpoints) and the
end of ``train()`` and of ``step()``. With a ``comm`` the gradients' allreduce
goes through the host between backward and update, so the step runs eagerly
(``jit=True`` with a comm is a ValueError).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _progress, _solver_state, backends
from ._accuracy import count_correct
from ._batches import Split
from ._checkpoint_writer import save_solver
from ._checks import check_int
from ._compiled_step import CompiledStep, compiles
from ._divergence import TrainingDiverged, diverged, nonfinite_params
from ._parallel_step import parallel_for
from ._solver_settings import data_splits, loss_options, solver_settings
from .optim import decay_learning_rate, get_update_rule

__all__ = ["Solver", "TrainingDiverged"]


class Solver:
    """Trains a model with minibatch first-order updates (CS231n semantics).

    ``model`` has ``params`` (dict of arrays) and ``loss(X, y=None)``;
    ``data`` holds ``X_train``, ``y_train``, ``X_val``, ``y_val`` as host
    (numpy) or backend arrays, X of shape (N, ...) and y (N,) integer labels.

    Keywords (CS231n): ``update_rule`` ('sgd', 'sgd_momentum', 'rmsprop',
    'adam' or a callable ``(w, dw, config) -> (next_w, config)``),
    ``optim_config`` (dict given to the rule, deep-copied per parameter),
    ``lr_decay`` (learning-rate factor after each epoch), ``batch_size``
    (100), ``num_epochs`` (10), ``num_train_samples`` (1000: training rows used
    for the train accuracy; None for all), ``num_val_samples`` (None: all),
    ``checkpoint_name`` (None, or a name: each check writes
    ``{name}_epoch_{k}.safetensors``, as CS231n wrote ``.pkl`` files),
    ``print_every`` (10), ``verbose`` (True).

    Extra keywords: ``seed`` (None: seeds the minibatch and accuracy-subset
    sampling; the same seed gives the same batches on every backend),
    ``progress`` (None: a tqdm bar when ``verbose`` and stdout is a terminal,
    plain prints every ``print_every`` otherwise; True/False force it),
    ``keep_checkpoints`` (True: keep every epoch's file; False: only the
    latest), ``checkpoint_info`` (JSON data saved with each checkpoint),
    ``comm`` (None, or an ``xplayers.distributed`` communicator: data parallelism
    over its ranks, ``batch_size`` being the global batch; see ``_parallel_step``),
    ``jit`` (None: on JAX each step runs compiled with ``jax.jit``; False: eagerly;
    True: compiled, a ValueError with a ``comm``; other backends ignore it).
    ``last_checkpoint`` is the path of the latest file written (or loaded).

    After ``train()``: ``loss_history`` (one float per iteration),
    ``train_acc_history`` / ``val_acc_history`` (after the first iteration and
    after each epoch), ``acc_iterations`` (the iteration count at each of those
    checks), ``best_val_acc``, ``best_params`` (device copies, restored into
    the model; batch-norm running statistics of the best check are restored
    with them). ``state_dict()`` / ``load_state_dict()`` hold all of it.
    """

    def __init__(self, model: Any, data: dict[str, Any], **kwargs: Any) -> None:
        settings = solver_settings(model, kwargs)
        self.model = model
        self._train, self._val = data_splits(data)
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]
        self.update_rule_name = settings["update_rule"]
        self.update_rule: Callable = get_update_rule(settings["update_rule"])
        self.optim_config = settings["optim_config"]
        self.lr_decay = settings["lr_decay"]
        self.batch_size = settings["batch_size"]
        self.num_epochs = settings["num_epochs"]
        self.num_train_samples = settings["num_train_samples"]
        self.num_val_samples = settings["num_val_samples"]
        self.checkpoint_name = settings["checkpoint_name"]
        self.keep_checkpoints = settings["keep_checkpoints"]
        self.checkpoint_info = settings["checkpoint_info"]
        self.last_checkpoint: Path | None = None
        self.print_every = settings["print_every"]
        self.verbose = settings["verbose"]
        self.progress = settings["progress"]
        self.seed = settings["seed"]
        self.jit: bool | None = settings["jit"]
        self._data_parallel = settings["comm"] is not None
        if self.jit and self._data_parallel and compiles(self._first_param()):
            raise ValueError(
                "jit=True cannot compile a data-parallel step: the gradients' allreduce "
                "runs through the host between backward and update; pass jit=False or "
                "jit=None (with a comm the step then runs eagerly)"
            )
        self._parallel = parallel_for(settings["comm"], self, (self._train, self._val))
        self.seed = self._parallel.agreed_seed(self.seed)
        self._compiled: CompiledStep | None = None
        if not self._parallel.is_root:  # one rank speaks for all
            self.verbose, self.progress = False, False
        self._loss_options = loss_options(model, self._train.label_range)
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        """Fresh bookkeeping: counters, histories, generators, optimizer configs."""
        self.epoch = 0
        self.iteration = 0
        self.best_val_acc = 0.0
        self.best_params: dict[str, Any] = {}
        self._initial: tuple[dict[str, Any], list[dict] | None] | None = None
        self._best_norm_params: list[dict] | None = None
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.acc_iterations: list[int] = []
        self._pending: list[Any] = []  # loss arrays not yet read back
        self._batch_rng, self._eval_rng = _solver_state.streams(self.seed)
        self.optim_configs = {p: copy.deepcopy(self.optim_config) for p in self.model.params}

    def state_dict(self) -> dict[str, Any]:
        """Every piece of training state, as plain values and arrays (copies on the
        model's backend and device): counters, histories, optimizer configs, generator
        states, best parameters and batch-norm statistics; ``_solver_state`` lists the
        keys. With the model's own state it is what a checkpoint holds."""
        state = {k: _solver_state.device_copies(getattr(self, k)) for k in _solver_state.AS_KEPT}
        if self._compiled is not None:  # the numbers a compiled step keeps on the device
            state["optim_configs"] = self._compiled.host_numbers(state["optim_configs"])
        rng = {"batch": self._batch_rng, "eval": self._eval_rng}
        return {
            **state,
            "num_train": self._train.n,
            "rng": {k: g.bit_generator.state for k, g in rng.items()},
            "best_norm_params": _solver_state.device_copies(self._best_norm_params),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (a ``state_dict()``, of this model's parameters): the
        rest of the run is bit-identical to the one it was taken from, on the same backend.

        Arrays are copied to the model's backend and device. TypeError, KeyError or
        ValueError naming the key for anything ``state_dict()`` would not hold (the solver
        is then left as it was); a warning when ``state['num_train']`` differs from the
        rows of X_train.
        """
        s = _solver_state.checked(state, self.model, self.update_rule_name, self._train.n)
        for k in _solver_state.AS_KEPT:
            setattr(self, k, s[k])
        self._batch_rng.bit_generator.state = s["rng"]["batch"]
        self._eval_rng.bit_generator.state = s["rng"]["eval"]
        self._best_norm_params = s["best_norm_params"]
        self._pending = []

    @property
    def num_train(self) -> int:
        """The rows of X_train: the N each minibatch is drawn from."""
        return self._train.n

    @property
    def iterations_per_epoch(self) -> int:
        return max(self._train.n // self.batch_size, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch

    def _first_param(self) -> Any:
        """A parameter of the model, read each time: the model may move."""
        return next(iter(self.model.params.values()))

    def _place(self) -> tuple[str, np.dtype, Any]:
        """The backend, dtype and device of the model's params: every batch goes there."""
        first = self._first_param()
        return (
            backends.backend_of(first),
            backends.numpy_dtype(first.dtype),
            backends.device_of(first),
        )

    # --------------------------------------------------------------- training
    def _step(self) -> None:
        """One minibatch: loss, gradients, and an update of every parameter."""
        # Sampled with replacement, as CS231n does.
        idx = self._batch_rng.integers(self._train.n, size=self.batch_size)
        idx, weight = self._parallel.share(idx)
        X_batch, y_batch = self._train.gather(idx, *self._place())
        compiled = self._compiled_step()
        if compiled is not None:
            configs = self.optim_configs
            loss, self.optim_configs = compiled(configs, X_batch, y_batch, self.iteration)
            self._pending.append(loss)
            return
        begin_step = getattr(self.model, "begin_step", None)
        if begin_step is not None:
            begin_step(self.iteration)
        loss, grads = self.model.loss(X_batch, y_batch, **self._loss_options)
        loss, grads = self._parallel.combine(loss, grads, weight)
        self._pending.append(loss)
        for p, w in self.model.params.items():
            next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config

    def _compiled_step(self) -> CompiledStep | None:
        """The compiled step where the model's backend compiles and ``jit`` allows it
        (built at first use, kept while the model stays there), else None."""
        if self.jit is False or self._data_parallel or not compiles(self._first_param()):
            return None
        if self._compiled is None:
            self._compiled = CompiledStep(
                self.model,
                self.update_rule,
                self.update_rule_name if isinstance(self.update_rule_name, str) else None,
                self._loss_options,
                self.seed,
            )
        return self._compiled

    def _settle_numbers(self) -> None:
        """The optimizer configs' numbers back as Python numbers (one read-back each)
        after a compiled run; nothing to do after an eager one."""
        if self._compiled is not None:
            self.optim_configs = self._compiled.host_numbers(self.optim_configs)

    def _advance(self) -> None:
        with backends.on_device_of(self._first_param()):
            self._step()  # CuPy launches on its current device: the model's
        self.iteration += 1

    def step(self) -> float:
        """One training iteration by hand, outside ``train`` (no accuracy check,
        checkpoint or learning-rate decay): its minibatch loss, read back at once."""
        if self._initial is None and not self.best_params:
            self._initial = self._copies()  # what a divergence before any check restores
        self._advance()
        self._flush()
        self._settle_numbers()
        return self.loss_history[-1]

    def _flush(self, check: bool = True) -> None:
        """Read the pending losses back (one transfer) and stop on a non-finite one."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        start = len(self.loss_history)
        first = pending[0]
        if backends.is_host(first) or not backends.is_array(first):
            values = [float(v) for v in pending]  # host values: nothing to wait for
        else:
            xp = backends.get_namespace(loss=first)
            values = [float(v) for v in backends.to_numpy(xp.stack(pending)).tolist()]
        self.loss_history.extend(values)
        if not check:
            return
        for i, v in enumerate(values):
            if not math.isfinite(v):
                self._diverged(start + i + 1, f"the loss became {v}", v)

    def _copies(self) -> tuple[dict[str, Any], list[dict] | None]:
        """Device copies of the params and the norm layers' statistics."""
        norm = _solver_state.norm_arrays(self.model)
        return _solver_state.device_copies(self.model.params), _solver_state.device_copies(norm)

    def _restore_best(self) -> str:
        """Put the best params (before the first check: the initial ones) back into the
        model; says what was restored."""
        if self.best_params:
            _solver_state.restore(self.model, self.best_params, self._best_norm_params)
            return f"the best parameters (val acc {self.best_val_acc:.4f})"
        _solver_state.restore(self.model, *self._initial)
        return "its initial parameters, from before training"

    def _diverged(self, iteration: int, what: str, value: float | None) -> None:
        """Restore the best parameters and raise TrainingDiverged."""
        restored = self._restore_best()
        written = self.last_checkpoint is not None and self.acc_iterations
        raise diverged(
            what,
            value,
            iteration,
            num_epochs=self.num_epochs,
            iterations_per_epoch=self.iterations_per_epoch,
            restored=restored,
            checkpoint=(self.last_checkpoint, self.acc_iterations[-1]) if written else None,
        )

    def check_accuracy(
        self, X: Any, y: Any, num_samples: int | None = None, batch_size: int = 100
    ) -> float:
        """Fraction of rows whose highest score is the label.

        X: (N, ...) and y: (N,), host or backend arrays. With ``num_samples``
        < N a random subset of that size is scored (drawn from the solver's
        accuracy generator, with replacement as in CS231n). Scores are taken
        in test mode; the count stays on the device and is read once. With a
        ``comm`` each rank scores its share of the rows and the counts are summed.
        """
        split = X if isinstance(X, Split) else Split("X", X, "y", y)
        if num_samples is not None and split.n > num_samples:
            split = split.subset(self._eval_rng.integers(split.n, size=num_samples))
        batch_size = check_int("batch_size", batch_size, 1)
        rows = self._parallel.bounds(split.n)
        correct = count_correct(self.model, split, rows, batch_size, self._place())
        return self._parallel.total(correct) / max(split.n, 1)

    def _check_and_save(self) -> tuple[float, float]:
        """The per-epoch check: accuracies, best params, checkpoint."""
        bad = nonfinite_params(self.model.params)
        if bad:  # a parameter may be bad even when every loss was fine
            self._diverged(self.iteration, f"parameters {bad} became non-finite by", None)
        self._parallel.sync_norm_stats(self.model)
        train_acc = self.check_accuracy(self._train, None, num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self._val, None, num_samples=self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        self.acc_iterations.append(self.iteration)
        if val_acc > self.best_val_acc or not self.best_params:
            self.best_val_acc = max(val_acc, self.best_val_acc)
            self.best_params, self._best_norm_params = self._copies()
        if self._parallel.is_root:
            save_solver(self)
        return train_acc, val_acc

    def train(self) -> None:
        """Run the optimisation (continuing where a checkpoint left off).

        Raises TrainingDiverged (the model then holds the best params) when a
        loss or parameter becomes NaN or infinite.
        """
        num_iterations = self.num_iterations
        if not self.best_params:  # a divergence before the first check restores these
            self._initial = self._copies()
        bar = _progress.progress_bar(self, num_iterations)
        try:
            for t in range(self.iteration, num_iterations):
                self._advance()
                epoch_end = (t + 1) % self.iterations_per_epoch == 0
                check = t == 0 or t == num_iterations - 1 or epoch_end
                report = t % self.print_every == 0
                if report or check:
                    self._flush()
                if report:
                    _progress.report_loss(self, bar, t, num_iterations)
                if epoch_end:
                    self.epoch += 1
                    decay_learning_rate(self.optim_configs.values(), self.lr_decay)
                if check:
                    train_acc, val_acc = self._check_and_save()
                    _progress.report_accuracy(self, bar, train_acc, val_acc)
                if bar is not None:
                    bar.update(1)
            self._flush()
        finally:
            self._flush(check=False)  # interrupted: keep what was computed
            self._settle_numbers()
            if bar is not None:
                bar.close()
        self._restore_best()

    def history(self) -> dict[str, Any]:
        """The curves for plotting, as plain Python numbers.

        Keys: ``loss_history`` (per iteration), ``train_acc_history``,
        ``val_acc_history``, ``acc_iterations`` (iteration count at each
        accuracy check), ``acc_epochs`` (epoch at each check, fractional for
        the first-iteration check), ``iterations_per_epoch``, ``best_val_acc``.
        """
        ipe = self.iterations_per_epoch
        return {
            "loss_history": list(self.loss_history),
            "train_acc_history": list(self.train_acc_history),
            "val_acc_history": list(self.val_acc_history),
            "acc_iterations": list(self.acc_iterations),
            "acc_epochs": [it / ipe for it in self.acc_iterations],
            "iterations_per_epoch": ipe,
            "best_val_acc": self.best_val_acc,
        }

    # ------------------------------------------------------------ checkpoints
    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load a checkpoint into this solver and its model, to continue with ``train()``.

        The model must have the class, parameter names, shapes and dtypes of the
        one saved (CheckpointError naming each difference); it keeps its backend.
        """
        from . import _resume  # the reading code, loaded by the runs that read

        _resume.load_into(self, path)

    @classmethod
    def resume(
        cls, path: str | os.PathLike, model: Any, data: dict[str, Any], **kwargs: Any
    ) -> Solver:
        """A Solver continuing the run saved at ``path``; call ``train()`` on it.

        ``model`` must fit the file (class, parameter names, shapes, dtypes:
        CheckpointError naming each difference). The saved settings (update
        rule, optim_config, lr_decay, batch_size, num_epochs, sample counts,
        print_every, seed) are reused unless given in ``kwargs``; a callable
        update rule is not saved and must be passed again.
        """
        from . import _resume  # the reading code, loaded by the runs that read

        return _resume.resume(cls, path, model, data, kwargs)
