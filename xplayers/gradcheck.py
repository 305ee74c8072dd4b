"""Numerical gradients by centred differences, on any backend.

Where arrays can be written (numpy, torch, cupy, array_api_strict) the
perturbation is written into ``x`` in place, through ``x[idx] = value``, and
undone after each probe, so ``f`` may ignore its argument and read ``x``
through a closure. Where they cannot (JAX: ``backends.writes_in_place``),
``f`` receives a perturbed copy of ``x`` and must compute from that
argument. Values are read back with ``float()``. These helpers are for
tests and debugging, not for speed: each probe costs two forward passes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import array_api_extra as xpx
import numpy as np

from . import backends


def _indices(shape: tuple[int, ...]) -> itertools.product:
    return itertools.product(*(range(s) for s in shape))


def _probe(
    f: Callable[[Any], Any],
    x: Any,
    idx: tuple[int, ...],
    h: float,
    read: Callable[[Any], Any] = float,
) -> tuple[Any, Any]:
    """(read(f(x + h e_idx)), read(f(x - h e_idx))): x written in place and restored
    where it can be (each value read before x changes again), else f given
    perturbed copies."""
    old = float(x[idx])
    if not backends.writes_in_place(x):
        return read(f(xpx.at(x)[idx].set(old + h))), read(f(xpx.at(x)[idx].set(old - h)))
    x[idx] = old + h
    pos = read(f(x))
    x[idx] = old - h
    neg = read(f(x))
    x[idx] = old
    return pos, neg


def eval_numerical_gradient(
    f: Callable[[Any], Any], x: Any, verbose: bool = True, h: float = 1e-5
) -> Any:
    """Gradient of the scalar function f at x: df/dx_i = (f(x + h e_i) - f(x - h e_i)) / 2h.

    ``x`` is perturbed as the module's text says; the result has x's shape and backend.
    """
    xp = backends.get_namespace(x=x)
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    for idx in _indices(tuple(x.shape)):
        fxph, fxmh = _probe(f, x, idx, h)
        grad[idx] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(idx, grad[idx])
    return _like(grad, x, xp)


def eval_numerical_gradient_array(f: Callable[[Any], Any], x: Any, df: Any, h: float = 1e-5) -> Any:
    """Gradient of sum(f(x) * df) with respect to x, for an array-valued f."""
    xp = backends.get_namespace(x=x, df=df)
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    for idx in _indices(tuple(x.shape)):
        pos, neg = _probe(f, x, idx, h, read=lambda v: v)
        grad[idx] = float(xp.sum((pos - neg) * df)) / (2 * h)
    return _like(grad, x, xp)


def grad_check_sparse(
    f: Callable[[Any], Any],
    x: Any,
    analytic_grad: Any,
    num_checks: int = 10,
    h: float = 1e-5,
    seed: int | None = None,
    verbose: bool = True,
) -> float:
    """Compare ``analytic_grad`` with centred differences at ``num_checks`` random entries.

    Prints each comparison (as CS231n does) when verbose and returns the
    largest relative error seen.
    """
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(num_checks):
        idx = tuple(int(rng.integers(s)) for s in x.shape)
        fxph, fxmh = _probe(f, x, idx, h)
        numeric = (fxph - fxmh) / (2 * h)
        analytic = float(analytic_grad[idx])
        denom = abs(numeric) + abs(analytic)
        err = abs(numeric - analytic) / denom if denom > 0 else 0.0
        worst = max(worst, err)
        if verbose:
            print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {err:e}")
    return worst


def rel_error(x: Any, y: Any) -> float:
    """max |x - y| / max(1e-8, |x| + |y|), elementwise, for arrays of any backend(s)."""
    a = backends.to_numpy(x).astype(np.float64)
    b = backends.to_numpy(y).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0))


def _like(grad: np.ndarray, x: Any, xp: Any) -> Any:
    return backends.asarray(grad, backends.backend_of(x), x.dtype, device=backends.device_of(x))
