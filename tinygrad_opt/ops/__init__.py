"""Every differentiable op, one class each (forward on arrays, backward in Tensor ops)."""

from .elementwise import (Abs, Add, Cast, Arctan, Clamp, Cos, Div, Exp, LeakyRelu, Log, Maximum,
                          Minimum, Mul, Neg, Pow, Relu, Sigmoid, Sin, Sqrt, Sub, Tanh, Where)
from .linalg import MatMul
from .movement import Cat, Copy, ToDevice, Expand, GetItem, IndexAdd, Permute, Reshape, SumTo
from .reduce import (Amax, Amin, LogSoftmax, Mean, ScatterAlong, SelectAlong, Softmax, Sum)

__all__ = [
    "Abs", "Add", "Cast", "Copy", "ToDevice", "Arctan", "Clamp", "Cos", "Div", "Exp", "LeakyRelu", "Log", "Maximum",
    "Minimum", "Mul", "Neg", "Pow", "Relu", "Sigmoid", "Sin", "Sqrt", "Sub", "Tanh", "Where",
    "MatMul", "Cat", "Expand", "GetItem", "IndexAdd", "Permute", "Reshape", "SumTo",
    "Amax", "Amin", "LogSoftmax", "Mean", "ScatterAlong", "SelectAlong", "Softmax", "Sum",
]
