"""backends.map_chunks: chunks of host work on a thread pool, BLAS held at one thread."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers.backends import _threads
from xplayers.layers import conv_backward_fast, conv_forward_fast

ROOT = Path(__file__).resolve().parents[1]
needs_blas_control = pytest.mark.skipif(
    not _threads._blas(), reason="threadpoolctl cannot drive this numpy's BLAS"
)


def blas_threads() -> int:
    return max(i["num_threads"] for i in _threads._blas().info())


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two chunk workers whatever the core count, so the parallel path runs."""
    monkeypatch.setenv(backends.THREADS_ENV, "2")


@needs_blas_control
def test_chunks_run_concurrently_in_order_with_one_blas_thread(two_workers) -> None:
    before = blas_threads()
    barrier = threading.Barrier(2, timeout=10)

    def work(i: int) -> tuple[int, str, int]:
        if i < 2:
            barrier.wait()  # both first items run at the same time, or this times out
        return i * i, threading.current_thread().name, blas_threads()

    out = backends.map_chunks(work, range(6), np.zeros(1))
    assert [r[0] for r in out] == [i * i for i in range(6)]
    names = {name for _, name, _ in out}
    caller = threading.current_thread().name
    assert len(names) == 2 and caller in names  # the caller works alongside one pool thread
    assert any(name.startswith("xplayers-chunk") for name in names)
    assert {n for _, _, n in out} == {1}
    assert blas_threads() == before


@needs_blas_control
def test_work_without_blas_runs_concurrently_and_leaves_the_blas_alone(two_workers) -> None:
    before = blas_threads()
    barrier = threading.Barrier(2, timeout=10)

    def work(i: int) -> int:
        if i < 2:
            barrier.wait()
        return blas_threads()

    assert backends.map_chunks(work, range(4), np.zeros(1), uses_blas=False) == [before] * 4


def test_optimizer_blocks_run_on_the_calling_thread(two_workers, monkeypatch) -> None:
    """A large parameter's cache-sized blocks run one after another in the caller:
    a dozen short element-wise passes per block gain nothing from a second
    thread (docs/performance.md has the measurement), so they never go through map_chunks."""
    from xplayers import optim

    def refuse(*args, **kwargs):
        raise AssertionError("optimizer blocks went through map_chunks")

    monkeypatch.setattr(backends, "map_chunks", refuse)
    w = np.ones((1 << 16, 8), dtype=np.float32)  # many cache-sized blocks
    assert backends.work_policy(w).block_rows(w.shape) < w.shape[0]
    next_w, _ = optim.adam(w, w, {"learning_rate": 0.5})
    np.testing.assert_allclose(next_w, 0.5, rtol=1e-6)


@needs_blas_control
@pytest.mark.parametrize("rows", [7, 64, 129])
def test_large_products_run_as_row_blocks_on_every_worker(two_workers, monkeypatch, rows) -> None:
    """backends.matmul of a product over the split size: row blocks on two threads
    with one BLAS thread each, equal to one numpy matmul (transposed views too)."""
    from xplayers.backends import numpy_backend

    monkeypatch.setattr(numpy_backend, "_SPLIT_MIN_MNK", 1)
    seen: set[tuple[str, int]] = set()
    real = _threads.map_chunks
    barrier = threading.Barrier(2, timeout=10)

    def spy(fn, items, hold_blas=True):
        def traced(item):
            barrier.wait()  # both blocks run at once, or this times out
            seen.add((threading.current_thread().name, blas_threads()))
            return fn(item)

        return real(traced, items, hold_blas=hold_blas)

    monkeypatch.setattr(_threads, "map_chunks", spy)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, rows)), rng.standard_normal((40, 9))
    got = backends.matmul(a.T, b)  # (rows, 40) @ (40, 9), a transposed view
    np.testing.assert_allclose(got, a.T @ b, rtol=1e-12, atol=1e-12)
    assert got.shape == (rows, 9) and got.dtype == np.float64
    assert len({name for name, _ in seen}) == 2 and {n for _, n in seen} == {1}


def test_small_products_and_other_backends_are_one_matmul(backend, monkeypatch) -> None:
    """Under the split size (and off numpy) backends.matmul is the library's a @ b."""
    monkeypatch.setattr(backends, "map_chunks", None)  # never reached
    monkeypatch.setattr(_threads, "map_chunks", None)
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    got = backends.matmul(backend.asarray(a), backend.asarray(b))
    np.testing.assert_allclose(backend.numpy(got), a @ b, rtol=1e-12, atol=1e-12)
    with pytest.raises(backends.BackendError, match="matmul needs an array"):
        backends.matmul([[1.0]], b)


def test_one_worker_runs_in_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backends.THREADS_ENV, "1")
    assert backends.work_policy(np.zeros(1)).workers == 1
    names = backends.map_chunks(lambda _: threading.current_thread().name, range(3), np.zeros(1))
    assert names == [threading.current_thread().name] * 3


@pytest.mark.parametrize("bad", ["0", "two", "-3"])
def test_bad_thread_count_names_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(backends.THREADS_ENV, bad)
    with pytest.raises(ValueError, match=rf"XPLAYERS_NUM_THREADS must be a positive int.*{bad}"):
        backends.map_chunks(lambda i: i, range(3), np.zeros(1))


def test_other_backends_run_chunks_in_order(backend) -> None:
    like = backend.asarray(np.zeros(2))
    assert backends.map_chunks(lambda i: 2 * i, range(5), like) == [0, 2, 4, 6, 8]
    with pytest.raises(backends.BackendError, match="map_chunks needs an array"):
        backends.map_chunks(lambda i: i, range(2), [0.0])


@needs_blas_control
def test_an_error_waits_for_every_chunk_and_restores_blas(two_workers) -> None:
    before = blas_threads()
    done = []

    def work(i: int) -> int:
        if i == 0:
            raise RuntimeError("chunk 0 failed")
        done.append(i)
        return i

    with pytest.raises(RuntimeError, match="chunk 0 failed"):
        backends.map_chunks(work, range(5), np.zeros(1))
    assert sorted(done) == [1, 2, 3, 4]
    assert blas_threads() == before


@needs_blas_control
def test_nested_calls_run_inline_instead_of_deadlocking(two_workers) -> None:
    def outer(i: int) -> list[int]:
        return backends.map_chunks(lambda j: 10 * i + j, range(3), np.zeros(1))

    assert backends.map_chunks(outer, range(4), np.zeros(1)) == [
        [10 * i + j for j in range(3)] for i in range(4)
    ]


@needs_blas_control
def test_overlapping_callers_restore_blas_threads(two_workers) -> None:
    """The BLAS hold is counted: the last caller out restores the thread count."""
    before = blas_threads()
    start = threading.Barrier(3, timeout=10)

    def caller() -> None:
        start.wait()
        a = np.ones((40, 40))
        for _ in range(20):
            backends.map_chunks(lambda i: a @ a, range(4), a)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert blas_threads() == before


CONV_CASES = [
    ((16, 3, 9, 9), (4, 3, 3, 3), 1, 1),  # F > C: col2im backward
    ((16, 6, 8, 8), (4, 6, 3, 3), 1, 1),  # F <= C: transposed backward
    ((16, 3, 9, 8), (5, 3, 3, 3), 2, 1),  # stride 2, truncated width
]


def conv_fb(case, dtype=np.float64):
    xs, ws, stride, pad = case
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    param = {"stride": stride, "pad": pad, "truncate": True}
    out, cache = conv_forward_fast(x, w, b, param)
    dout = np.cos(out)
    return [out, *conv_backward_fast(dout, cache)], len(cache[-1].lowering.chunks)


@needs_blas_control
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_parallel_conv_matches_sequential_and_repeats_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, host_policy, case, conv_lowering: str
) -> None:
    host_policy(min_chunk_elements=0, chunk_images=3)
    monkeypatch.setenv(backends.THREADS_ENV, "1")
    sequential, _ = conv_fb(case)
    monkeypatch.setenv(backends.THREADS_ENV, "2")
    parallel, chunks = conv_fb(case)
    assert chunks >= 4
    for _ in range(5):
        again, _ = conv_fb(case)
        for a, b in zip(again, parallel, strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(parallel, sequential, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_working_pool() -> None:
    """The child's copy of the pool has no threads: it must start a new one."""
    code = (
        "import os, numpy as np, backends\n"
        "os.environ['XPLAYERS_NUM_THREADS'] = '2'\n"
        "assert backends.map_chunks(lambda i: i + 1, range(4), np.zeros(1)) == [1, 2, 3, 4]\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = backends.map_chunks(lambda i: i * 3, range(4), np.zeros(1)) == [0, 3, 6, 9]\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "raise SystemExit(os.waitstatus_to_exitcode(status))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, timeout=60, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize(
    "workers, n, most, sizes",
    [
        (1, 128, 16, [16] * 8),
        # Two workers: a half chunk first, so they run half a chunk apart.
        (2, 128, 16, [8, *[16] * 7, 8]),
        (3, 128, 16, [5, 10, *[15] * 7, 8]),  # 9 chunks of 15 (a multiple of 3), staggered
        (2, 100, 16, [6, *[13] * 7, 3]),  # 8 chunks of 13, staggered; the last takes the rest
        (2, 5, 2, [1, 2, 2]),
        (2, 3, 16, [2, 1]),  # too few chunks to stagger: 2 near-equal ones
        (2, 0, 16, []),
    ],
)
def test_split_batch_sizes(workers, n, most, sizes) -> None:
    policy = dataclasses.replace(backends.work_policy(np.zeros(1)), workers=workers)
    spans = policy.split_batch(n, most)
    assert [n1 - n0 for n0, n1 in spans] == sizes
    assert [n0 for n0, _ in spans] == [0, *(n1 for _, n1 in spans[:-1])][: len(spans)]


def test_device_policy_runs_one_chunk_and_one_pass() -> None:
    """A GPU's policy: the whole batch in one chunk, no cache blocks, no kept arrays."""
    from xplayers.backends._policy import DEVICE

    assert DEVICE.split_batch(37, 4) == [(0, 37)]
    assert DEVICE.split_batch(0, 4) == []
    assert DEVICE.block_rows((3072, 100)) is None
    assert not DEVICE.keep_workspace and DEVICE.workers == 1
