"""Helpers that several test files share: user-defined ops, the examples as modules, the
Rosenbrock function and the closure L-BFGS wants (import them as ``from _helpers import ...``; pytest puts ``tests/`` on
the path)."""

import importlib.util
import pathlib

from tinygrad_opt.autograd import Function

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


class Square(Function):
    """y = x², dy/dx = 2x (saved input: differentiable again)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x


class Cube(Function):
    """y = x³, dy/dx = 3x²: a user-defined op (the batched walk loops over it, the
    pictures draw it with its name)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


def load_example(name):
    """``examples/<name>.py`` loaded as a module (its ``main()`` not yet run), as a newcomer
    runs it."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rosen(x):
    """The n-dimensional Rosenbrock function Σ 100 (x_{i+1} - x_i²)² + (1 - x_i)²."""
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def backward_closure(opt, loss_fn):
    """The closure of ``opt.step(closure)`` for L-BFGS and the like: zero the gradients,
    evaluate ``loss_fn()``, backward, return the loss."""

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure
