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
from .creation import (
    arange,
    eye,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from .functions import (
    abs,
    add,
    amax,
    amin,
    arctan,
    argmax,
    argmin,
    atan,
    cat,
    clamp,
    concatenate,
    cos,
    div,
    exp,
    flatten,
    leaky_relu,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    permute,
    pow,
    promote_types,
    relu,
    reshape,
    result_type,
    sigmoid,
    sin,
    softmax,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sub,
    sum,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .jit import jit
from .tensor import Tensor

float32 = "float32"
float64 = "float64"
int64 = "int64"

# Submodules that load on first use, so `import tinygrad_opt` stays light.
_LAZY = ("nn", "optim", "draw", "graph", "data", "train", "study", "serialization", "cli", "linalg")
_LAZY_NAMES = {"save": "serialization", "load": "serialization", "draw_graph": "draw"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'tinygrad_opt' has no attribute {name!r}")


__all__ = [
    "Tensor",
    "abs",
    "add",
    "amax",
    "amin",
    "arange",
    "arctan",
    "argmax",
    "argmin",
    "atan",
    "autograd",
    "cat",
    "clamp",
    "concatenate",
    "cos",
    "cuda",
    "div",
    "draw_graph",
    "enable_grad",
    "exp",
    "eye",
    "flatten",
    "float32",
    "float64",
    "full",
    "full_like",
    "get_default_dtype",
    "grad",
    "inference_mode",
    "int64",
    "is_grad_enabled",
    "jit",
    "leaky_relu",
    "linspace",
    "load",
    "log",
    "log_softmax",
    "logsumexp",
    "manual_seed",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "neg",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "permute",
    "pow",
    "promote_types",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "relu",
    "reshape",
    "result_type",
    "save",
    "set_default_dtype",
    "set_grad_enabled",
    "sigmoid",
    "sin",
    "softmax",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "tanh",
    "tensor",
    "transpose",
    "unsqueeze",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
