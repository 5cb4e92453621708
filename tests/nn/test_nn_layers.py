"""Linear, MLP, activations, Dropout, Flatten, Softmax: shapes, init, values, gradients."""

import math

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.autograd import gradcheck, gradgradcheck


def test_linear_shapes_like_pytorch():
    layer = nn.Linear(3, 5)
    assert layer.weight.shape == (5, 3) and layer.bias.shape == (5,)
    assert layer.weight.dtype == np.float32 and isinstance(layer.weight, nn.Parameter)
    assert layer(tg.randn(7, 3)).shape == (7, 5)
    assert layer(tg.randn(3)).shape == (5,)
    assert layer(tg.randn(2, 4, 3)).shape == (2, 4, 5)
    assert nn.Linear(3, 5, bias=False).bias is None
    assert nn.Linear(3, 5, dtype="float64").weight.dtype == np.float64
    assert layer(np.ones((2, 3))).shape == (2, 5)
    with pytest.raises(ValueError, match="in_features"):
        layer(tg.randn(2, 4))
    with pytest.raises(ValueError, match="non-negative integer"):
        nn.Linear(2.5, 3)


def test_linear_init_is_pytorchs_uniform():
    fan_in, fan_out = 400, 500
    w = nn.Linear(fan_in, fan_out).weight.numpy().astype(np.float64)
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.02 * bound
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.02
    b = nn.Linear(fan_in, fan_out).bias.numpy()
    assert np.abs(b).max() <= bound and b.std() > 0.4 * bound


def test_linear_init_is_seeded():
    tg.manual_seed(42)
    a = nn.MLP([3, 8, 2])
    tg.manual_seed(42)
    b = nn.MLP([3, 8, 2])
    c = nn.MLP([3, 8, 2])
    for (_, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(),
                                      c.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
        assert not np.array_equal(p.numpy(), r.numpy())


def test_linear_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    ours = nn.Linear(4, 3, dtype="float64")
    theirs = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    x = np.random.default_rng(0).standard_normal((2, 5, 4))
    xo = tg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    (ours(xo) ** 2).sum().backward()
    (theirs(xt) ** 2).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-12)


def test_linear_op_is_twice_differentiable():
    r = np.random.default_rng(0)
    x = tg.tensor(r.standard_normal((2, 3, 4)), requires_grad=True)
    w = tg.tensor(r.standard_normal((2, 4)), requires_grad=True)
    b = tg.tensor(r.standard_normal(2), requires_grad=True)
    f = nn.functional.linear
    assert gradcheck(lambda x, w, b: f(x, w, b).tanh(), (x, w, b))
    assert gradgradcheck(lambda x, w, b: f(x, w, b).tanh(), (x, w, b))
    v = tg.tensor(r.standard_normal(4), requires_grad=True)
    assert gradgradcheck(lambda v, w: f(v, w).tanh(), (v, w))


def test_mlp_structure_and_names():
    m = nn.MLP([2, 16, 16, 3])
    assert [n for n, _ in m.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
        "layers.4.weight", "layers.4.bias"]
    assert [type(l).__name__ for l in m.layers] == ["Linear", "ReLU", "Linear", "ReLU",
                                                    "Linear"]
    assert m(tg.randn(5, 2)).shape == (5, 3)
    m = nn.MLP([2, 4, 1], activation="tanh", output_activation="sigmoid", bias=False)
    assert [type(l).__name__ for l in m.layers] == ["Linear", "Tanh", "Linear", "Sigmoid"]
    assert len(list(m.parameters())) == 2
    out = m(tg.randn(6, 2)).numpy()
    assert ((out > 0) & (out < 1)).all()
    m = nn.MLP([2, 4, 4, 1], activation=nn.LeakyReLU(0.2), dropout=0.5)
    assert [type(l).__name__ for l in m.layers] == ["Linear", "LeakyReLU", "Dropout", "Linear",
                                                    "LeakyReLU", "Dropout", "Linear"]
    assert m.layers[1] is not m.layers[4] and m.layers[4].negative_slope == 0.2
    assert [type(l).__name__ for l in nn.MLP([2, 3, 1], activation=None).layers] == \
        ["Linear", "Linear"]
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        nn.MLP([2, 3, 1], activation="swishy")
    with pytest.raises(ValueError, match="at least"):
        nn.MLP([2])


def test_activations_values():
    x = np.linspace(-3, 3, 13)
    t = tg.tensor(x, dtype="float64")
    np.testing.assert_allclose(nn.ReLU()(t).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.Tanh()(t).numpy(), np.tanh(x))
    np.testing.assert_allclose(nn.Sigmoid()(t).numpy(), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(t).numpy(), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(nn.Identity(3, k=1)(t).numpy(), x)
    z = tg.tensor(np.arange(6.0).reshape(2, 3), dtype="float64")
    e = np.exp(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(nn.Softmax(dim=1)(z).numpy(), e / e.sum(1, keepdims=True))
    np.testing.assert_allclose(nn.LogSoftmax(dim=0)(z).numpy(),
                               np.log(e / e.sum(0, keepdims=True)))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        np.testing.assert_allclose(nn.functional.softmax(z).numpy(),
                                   e / e.sum(1, keepdims=True))
    assert nn.Flatten()(tg.zeros(2, 3, 4)).shape == (2, 12)
    assert nn.Flatten(0, 1)(tg.zeros(2, 3, 4)).shape == (6, 4)
    oh = nn.functional.one_hot(tg.tensor([0, 2, 1]))
    np.testing.assert_array_equal(oh.numpy(), np.eye(3, dtype=np.int64)[[0, 2, 1]])


def test_dropout_train_eval_and_seed():
    d = nn.Dropout(0.25)
    x = tg.ones(200, 100, requires_grad=True)
    y = d(x)
    values = y.numpy()
    kept = values != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(values[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), values)  # the gradient is mask / (1 - p)
    d.eval()
    assert d(x) is x
    d.train()
    tg.manual_seed(7)
    a = d(x).numpy()
    tg.manual_seed(7)
    np.testing.assert_array_equal(a, d(x).numpy())
    assert not np.array_equal(a, d(x).numpy())
    assert not nn.Dropout(1.0)(x).numpy().any()
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    assert not nn.functional.dropout(x, 0.5, training=False) is None


def test_dropout_inside_mlp_follows_eval():
    m = nn.MLP([4, 64, 2], dropout=0.5)
    x = tg.randn(8, 4)
    m.eval()
    np.testing.assert_array_equal(m(x).numpy(), m(x).numpy())
    m.train()
    assert not np.array_equal(m(x).numpy(), m(x).numpy())
