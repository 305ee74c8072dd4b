"""The model classes defined in this process, by name: what a checkpoint may rebuild.

It sits below both the models (each ``Model`` subclass registers itself
here when it is defined) and the checkpoint code (which names a model's
class when writing and looks it up when reading), so neither imports the
other for it. Nothing here imports a class by name: only classes already
defined can be found.
"""

from __future__ import annotations

#: Every Model subclass defined in this process, by ``model_class_name``.
MODEL_CLASSES: dict[str, type] = {}


def model_class_name(cls: type) -> str:
    """``module.QualifiedName``: how a checkpoint names a model's class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type) -> None:
    """Make ``cls`` one of the classes a checkpoint can be rebuilt into."""
    MODEL_CLASSES[model_class_name(cls)] = cls
