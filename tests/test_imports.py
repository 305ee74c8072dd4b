"""Each part of the package loads only what it needs, in a fresh interpreter
(test_import_graph checks that no module imports itself in a circle)."""

from __future__ import annotations

import json

from subprocess_helpers import run_python


def _loaded_after(code: str) -> list[str]:
    """The xplayers modules loaded (but backends' and the layers' own) after ``code`` runs
    in a fresh interpreter."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('xplayers'))))\n"
    )
    proc = run_python("-c", probe)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    return [m for m in loaded if not m.startswith(("xplayers.backends.", "xplayers.layers."))]


def test_the_layers_load_only_the_layers_checks_and_backends() -> None:
    loaded = _loaded_after("import xplayers.layers")
    assert loaded == ["xplayers", "xplayers._checks", "xplayers.backends", "xplayers.layers"]


def test_the_models_load_no_checkpoint_or_training_code() -> None:
    loaded = _loaded_after("import xplayers.models")
    outside = [m for m in loaded if not m.startswith("xplayers.models")]
    assert outside == [
        "xplayers", "xplayers._checks", "xplayers._model_registry", "xplayers.backends",
        "xplayers.layers",
    ]  # fmt: skip


READING = ["xplayers._checkpoint_fit", "xplayers._checkpoint_reader", "xplayers._resume",
           "xplayers.checkpoint"]  # fmt: skip


def test_training_with_checkpoints_loads_no_reading_code(tmp_path) -> None:
    """The Solver writes checkpoints; the code that reads them loads on a resume only."""
    train = (
        "import numpy as np\n"
        "from xplayers.solver import Solver\n"
        "from xplayers.models import TwoLayerNet\n"
        "model = TwoLayerNet(input_dim=4, hidden_dim=3, num_classes=2, seed=0, backend='numpy')\n"
        "X, y = np.ones((8, 4)), np.arange(8) % 2\n"
        "data = dict(X_train=X, y_train=y, X_val=X, y_val=y)\n"
        f"run = {str(tmp_path / 'run')!r}\n"
        "Solver(model, data, batch_size=4, num_epochs=1, checkpoint_name=run, verbose=False)"
        ".train()\n"
    )
    loaded = _loaded_after(train)
    assert "xplayers._checkpoint_writer" in loaded and "xplayers.solver" in loaded
    assert [m for m in READING if m in loaded] == []
    assert (tmp_path / "run_epoch_1.safetensors").is_file()
    resumed = train.replace(".train()", ".load_checkpoint(run + '_epoch_1.safetensors')")
    assert set(READING) <= set(_loaded_after(resumed))


def test_load_model_in_a_fresh_interpreter_knows_the_built_in_models(tmp_path) -> None:
    """The registry of model classes sits below the checkpoint code; reading a checkpoint
    defines (so registers) the built-in classes without the caller importing them."""
    from xplayers import checkpoint
    from xplayers.models import ThreeLayerConvNet

    model = ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4,
                              num_classes=3, seed=0, backend="numpy")  # fmt: skip
    path = checkpoint.save(tmp_path / "cnn.safetensors", model)
    proc = run_python("-c", f"import xplayers; print(type(xplayers.load_model({str(path)!r})))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "<class 'xplayers.models.cnn.ThreeLayerConvNet'>"
