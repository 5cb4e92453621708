"""clip_grad_norm_, clip_grad_value_, parameters_to_vector, against PyTorch."""

import math

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def _pair(scale):
    r = np.random.default_rng(0)
    grads = [r.standard_normal((3, 4)) * scale, r.standard_normal(4) * scale,
             r.standard_normal((2, 2)) * scale]
    ours = []
    for g in grads:
        p = nn.Parameter(tg.zeros(*g.shape, dtype="float64"))
        p.grad = tg.tensor(g.copy())
        ours.append(p)
    return grads, ours


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_grad_norm_matches_torch(norm_type, scale):
    torch = pytest.importorskip("torch")
    grads, ours = _pair(scale)
    theirs = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g.copy())
        theirs.append(p)
    total = clip_grad_norm_(ours, 1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    assert isinstance(total, tg.Tensor) and total.ndim == 0
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clip_grad_norm_closed_form_and_edge_cases():
    grads, ours = _pair(10.0)
    total = math.sqrt(sum((g ** 2).sum() for g in grads))
    arrays = [p.grad.data for p in ours]
    assert clip_grad_norm_(iter(ours), 2.0).item() == pytest.approx(total)
    assert all(p.grad.data is not a for p, a in zip(ours, arrays))  # never in place
    clipped = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in ours))
    assert clipped == pytest.approx(2.0, rel=1e-5)
    assert clip_grad_norm_([nn.Parameter(tg.zeros(2))], 1.0).item() == 0.0
    bad = nn.Parameter(tg.zeros(2))
    bad.grad = tg.tensor([math.nan, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    model = nn.Linear(3, 2)
    model(tg.randn(4, 3)).sum().backward()
    clip_grad_norm_(model.parameters(), 0.1)
    assert model.weight.grad.dtype == np.float32


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    grads, ours = _pair(3.0)
    clip_grad_value_(ours, 0.5)
    for a, g in zip(ours, grads):
        t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_value_([t], 0.5)
        np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())


def test_parameters_to_vector_round_trip():
    model = nn.MLP([3, 4, 2])
    vec = parameters_to_vector(model.parameters())
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    assert vec.requires_grad  # differentiable, as in PyTorch
    other = nn.MLP([3, 4, 2])
    params = list(other.parameters())
    vector_to_parameters(vec.detach(), other.parameters())
    assert list(other.parameters()) == params
    for p, q in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with pytest.raises(ValueError, match="hold 26 numbers"):
        vector_to_parameters(tg.zeros(3), other.parameters())
    with pytest.raises(TypeError, match="expected vec to be a Tensor"):
        vector_to_parameters(np.zeros(26), other.parameters())



@pytest.mark.parametrize("name,limit", [("clip_grad_norm_", 100.0), ("clip_grad_norm_", 0.5),
                                        ("clip_grad_value_", 100.0), ("clip_grad_value_", 0.3)])
def test_clipping_0d_gradients_then_momentum_sgd_matches_torch(name, limit):
    """A 0-d gradient stays a 0-d array through clipping (clipped or not), so momentum
    SGD keeps updating its buffer: it silently stopped when clipping handed back a
    NumPy scalar."""
    torch = pytest.importorskip("torch")
    ours = [nn.Parameter(tg.tensor(2.0, dtype="float64")),
            nn.Parameter(tg.tensor([1.0, -3.0], dtype="float64"))]
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    opt = tg.optim.SGD(ours, lr=0.1, momentum=0.9, weight_decay=0.1)
    ref = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, weight_decay=0.1, foreach=False)
    for _ in range(10):
        for params, optimizer in ((ours, opt), (theirs, ref)):
            optimizer.zero_grad()
            sum((p * p).sum() for p in params).backward()
        getattr(tg.nn.utils, name)(ours, limit)
        getattr(torch.nn.utils, name)(theirs, limit)
        assert isinstance(ours[0].grad.data, np.ndarray) and ours[0].grad.shape == ()
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-15)
