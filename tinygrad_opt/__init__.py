"""tinygrad_opt: a small, readable reverse-mode autograd engine with a complete
optimizer stack, on NumPy (CPU) and CuPy (GPU).

    import tinygrad_opt as tg
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # tensor([2., 4.])
"""

import importlib

from . import autograd, cuda
from .autograd import grad
from .backend import get_default_dtype, set_default_dtype
from .creation import (arange, eye, full, full_like, linspace, manual_seed, ones, ones_like,
                       rand, rand_like, randint, randn, randn_like, tensor, zeros, zeros_like)
from .function import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .functions import (abs, arctan, atan, cat, clamp, concatenate, cos, exp, leaky_relu, log,
                        log_softmax, logsumexp, matmul, maximum, mean, minimum, relu, sigmoid,
                        sin, softmax, sqrt, stack, sum, tanh, where)
from .tensor import Tensor

float32 = "float32"
float64 = "float64"
int64 = "int64"

# Submodules that load on first use, so `import tinygrad_opt` stays light.
_LAZY = ("nn", "optim", "graph", "data", "train", "study", "serialization", "cli")
_LAZY_NAMES = {"save": "serialization", "load": "serialization", "draw_graph": "graph"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'tinygrad_opt' has no attribute {name!r}")


__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "eye", "arange", "linspace", "rand", "randn",
    "randint", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "manual_seed",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "grad", "autograd", "cuda",
    "get_default_dtype", "set_default_dtype", "exp", "log", "sqrt", "sin", "cos", "tanh",
    "arctan", "atan", "sigmoid", "relu", "leaky_relu", "abs", "clamp", "maximum", "minimum",
    "matmul", "softmax", "log_softmax", "logsumexp", "where", "cat", "concatenate", "stack",
    "sum", "mean", "save", "load", "draw_graph", "nn", "optim",
]
