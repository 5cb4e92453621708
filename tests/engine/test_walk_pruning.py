"""The backward walk runs only the backward functions on a path to the tensors
whose gradient is asked for (``tg.grad``, ``backward(inputs=...)``), as PyTorch
does: a branch that leads elsewhere costs nothing, at first and second order."""

import numpy as np
import pytest

import tinygrad_opt as tg

torch = pytest.importorskip("torch")

X = [0.5, -1.5, 2.0]
W = [0.3, 0.7, -0.2]


def leaves(lib):
    if lib is tg:
        return (tg.tensor(X, dtype="float64", requires_grad=True),
                tg.tensor(W, dtype="float64", requires_grad=True))
    return (torch.tensor(X, dtype=torch.float64, requires_grad=True),
            torch.tensor(W, dtype=torch.float64, requires_grad=True))


def chain(w, length):
    """A branch of ``length`` ops that depends on w only."""
    h = w
    for _ in range(length):
        h = (h * 1.01).tanh()
    return h


def first_order(lib, length):
    x, w = leaves(lib)
    return x, w, (x * 2 + chain(w, length)).sum()


@pytest.mark.parametrize("length", [1, 50])
def test_grad_runs_only_the_three_backward_functions_it_needs(backward_calls, length):
    x, _, out = first_order(tg, length)
    (gx,) = tg.grad(out, [x])
    assert backward_calls == ["Sum", "Add", "Mul"]  # torch runs the same three
    tx, _, tout = first_order(torch, length)
    np.testing.assert_allclose(gx.numpy(), torch.autograd.grad(tout, [tx])[0].numpy())


def test_backward_inputs_prunes_and_leaves_the_other_grad_alone(backward_calls):
    x, w, out = first_order(tg, 50)
    out.backward(inputs=[x])
    assert len(backward_calls) == 3 and w.grad is None
    tx, tw, tout = first_order(torch, 50)
    tout.backward(inputs=[tx])
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    assert tw.grad is None


def test_backward_without_inputs_still_reaches_every_leaf(backward_calls):
    x, w, out = first_order(tg, 50)
    out.backward()
    assert len(backward_calls) == 3 + 2 * 50  # Sum, Add, Mul, and Tanh, Mul per link of the chain
    tx, tw, tout = first_order(torch, 50)
    tout.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


def second_order(lib, length):
    """d/dx of sum(∂f/∂x) for f = sum(x·x·h(w)): the gradient's graph reads
    h, whose forward graph leads to w through the chain."""
    x, w = leaves(lib)
    h = chain(w, length)
    autograd = tg if lib is tg else torch.autograd
    (gx,) = autograd.grad((x * x * h).sum(), [x], create_graph=True)
    return x, gx.sum()


def test_second_order_grad_does_not_walk_the_branch_to_w(backward_calls):
    counts = []
    for length in (1, 50):
        x, g = second_order(tg, length)
        backward_calls.clear()
        (hx,) = tg.grad(g, [x])
        counts.append(len(backward_calls))
        tx, tg_ = second_order(torch, length)
        expected = torch.autograd.grad(tg_, [tx])[0].numpy()
        np.testing.assert_allclose(hx.numpy(), expected)
    assert counts[0] == counts[1] < 20  # the chain's 100 forward ops never run backward
