"""Layers: forward functions return (out, cache), backward functions take
(dout, cache) and return the gradients, as in the CS231n assignment code.

Every function takes its Array API namespace from its inputs.
"""

from .affine import affine_backward, affine_forward
from .batchnorm import batchnorm_backward, batchnorm_backward_alt, batchnorm_forward
from .dropout import dropout_backward, dropout_forward
from .layernorm import layernorm_backward, layernorm_forward
from .losses import softmax_loss, svm_loss
from .relu import relu_backward, relu_forward
from .sandwich import affine_relu_backward, affine_relu_forward

__all__ = [
    "affine_backward",
    "affine_forward",
    "affine_relu_backward",
    "affine_relu_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "batchnorm_forward",
    "dropout_backward",
    "dropout_forward",
    "layernorm_backward",
    "layernorm_forward",
    "relu_backward",
    "relu_forward",
    "softmax_loss",
    "svm_loss",
]
