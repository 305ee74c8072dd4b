"""Whether a checkpoint's tensors fit: each other, the constructor arguments the file
records, and the model it is loaded into.

``check_consistent`` is what a file must pass on its own, before any model is
built: its params share one floating dtype; when its model class is defined
here, the shapes its constructor arguments describe (``Model.state_shapes``,
computed without allocating, and drawn only as far as the file's own tensors
go) are those of its params and normalisation statistics; its best params and
statistics and every optimizer state array (whatever the rule) have the shape
and dtype of the param they belong to, and there is one optimizer config per
param.
``check_fits`` compares a (consistent) file with a live model. Messages name
the file and the field, and list at most a few names and problems.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import backends
from ._checkpoint_layout import CheckpointError, CheckpointMismatch
from ._checkpoint_reader import clip
from ._checks import short
from ._model_registry import MODEL_CLASSES, model_class_name

_MAX_PROBLEMS = 8
Expected = dict[str, tuple[tuple[int, ...], np.dtype]]  # name -> (shape, dtype)


def _name(name: str) -> str:
    """A name as a message shows it: plainly when it is one (W1), else quoted and cut."""
    return name if name.isidentifier() and len(name) <= 40 else short(name)


def _names(names: list[str]) -> str:
    """A few of ``names``, and how many there are in all."""
    shown = ", ".join(repr(n) for n in names[:4])
    return f"[{shown}]" if len(names) <= 4 else f"[{shown}, ... ({len(names)} in all)]"


def _summary(problems: list[str]) -> str:
    text = "; ".join(problems[:_MAX_PROBLEMS])
    more = len(problems) - _MAX_PROBLEMS
    return text + (f"; and {more} more" if more > 0 else "")


def _compare(
    found: dict[str, np.ndarray], expected: Expected, what: str, theirs: str, optional: bool = False
) -> list[str]:
    """What differs between the file's arrays ``found`` and ``expected`` (names, shapes,
    dtypes); with ``optional``, expected arrays may be absent."""
    problems = []
    extra = [k for k in found if k not in expected]
    missing = [] if optional else [k for k in expected if k not in found]
    if extra:
        problems.append(f"{what} {_names(extra)} are in the file but not in {theirs}")
    if missing:
        problems.append(f"{what} {_names(missing)} are in {theirs} but not in the file")
    dtypes: dict[tuple, list[str]] = {}  # (file's, expected) -> names: said once
    for k, v in found.items():
        if k not in expected:
            continue
        shape, dtype = expected[k]
        if tuple(v.shape) != shape:
            problems.append(
                f"{what} {_name(k)} has shape {tuple(v.shape)} in the file, {shape} in {theirs}"
            )
        if v.dtype != dtype:
            dtypes.setdefault((str(v.dtype), str(dtype)), []).append(k)
    for (ours, want), names in dtypes.items():
        also = f" (and so are {_names(names[1:])})" if len(names) > 1 else ""
        problems.append(f"{what} {_name(names[0])} is {ours} in the file, {want} in {theirs}{also}")
    return problems


def _norm_problems(
    groups: list[dict], spec: list[dict] | None, dtype: np.dtype, what: str
) -> list[str]:
    """Each normalisation layer holds only the statistics it keeps, of its shape (where
    ``spec`` knows them), in the params' dtype."""
    problems = []
    for i, group in enumerate(groups):
        if spec is None:  # a model class that cannot tell: the dtype is all we know
            known = {k: (tuple(v.shape), dtype) for k, v in group.items()}
        else:
            known = {k: (shape, dtype) for k, shape in spec[i].items()}
        problems += _compare(group, known, f"{what}[{i}]", "that layer", optional=True)
    return problems


def _bounded(items: Iterator, limit: int) -> list:
    """At most ``limit + 1`` of ``items``: enough to tell that there are more than ``limit``."""
    return list(itertools.islice(items, limit + 1))


def _described(path: str, model: dict) -> tuple[Expected | None, list[dict] | None]:
    """The params and normalisation statistics the file's constructor arguments describe,
    drawn no further than the file's own tensors go; (None, None) when its class is not
    defined here or cannot tell."""
    cls = MODEL_CLASSES.get(model["class"])
    if cls is None or model["init_args"] is None:
        return None, None
    fail = f"checkpoint {path!r} is malformed: model['init_args'] {short(model['init_args'])} "
    try:
        shapes = cls.state_shapes(model["init_args"])
        if shapes is None:
            return None, None
        params = _bounded(shapes.params, len(model["params"]))
        norm = _bounded(shapes.norm, len(model["norm_params"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            fail + f"do not describe a {cls.__name__}: {clip(str(exc))}"
        ) from None
    if len(params) > len(model["params"]) or len(norm) > len(model["norm_params"]):
        raise CheckpointError(
            fail + f"describe a {cls.__name__} of more params or normalisation layers than "
            f"the file's {len(model['params'])} and {len(model['norm_params'])}"
        )
    dtype = next(iter(model["params"].values())).dtype
    return {k: (shape, dtype) for k, shape in params}, norm


def check_consistent(path: str, state: dict) -> None:
    """CheckpointError naming the file and the field unless its tensors agree with each
    other and with the constructor arguments it records (see the module's docstring)."""
    m, s = state["model"], state["solver"]
    fail = f"checkpoint {path!r} is malformed: "
    if not m["params"]:
        raise CheckpointError(fail + "model['params'] is empty")
    dtypes = sorted({str(v.dtype) for v in m["params"].values()})
    if len(dtypes) != 1:
        raise CheckpointError(fail + f"model['params'] must share one dtype, got {dtypes}")
    dtype = next(iter(m["params"].values())).dtype
    described, norm_spec = _described(path, m)
    theirs = "its init_args"
    problems = [] if described is None else _compare(m["params"], described, "params", theirs)
    if norm_spec is not None and len(norm_spec) != len(m["norm_params"]):
        problems.append(
            f"model['norm_params'] has {len(m['norm_params'])} layers, {theirs} {len(norm_spec)}"
        )
        norm_spec = None
    if problems:
        raise CheckpointError(
            fail + f"model['init_args'] {short(m['init_args'])}: " + _summary(problems)
        )
    problems = _norm_problems(m["norm_params"], norm_spec, dtype, "model['norm_params']")
    if s is not None:
        problems += _solver_problems(m, s, norm_spec, dtype)
    if problems:
        raise CheckpointError(fail + _summary(problems))


def _solver_problems(m: dict, s: dict, norm_spec: list[dict] | None, dtype: np.dtype) -> list:
    params = {k: (tuple(v.shape), v.dtype) for k, v in m["params"].items()}
    problems = []
    if s["best_params"]:  # empty until the first accuracy check
        problems += _compare(s["best_params"], params, "solver['best_params']", "its params")
    best_norm = s["best_norm_params"]
    if best_norm is not None:
        if len(best_norm) != len(m["norm_params"]):
            problems.append(
                f"solver['best_norm_params'] has {len(best_norm)} layers, "
                f"model['norm_params'] {len(m['norm_params'])}"
            )
        else:
            spec = norm_spec or [
                {k: tuple(v.shape) for k, v in group.items()} for group in m["norm_params"]
            ]
            problems += _norm_problems(best_norm, spec, dtype, "solver['best_norm_params']")
    configs = s["optim_configs"]
    missing = [k for k in params if k not in configs]
    extra = [k for k in configs if k not in params]
    if missing:
        problems.append(f"solver['optim_configs'] lacks the params {_names(missing)}")
    if extra:
        problems.append(f"solver['optim_configs'] has entries {_names(extra)} for no param")
    for p, config in configs.items():  # state arrays are shaped like their param
        arrays = {k: v for k, v in config.items() if isinstance(v, np.ndarray)}
        if p in params:
            expected = dict.fromkeys(arrays, params[p])
            where = f"solver['optim_configs'][{short(p)}]"
            problems += _compare(arrays, expected, where, f"param {_name(p)}")
    return problems


def check_fits(name: str, state: dict, model: Any) -> None:
    """CheckpointMismatch naming every difference between the file's model and ``model``:
    its class, parameter names, shapes, dtypes and normalisation layers."""
    saved = state["model"]
    problems = []
    cls = model_class_name(type(model))
    if saved["class"] != cls:
        problems.append(f"the file holds a {short(saved['class'])}, the model is a {cls}")
    ours = {k: (tuple(v.shape), backends.numpy_dtype(v.dtype)) for k, v in model.params.items()}
    problems += _compare(saved["params"], ours, "params", "the model")
    live = list(getattr(model, "norm_params", []))
    if len(saved["norm_params"]) != len(live):
        problems.append(
            f"the file has {len(saved['norm_params'])} normalisation layers, the model {len(live)}"
        )
    else:
        for i, (group, ours_group) in enumerate(zip(saved["norm_params"], live, strict=True)):
            for k, v in group.items():
                theirs = ours_group.get(k)
                if backends.is_array(theirs) and tuple(theirs.shape) != tuple(v.shape):
                    problems.append(
                        f"normalisation layer {i}'s {_name(k)} has shape {tuple(v.shape)} in the "
                        f"file, {tuple(theirs.shape)} in the model"
                    )
    if problems:
        raise CheckpointMismatch(
            f"checkpoint {name!r} does not fit the model: {_summary(problems)}"
        )
