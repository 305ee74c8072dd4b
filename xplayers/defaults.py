"""Tuned defaults shared by the command line and the examples."""

from __future__ import annotations

from .optim import UPDATE_RULES as UPDATE_RULES  # defined there, with the rules

# Defaults chosen so that a bare `xplayers train` learns the digits in a few
# seconds on a small CPU (the README gives the accuracy). A weight scale
# of 0.1 is close to He initialisation for the 64 digit pixels; CS231n's 1e-2
# makes the first epochs crawl.
DEFAULT_HIDDEN_DIMS: tuple[int, ...] = (100, 100)
DEFAULT_EPOCHS = 15
DEFAULT_BATCH_SIZE = 100
DEFAULT_UPDATE_RULE = "adam"
DEFAULT_WEIGHT_SCALE = 0.1
DEFAULT_CNN_WEIGHT_SCALE = 1e-3
DEFAULT_CNN_HIDDEN = 100
#: A learning rate per update rule, tuned for the default net on the digits
#: (each learns it within the default epochs): one shared rate would leave
#: plain SGD barely moving or make Adam overshoot. Its keys are
#: ``UPDATE_RULES`` (the tests hold them to it).
DEFAULT_LEARNING_RATES: dict[str, float] = {
    "sgd": 0.3,
    "sgd_momentum": 0.1,
    "rmsprop": 3e-3,
    "adam": 5e-3,
}

NORMALIZATIONS = ("none", "batchnorm", "layernorm")
DTYPES = ("float32", "float64")
