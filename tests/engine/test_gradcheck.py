"""gradcheck and gradgradcheck themselves: they pass on correct derivatives,
FAIL on a deliberately wrong backward (naming the worst element), return False
with raise_exception=False, and switch to random projections for large inputs."""

import numpy as np
import pytest
from _helpers import Cube, Square

import tinygrad_opt as tg
from tinygrad_opt.autograd import GradcheckError, gradcheck, gradgradcheck


class WrongSquare(Square):
    """y = x², with the wrong derivative 2x + 0.1 at the last element."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        bump = np.zeros(x.shape)
        bump.reshape(-1)[-1] = 0.1
        return g * (x * 2 + tg.tensor(bump, dtype="float64"))


class WrongSecondDerivative(Cube):
    """y = x³ with dy/dx = 3x² (right) written so that its own derivative is 3x (wrong)."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        three_x = x * 3
        return g * three_x.detach() * x  # value 3x², but the graph sees only one x


def f64(value):
    return tg.tensor(value, dtype="float64", requires_grad=True)


def test_passes_on_correct_derivatives():
    x, y = f64([[0.5, -1.0], [2.0, 0.3]]), f64([1.5, -0.7])
    assert gradcheck(lambda a, b: (a @ b).tanh() * b, (x, y))
    assert gradgradcheck(lambda a, b: (a @ b).tanh() * b, (x, y))


def test_fails_on_wrong_backward_and_names_the_worst_element():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSquare.apply, (x,))
    message = str(info.value)
    assert "input 0" in message and "(1, 1)" in message  # the last element, as an index
    assert "analytic 8.1" in message and "numeric 8" in message


def test_raise_exception_false_returns_false():
    x = f64([1.0, 2.0, 3.0])
    assert gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False
    assert gradcheck(lambda t: t * t, (x,), raise_exception=False) is True


def test_gradgradcheck_fails_on_wrong_second_derivative():
    x = f64([0.5, 1.5])
    assert gradcheck(WrongSecondDerivative.apply, (x,))  # first derivative is right
    with pytest.raises(GradcheckError, match="gradgradcheck"):
        gradgradcheck(WrongSecondDerivative.apply, (x,))
    assert gradgradcheck(WrongSecondDerivative.apply, (x,), raise_exception=False) is False


def test_projection_mode_for_large_inputs_passes_and_fails():
    rng = np.random.default_rng(0)
    x = f64(rng.standard_normal((40, 30)))   # 1200 inputs x 1200 outputs: too big for J
    w = f64(rng.standard_normal((30, 30)))
    calls = []

    def f(a, b):
        calls.append(1)
        return (a @ b).sin()

    assert gradcheck(f, (x, w))
    assert len(calls) < 100  # a handful of probes, not a column per input element
    with pytest.raises(GradcheckError, match="random projection"):
        gradcheck(WrongSquare.apply, (x,))


def test_float32_inputs_are_refused():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(tg.exp, (tg.randn(3, requires_grad=True),))


def test_inputs_that_need_no_grad_are_constants():
    x, c = f64([1.0, 2.0]), tg.tensor([3.0, 4.0], dtype="float64")
    assert gradcheck(lambda a, b: a * b, (x, c))
    assert gradgradcheck(lambda a, b: (a * b) ** 2, (x, c))


def test_a_wrong_builtin_derivative_is_caught(monkeypatch):
    from tinygrad_opt.ops import elementwise

    monkeypatch.setattr(elementwise.Sin, "backward",
                        staticmethod(lambda ctx, g, out: (g * ctx.inputs[0].sin(),)))
    assert not gradcheck(tg.sin, (f64([0.3, 1.2]),), raise_exception=False)
