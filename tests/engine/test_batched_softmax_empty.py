"""softmax and log_softmax over an empty dim: an empty result (PyTorch's), not
an error, forward, backward and through the batched Jacobian."""

import numpy as np
import pytest

import tinygrad_opt as tg

torch = pytest.importorskip("torch")

# (shape, dim): the dim normalised over is empty, or another dim is
EMPTY = [((3, 0), 1), ((3, 0), -1), ((0,), 0), ((0, 4), 0), ((0, 4), 1), ((2, 0, 3), 1)]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", EMPTY)
def test_normalising_over_an_empty_dim_matches_torch(name, shape, dim):
    x = tg.zeros(shape, dtype="float64", requires_grad=True)
    t = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    out, expected = getattr(x, name)(dim), getattr(torch, name)(t, dim)
    assert out.shape == tuple(expected.shape) and out.dtype == tg.float64
    out.sum().backward()
    expected.sum().backward()
    assert x.grad.shape == tuple(t.grad.shape)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_batched_jacobian_over_an_empty_dim_is_empty(name):
    J = tg.autograd.jacobian(lambda x: getattr(x, name)(1), tg.zeros((3, 0), dtype="float64"))
    assert J.shape == (3, 0, 3, 0)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_non_empty_input_unchanged(name):
    """The empty-dim path leaves the ordinary one as it was (values against torch)."""
    data = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.5]])
    out = getattr(tg.tensor(data), name)(-1).numpy()
    expected = getattr(torch, name)(torch.tensor(data), -1).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("shape, dim, keepdim", [
    ((3, 0), 1, False), ((0,), 0, True), ((0, 4), 0, False), ((2, 0, 3), (1, 2), False),
    ((0, 4), 1, False), ((3, 0), None, False)])
def test_logsumexp_over_an_empty_dim_is_minus_infinity(shape, dim, keepdim):
    """The log of an empty sum: -inf, with PyTorch's shape and an empty gradient."""
    x = tg.zeros(shape, dtype="float64", requires_grad=True)
    t = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    dims = tuple(range(len(shape))) if dim is None else dim
    with np.errstate(divide="ignore"):  # NumPy's log(0) warning; the value is right
        out = x.logsumexp(dim, keepdim)
        out.sum().backward()
    expected = torch.logsumexp(t, dims, keepdim)
    expected.sum().backward()
    np.testing.assert_array_equal(out.numpy(), expected.detach().numpy())
    assert x.grad.shape == tuple(t.grad.shape)
