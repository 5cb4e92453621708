"""Automatic differentiation: the backward engine, ``grad``, the functional
derivatives (jacobian, hessian, hvp, ...), the numerical gradient by finite
differences, gradient checks, and ``Function``
for user-defined ops."""

from ..op import Function, FunctionCtx
from .functional import hessian, hvp, jacobian, jvp, vhp, vjp
from .grad import grad
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .numerical import numerical_grad, numerical_jacobian

__all__ = [
           "Function",
           "FunctionCtx",
           "GradcheckError",
           "grad",
           "gradcheck",
           "gradgradcheck",
           "hessian",
           "hvp",
           "jacobian",
           "jvp",
           "numerical_grad",
           "numerical_jacobian",
           "vhp",
           "vjp",
]
