"""Shared fixtures: tests take a ``backend`` and run once per array library.

``pytest --backend numpy,torch`` restricts the run; a case may name a device,
``array_api_strict:device1`` (the default run includes it: its arrays refuse
to mix with the default device's, so an allocation on the wrong device fails
here as it would on a second GPU). Unavailable backends skip with their
reason, and the summary lists which cases ran and which did not.
"""

from __future__ import annotations

import dataclasses
import os
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

# JAX reads these when it is first imported: a second CPU device proves
# placement (as array_api_strict's device1 does), and x64 gives the float64
# gradient checks their float64. The library itself never sets either.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
os.environ.setdefault("JAX_ENABLE_X64", "1")

import xplayers.backends as backends

# CI draws the same examples on every run: a red build then says the change
# broke something, never that a new random example turned up.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: The device case every run includes beside the plain backends.
DEVICE_CASES = ("array_api_strict:device1", "jax:cpu:1")

_ran: set[str] = set()
_skipped: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="store",
        default=None,
        help=(
            "comma-separated backends to test, each optionally with a device "
            f"(default: all of {[*backends.BACKEND_NAMES, *DEVICE_CASES]})"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    selected_backends(config)  # a bad --backend stops the run before collection


def selected_backends(config: pytest.Config) -> list[str]:
    opt = config.getoption("--backend")
    if not opt:
        return [*backends.BACKEND_NAMES, *DEVICE_CASES]
    cases = [n.strip() for n in opt.split(",") if n.strip()]
    unknown = [c for c in cases if backends.parse_case(c)[0] not in backends.BACKEND_NAMES]
    if unknown:
        raise pytest.UsageError(
            f"--backend: unknown backend(s) {unknown}; known: {list(backends.BACKEND_NAMES)} "
            f"(a case may name a device: 'array_api_strict:device1', 'cupy:cuda:1')"
        )
    for case in cases:
        name, device = backends.parse_case(case)
        if device is not None and backends.unavailable_reason(name) is None:
            try:
                backends.resolve_device(name, device)
            except backends.BackendError as exc:
                raise pytest.UsageError(f"--backend {case}: {exc}") from None
    return cases


@dataclasses.dataclass(frozen=True)
class BackendCase:
    """One backend (and device) under test, with helpers to move numpy data in and out.

    ``device`` is None for the backend's default device; ``place`` holds the
    keywords that put a model or array there (``backend=``, ``device=``).
    """

    name: str
    xp: ModuleType
    device: Any = None

    @property
    def place(self) -> dict[str, Any]:
        return {"backend": self.name, "device": self.device}

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return backends.asarray(np.asarray(a), self.name, dtype, self.device)

    def numpy(self, x: Any) -> np.ndarray:
        return backends.to_numpy(x)

    def __repr__(self) -> str:
        return self.name if self.device is None else f"{self.name}:{self.device}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config), indirect=True)
    if "other_backend" in metafunc.fixturenames:
        others = [n for n in selected_backends(metafunc.config) if n != "numpy"]
        metafunc.parametrize("other_backend", others, indirect=True)


def _case(spec: str) -> BackendCase:
    name, device = backends.parse_case(spec)
    reason = backends.unavailable_reason(name)
    if reason is not None:
        _skipped[spec] = reason
        pytest.skip(f"backend {spec} unavailable: {reason}")
    _ran.add(spec)
    return BackendCase(name, backends.get_backend(name).namespace(), device)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> BackendCase:
    """Each available backend in turn (skipped, with the reason, where unavailable)."""
    return _case(request.param)


@pytest.fixture
def other_backend(request: pytest.FixtureRequest) -> BackendCase:
    """Each available backend but numpy, for parity against the numpy reference."""
    return _case(request.param)


class ChunkSpy:
    """The batch spans each ``backends.map_chunks`` call was given, in call order."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def assert_chunks(self, like: Any, most: int, n: int, calls: int = 2) -> None:
        """``calls`` calls, each covering [0, n) in order: in chunks of at most ``most``
        images where the policy of ``like`` chunks (host memory), as one chunk where
        it does not (a GPU); none where ``like`` cannot be written (JAX), whose
        functional routes take the whole batch at once."""
        if not backends.writes_in_place(like):
            assert self.calls == []
            return
        assert len(self.calls) == calls
        chunked = backends.work_policy(like).chunk_elements is not None
        for items in self.calls:
            if chunked:
                assert max(n1 - n0 for n0, n1 in items) <= most
                assert len(items) >= -(-n // most)
            else:
                assert items == [(0, n)]
            assert [n0 for n0, _ in items] == [0, *(n1 for _, n1 in items[:-1])]
            assert items[-1][1] == n


@pytest.fixture
def chunk_spans(monkeypatch: pytest.MonkeyPatch) -> ChunkSpy:
    """Records the chunks layers hand to ``backends.map_chunks`` (which still runs them)."""
    spy = ChunkSpy()
    real = backends.map_chunks

    def record(fn: Any, items: Any, like: Any, **options: Any) -> list:
        items = list(items)
        spy.calls.append(items)
        return real(fn, items, like, **options)

    monkeypatch.setattr(backends, "map_chunks", record)
    return spy


@pytest.fixture
def host_policy(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``host_policy(**fields)``: layers then see host work policies with these fields
    replaced (``backends.work_policy``); device policies stay as they are."""

    def override(**fields: Any) -> None:
        real = backends.work_policy

        def patched(x: Any) -> backends.WorkPolicy:
            policy = real(x)
            if policy.chunk_elements is None:
                return policy
            return dataclasses.replace(policy, **fields)

        monkeypatch.setattr(backends, "work_policy", patched)

    return override


@pytest.fixture(params=["flat", "channels_last", "rows", "pointwise"])
def conv_lowering(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test once per column layout of the fast convolution, forced."""
    from xplayers.layers import conv

    monkeypatch.setattr(conv, "LOWERING", request.param)
    return request.param


@pytest.fixture
def numpy_case() -> BackendCase:
    return _case("numpy")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (_ran or _skipped):
        return
    terminalreporter.section("backends")
    terminalreporter.write_line(f"ran on: {', '.join(sorted(_ran)) or 'none'}")
    for name, reason in sorted(_skipped.items()):
        terminalreporter.write_line(f"skipped {name}: {reason}")
