"""Models: parameters in a dict, ``loss(X, y=None)`` as in CS231n."""

from ._base import Model
from .cnn import ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet

__all__ = ["FullyConnectedNet", "Model", "ThreeLayerConvNet", "TwoLayerNet"]
