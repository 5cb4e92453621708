"""Tensor hooks, retain_grad and module hooks with PyTorch's semantics."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn

torch = pytest.importorskip("torch")

V = [0.5, -1.5, 2.0]


def both(values=V):
    return (tg.tensor(values, dtype="float64", requires_grad=True),
            torch.tensor(values, dtype=torch.float64, requires_grad=True))


def test_hooks_see_replace_and_retain_gradients_as_in_torch():
    results = []
    for x in both():
        seen = []
        y = x * 2
        y.retain_grad()
        y.register_hook(seen.append)  # sees the gradient before the next hook replaces it
        y.register_hook(lambda g: g * 10)  # replaces the gradient
        x.register_hook(lambda g: g + 1)  # a leaf's hook runs before accumulation
        (y * y).sum().backward()
        results.append((x.grad, y.grad, seen[0]))
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())


def test_a_removed_hook_is_not_called():
    x = tg.tensor(V, requires_grad=True)
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    handle.remove()
    x.sum().backward()
    assert calls == [] and x.grad is not None


def test_retain_grad_accumulates_over_backwards_as_in_torch():
    grads = []
    for x in both():
        y = x.exp()
        y.retain_grad()
        (y * y).sum().backward(retain_graph=True)
        (y * 3).sum().backward()
        grads.append(y.grad.detach().numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-15)


def test_hooks_of_intermediates_act_in_tg_grad_too():
    x, tx = both()
    y, ty = x.exp(), tx.exp()
    y.register_hook(lambda g: g * 3)
    ty.register_hook(lambda g: g * 3)
    (g,) = tg.grad((y * y).sum(), x)
    (tgr,) = torch.autograd.grad((ty * ty).sum(), tx)
    np.testing.assert_allclose(g.numpy(), tgr.numpy(), rtol=1e-15)


def test_hook_registration_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tg.tensor(V).register_hook(lambda g: g)
    x = tg.tensor(V, requires_grad=True)
    x.register_hook(lambda g: g[:2])
    with pytest.raises(RuntimeError, match=r"shape \(2,\).*\(3,\)"):
        x.sum().backward()


def _twin_linears():
    ours = nn.Linear(3, 2, dtype="float64")
    theirs = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    return ours, theirs


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # torch's, when no input
@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_module_hooks_match_torch(input_requires_grad):
    records = []
    for module, lib in zip(_twin_linears(), (tg, torch)):
        record = {}

        def backward_hook(m, grad_input, grad_output, record=record):
            record["grad_input"] = grad_input
            record["grad_output"] = grad_output
            if grad_input[0] is not None:
                return (grad_input[0] * 2,)

        module.register_forward_pre_hook(lambda m, args: (args[0] + 1,))
        module.register_forward_hook(lambda m, args, out: out * 3)
        handle = module.register_forward_hook(lambda m, args, out: out * 100)
        handle.remove()
        module.register_full_backward_hook(backward_hook)
        x = lib.tensor(np.arange(12.0).reshape(4, 3) / 7, dtype=lib.float64,
                       requires_grad=input_requires_grad)
        out = module(x)
        (out ** 2).sum().backward()
        record["out"] = out
        record["x_grad"] = x.grad
        record["w_grad"] = module.weight.grad
        records.append(record)
    ours, theirs = records

    def same(a, b):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_allclose(np.asarray(a.detach().numpy()), b.detach().numpy(),
                                       rtol=1e-13)

    for key in ("out", "x_grad", "w_grad"):
        same(ours[key], theirs[key])
    for key in ("grad_input", "grad_output"):
        assert len(ours[key]) == len(theirs[key])
        for a, b in zip(ours[key], theirs[key]):
            same(a, b)
