"""Batched Jacobians and Hessians through ``x[index] = v`` (CopySlices).

An op recorded *before* the assignment used the old value of ``x``: its
gradient must go to that old value, not through the CopySlices node the
assignment gave ``x`` (the engine rewires such nodes; the batched walk must
too). Checked against PyTorch and against one backward pass per row.
"""

import numpy as np
import pytest

import tinygrad_opt as tg

torch = pytest.importorskip("torch")

X0 = np.array([0.3, -0.7, 1.1, 0.5, 2.0, -1.2])

INDICES = {
    "int": 0,
    "slice": slice(2, 4),
    "integer array": np.array([4, 1]),
    "boolean mask": X0 > 0.4,
}


def _index(lib, index):
    return lib.tensor(index) if lib is torch and isinstance(index, np.ndarray) else index


def make(lib, index):
    """y is used (by exp, which saves only its output) before part of it is
    overwritten: z must see the old y, the returned value the new one."""
    index = _index(lib, index)

    def f(x):
        y = x * 2
        z = y.exp()
        y[index] = x[1] * x[5] + 1
        return z * y + y.sum()

    return f


def assert_close(actual, expected):
    assert actual.shape == expected.shape
    assert np.allclose(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(INDICES))
def test_jacobian_through_setitem_matches_torch_and_row_loop(name):
    index = INDICES[name]
    J = tg.autograd.jacobian(make(tg, index), tg.tensor(X0)).numpy()
    expected = torch.autograd.functional.jacobian(make(torch, index), torch.tensor(X0)).numpy()
    assert_close(J, expected)
    x = tg.tensor(X0, requires_grad=True)
    out = make(tg, index)(x)
    rows = [tg.grad(out, x, grad_outputs=tg.tensor(e), retain_graph=True)[0].numpy()
            for e in np.eye(out.numel())]
    assert_close(J, np.stack(rows))


@pytest.mark.parametrize("name", sorted(INDICES))
def test_hessian_through_setitem_matches_torch(name):
    index = INDICES[name]
    H = tg.autograd.hessian(lambda x: (make(tg, index)(x) ** 2).sum(), tg.tensor(X0)).numpy()
    expected = torch.autograd.functional.hessian(
        lambda x: (make(torch, index)(x) ** 2).sum(), torch.tensor(X0)).numpy()
    assert_close(H, expected)


def test_jacobian_refuses_a_saved_value_changed_in_place():
    """As the engine and PyTorch: a value a backward needs, overwritten after use."""

    def f(x):
        y = x * 2
        z = y.sin()  # saves y
        y[0] = x[1]
        return z + y

    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tg.autograd.jacobian(f, tg.tensor(X0))
