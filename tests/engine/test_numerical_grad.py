"""tg.autograd.numerical_grad: the slide's finite-difference gradient, with its cost
and its error measured against backprop and against the closed forms."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.autograd import gradcheck, numerical_grad

X = np.array([0.5, -1.0, 2.0, 3.0])


def cube_sum(x):
    return (x * x * x).sum()


def test_forward_difference_has_the_first_order_error_of_the_slide():
    x = tg.tensor(X, dtype="float64", requires_grad=True)
    (g,), evaluations = numerical_grad(cube_sum, x, eps=1e-4, scheme="forward")
    assert evaluations == X.size + 1  # f(x) once, then one per dimension
    # (f(x+h) - f(x))/h = 3x² + 3xh + h²: the error is h·f''/2 = 3xh to first order
    np.testing.assert_allclose(g.numpy() - 3 * X ** 2, 3 * X * 1e-4 + 1e-8, rtol=1e-4, atol=1e-9)
    assert g.shape == x.shape and g.dtype == x.dtype


def test_central_difference_cancels_the_first_order_term():
    x = tg.tensor(X, dtype="float64", requires_grad=True)
    (g,), evaluations = numerical_grad(cube_sum, x, eps=1e-4, scheme="central")
    assert evaluations == 2 * X.size
    # (f(x+h) - f(x-h))/2h = 3x² + h² exactly for a cubic
    np.testing.assert_allclose(g.numpy() - 3 * X ** 2, 1e-8, rtol=1e-3, atol=1e-10)


def test_matches_backprop_on_a_linear_classifier_loss():
    rng = np.random.default_rng(0)
    data = tg.tensor(rng.standard_normal((8, 5)), dtype="float64")
    labels = tg.tensor(rng.integers(0, 3, 8))
    W = tg.tensor(rng.standard_normal((5, 3)) * 0.1, dtype="float64", requires_grad=True)
    b = tg.tensor(np.zeros(3), dtype="float64", requires_grad=False)

    def loss(W, b):
        return tg.nn.functional.cross_entropy(data @ W + b, labels)

    (gw, gb), evaluations = numerical_grad(loss, (W, b), scheme="central")
    assert gb is None and evaluations == 2 * 15
    loss(W, b).backward()
    np.testing.assert_allclose(gw.numpy(), W.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_refuses_what_it_cannot_differentiate():
    x = tg.tensor(X, dtype="float64")
    with pytest.raises(ValueError, match="none of the inputs requires grad"):
        numerical_grad(cube_sum, x)
    y = tg.tensor(X, dtype="float64", requires_grad=True)
    with pytest.raises(ValueError, match="must return a scalar"):
        numerical_grad(lambda t: t * 2, y)
    with pytest.raises(ValueError, match="scheme must be"):
        numerical_grad(cube_sum, y, scheme="backward")


def test_gradcheck_without_an_input_that_requires_grad_is_a_value_error_as_in_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.autograd.gradcheck(lambda t: t * 2, (torch.ones(3, dtype=torch.float64),))
    with pytest.raises(ValueError, match="none of the 1 inputs requires grad"):
        gradcheck(lambda t: t * 2, (tg.ones(3, dtype="float64"),))
