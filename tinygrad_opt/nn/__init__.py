"""Neural-network building blocks, with PyTorch's names (``from tinygrad_opt import nn``).

``Module`` and ``Parameter``; layers ``Linear Identity Sequential ModuleList ModuleDict
MLP Dropout Flatten``; activations ``ReLU Tanh Sigmoid LeakyReLU Softmax LogSoftmax``;
losses ``MSELoss L1Loss CrossEntropyLoss NLLLoss BCELoss BCEWithLogitsLoss
MultiMarginLoss SVMLoss``; and the submodules ``functional`` (also ``nn.F``), ``init`` and
``utils`` (gradient clipping).
"""

from . import functional, init, utils
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .dropout import Dropout, Flatten
from .linear import Identity, Linear
from .loss import (
                   BCELoss,
                   BCEWithLogitsLoss,
                   CrossEntropyLoss,
                   L1Loss,
                   MSELoss,
                   MultiMarginLoss,
                   NLLLoss,
                   SVMLoss,
)
from .mlp import MLP
from .module import Module, Parameter
from .prox import ProxLinear, ProxPropMLP, set_proxprop  # noqa: F401  (ProxProp)
from .utils import clip_grad_norm_, clip_grad_value_

F = functional

__all__ = [
    "Module", "Parameter", "Linear", "Identity", "Sequential", "ModuleList", "ModuleDict",
    "MLP", "Dropout", "Flatten", "ReLU", "Tanh", "Sigmoid", "LeakyReLU", "Softmax",
    "LogSoftmax", "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
    "BCEWithLogitsLoss", "MultiMarginLoss", "SVMLoss", "functional", "F", "init", "utils",
    "clip_grad_norm_", "clip_grad_value_",
]
