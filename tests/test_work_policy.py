"""Each adapter states where its arrays live and its work policy."""

from __future__ import annotations

import numpy as np
import pytest

import xplayers.backends as backends
from xplayers.backends._policy import DEVICE


# ----------------------------------------------------------------- adapters
@pytest.mark.parametrize("forgotten", [["on_cpu"], ["work_policy"], ["on_cpu", "work_policy"]])
def test_an_adapter_that_forgets_a_required_hook_fails_where_defined(forgotten) -> None:
    full = {"on_cpu": lambda self, x: False, "work_policy": lambda self, x: DEVICE}
    hooks = {name: hook for name, hook in full.items() if name not in forgotten}
    with pytest.raises(TypeError, match=f"adapter Forgetful must define {', '.join(forgotten)}:"):
        type("Forgetful", (backends.Backend,), hooks)
    assert type("Complete", (backends.Backend,), full)().work_policy(None) is DEVICE
    # A subclass of an adapter keeps its parent's answers.
    assert type("Tuned", (type(backends.get_backend("numpy")),), {})().on_cpu(np.zeros(1))


def test_each_adapter_answers_for_where_its_arrays_live(backend) -> None:
    """Host arrays get chunks and kept work arrays, device arrays one chunk and
    the library's pool."""
    x = backend.asarray(np.zeros((2, 3)))
    on_cpu = backends.get_backend(backend.name).on_cpu(x)
    policy = backends.work_policy(x)
    assert policy.keep_workspace == on_cpu
    assert (policy.chunk_elements is not None) == on_cpu
