"""Derivatives in closed form (second and third order, micrograd's published
numbers) and tg.autograd's jacobian / hessian / hvp / vhp / jvp / vjp against
closed forms and against torch.autograd.functional when torch imports."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.autograd import hessian, hvp, jacobian, jvp, vhp, vjp


def f64(value, requires_grad=True):
    return tg.tensor(value, dtype="float64", requires_grad=requires_grad)


# -- closed forms ------------------------------------------------------------------------------


def test_second_derivative_of_cube_is_6x():
    x = f64([-1.5, 0.0, 0.5, 2.0])
    (g,) = tg.grad((x ** 3).sum(), x, create_graph=True)
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())
    H = hessian(lambda t: (t ** 3).sum(), x)
    np.testing.assert_allclose(H.numpy(), np.diag(6 * x.numpy()))


def test_hessian_of_quadratic_form_is_a_plus_a_transpose():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    x = f64(rng.standard_normal(4))
    At = f64(A, requires_grad=False)
    H = hessian(lambda t: t @ At @ t, x)
    np.testing.assert_allclose(H.numpy(), A + A.T, rtol=1e-12, atol=1e-12)
    v = f64(rng.standard_normal(4), requires_grad=False)
    _, Hv = hvp(lambda t: t @ At @ t, x, v)
    np.testing.assert_allclose(Hv.numpy(), (A + A.T) @ v.numpy(), rtol=1e-12)


def test_third_derivative_of_tanh():
    x = f64(np.linspace(-2, 2, 9))
    (d1,) = tg.grad(x.tanh().sum(), x, create_graph=True)
    (d2,) = tg.grad(d1.sum(), x, create_graph=True)
    (d3,) = tg.grad(d2.sum(), x)
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(d1.numpy(), 1 - t**2, rtol=1e-12)
    np.testing.assert_allclose(d2.numpy(), -2 * t * (1 - t**2), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d3.numpy(), -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-12,
                               atol=1e-15)


def test_micrograd_readme_expression():
    a = f64(-4.0)
    b = f64(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    assert f"{g.item():.4f}" == "24.7041"
    assert f"{a.grad.item():.4f}" == "138.8338"
    assert f"{b.grad.item():.4f}" == "645.5773"


# -- the functional API against closed forms ----------------------------------------------------


def test_jacobian_shapes_and_values():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    J = jacobian(lambda t: t.exp(), x)
    assert J.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(J.numpy().reshape(4, 4), np.diag(np.exp(x.numpy()).ravel()))
    W = f64(np.arange(6.0).reshape(2, 3), requires_grad=False)
    v = f64([1.0, -1.0, 2.0])
    np.testing.assert_allclose(jacobian(lambda t: W @ t, v).numpy(), W.numpy())


def test_jacobian_tuples_follow_pytorch_nesting():
    x, y = f64([1.0, 2.0]), f64([3.0])
    J = jacobian(lambda a, b: (a * b, (a ** 2).sum() + b), (x, y))
    assert len(J) == 2 and len(J[0]) == 2
    assert J[0][0].shape == (2, 2) and J[0][1].shape == (2, 1)
    assert J[1][0].shape == (1, 2) and J[1][1].shape == (1, 1)
    np.testing.assert_allclose(J[0][0].numpy(), 3 * np.eye(2))
    np.testing.assert_allclose(J[0][1].numpy(), [[1.0], [2.0]])
    np.testing.assert_allclose(J[1][0].numpy(), [[2.0, 4.0]])


def test_jacobian_of_unused_input_is_zero_and_nothing_leaks():
    x, y = f64([1.0, 2.0]), f64([3.0])
    J = jacobian(lambda a, b: a * 2, (x, y))
    np.testing.assert_array_equal(J[1].numpy(), np.zeros((2, 1)))
    assert not J[0].requires_grad and x.grad is None


def test_vjp_and_jvp_and_vhp():
    x = f64([0.5, -1.0, 2.0])
    u = f64([1.0, 2.0, 3.0], requires_grad=False)
    out, g = vjp(lambda t: t.sin() * t, x, u)
    xv = x.numpy()
    np.testing.assert_allclose(out.numpy(), np.sin(xv) * xv)
    np.testing.assert_allclose(g.numpy(), u.numpy() * (np.cos(xv) * xv + np.sin(xv)))
    out, jv = jvp(lambda t: t.sin() * t, x, u)
    np.testing.assert_allclose(jv.numpy(), u.numpy() * (np.cos(xv) * xv + np.sin(xv)))
    M = f64(np.arange(6.0).reshape(2, 3), requires_grad=False)
    _, jv = jvp(lambda t: M @ t, x, u)
    np.testing.assert_allclose(jv.numpy(), M.numpy() @ u.numpy())
    _, vh = vhp(lambda t: (t ** 3).sum(), x, u)
    np.testing.assert_allclose(vh.numpy(), 6 * xv * u.numpy())
    assert not out.requires_grad and not jv.requires_grad


def test_hessian_of_two_inputs():
    x, y = f64([1.0, 2.0]), f64(3.0)
    H = hessian(lambda a, b: (a ** 2).sum() * b, (x, y))
    np.testing.assert_allclose(H[0][0].numpy(), 2 * 3.0 * np.eye(2))
    np.testing.assert_allclose(H[0][1].numpy(), [2.0, 4.0])
    np.testing.assert_allclose(H[1][0].numpy(), [2.0, 4.0])
    np.testing.assert_allclose(H[1][1].numpy(), 0.0)


def test_create_graph_keeps_results_differentiable():
    x = f64([1.0, 2.0])
    _, g = vjp(lambda t: (t ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())
    H = hessian(lambda t: (t ** 4).sum(), x, create_graph=True)
    (third,) = tg.grad(H.sum(), x)
    np.testing.assert_allclose(third.numpy(), 24 * x.numpy())


def mlp_loss(w1, b1, w2):
    X = tg.tensor(np.random.default_rng(3).standard_normal((6, 3)), dtype="float64")
    return ((X @ w1 + b1).tanh() @ w2).sigmoid().mean()


def test_hessian_of_small_mlp_is_symmetric_and_matches_finite_differences():
    rng = np.random.default_rng(1)
    w1, b1, w2 = (f64(rng.standard_normal(s)) for s in [(3, 4), (4,), (4,)])
    H = hessian(mlp_loss, (w1, b1, w2))
    blocks = [[H[i][j].numpy().reshape(w.numel(), -1) for j in range(3)]
              for i, w in enumerate((w1, b1, w2))]
    full = np.block(blocks)
    np.testing.assert_allclose(full, full.T, atol=1e-12)

    def flat_grad(theta):
        parts, start = [], 0
        for w in (w1, b1, w2):
            parts.append(f64(theta[start:start + w.numel()].reshape(w.shape)))
            start += w.numel()
        return np.concatenate([g.numpy().ravel() for g in tg.grad(mlp_loss(*parts), parts)])

    theta = np.concatenate([w.numpy().ravel() for w in (w1, b1, w2)])
    eps = 1e-6
    numeric = np.stack([(flat_grad(theta + eps * e) - flat_grad(theta - eps * e)) / (2 * eps)
                        for e in np.eye(theta.size)])
    np.testing.assert_allclose(full, numeric, atol=1e-7)


# -- against torch.autograd.functional ---------------------------------------------------------


def torch_and_ours():
    torch = pytest.importorskip("torch")
    return torch, torch.autograd.functional


def fn_pair(torch):
    """The same function written for both libraries, two inputs, two outputs."""
    def ours(a, b):
        return (a * b.sin()).tanh(), (a ** 2).sum() * b.exp().mean()

    def theirs(a, b):
        return torch.tanh(a * torch.sin(b)), (a ** 2).sum() * torch.exp(b).mean()

    return ours, theirs


def scalar_pair(torch):
    def ours(a, b):
        return ((a * b.sin()).tanh() ** 2).sum() + (a ** 3).sum() * b.exp().mean()

    def theirs(a, b):
        return (torch.tanh(a * torch.sin(b)) ** 2).sum() + (a ** 3).sum() * torch.exp(b).mean()

    return ours, theirs


def inputs(torch):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    va, vb = rng.standard_normal(3), rng.standard_normal(3)
    return ((f64(a), f64(b)), (torch.tensor(a), torch.tensor(b)),
            (f64(va, False), f64(vb, False)), (torch.tensor(va), torch.tensor(vb)))


def assert_nested_close(ours, theirs):
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert_nested_close(o, t)
    else:
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_jacobian_matches_torch():
    torch, F = torch_and_ours()
    ours, theirs = fn_pair(torch)
    x, tx, _, _ = inputs(torch)
    assert_nested_close(jacobian(ours, x), F.jacobian(theirs, tx))
    assert_nested_close(jacobian(lambda a: ours(a, x[1])[0], x[0]),
                        F.jacobian(lambda a: theirs(a, tx[1])[0], tx[0]))


def test_hessian_matches_torch():
    torch, F = torch_and_ours()
    ours, theirs = scalar_pair(torch)
    x, tx, _, _ = inputs(torch)
    assert_nested_close(hessian(ours, x), F.hessian(theirs, tx))
    assert_nested_close(hessian(lambda a: ours(a, x[1]), x[0]),
                        F.hessian(lambda a: theirs(a, tx[1]), tx[0]))


@pytest.mark.parametrize("name", ["hvp", "vhp"])
def test_hvp_vhp_match_torch(name):
    torch, F = torch_and_ours()
    ours, theirs = scalar_pair(torch)
    x, tx, v, tv = inputs(torch)
    ours_fn = {"hvp": hvp, "vhp": vhp}[name]
    assert_nested_close(ours_fn(ours, x, v), getattr(F, name)(theirs, tx, tv))


def test_vjp_jvp_match_torch():
    torch, F = torch_and_ours()
    ours, theirs = fn_pair(torch)
    x, tx, v, tv = inputs(torch)
    u = (f64([0.3, -0.2, 1.0], False), f64(1.5, False))
    tu = (torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64), torch.tensor(1.5,
                                                                              dtype=torch.float64))
    assert_nested_close(vjp(ours, x, u), F.vjp(theirs, tx, tu))
    assert_nested_close(jvp(ours, x, v), F.jvp(theirs, tx, tv))


def test_double_backward_matches_torch_on_an_mlp():
    torch, _ = torch_and_ours()
    rng = np.random.default_rng(2)
    X, W1, W2 = rng.standard_normal((5, 4)), rng.standard_normal((4, 6)), rng.standard_normal(6)
    w1, w2 = f64(W1), f64(W2)
    loss = ((tg.tensor(X, dtype="float64") @ w1).relu().softmax(-1) @ w2).logsumexp(0)
    g1, g2 = tg.grad(loss, (w1, w2), create_graph=True)
    (hv,) = tg.grad((g1 * g1).sum() + g2.sum(), w1)
    t1 = torch.tensor(W1, requires_grad=True)
    t2 = torch.tensor(W2, requires_grad=True)
    tloss = torch.logsumexp(torch.softmax(torch.relu(torch.tensor(X) @ t1), -1) @ t2, 0)
    h1, h2 = torch.autograd.grad(tloss, (t1, t2), create_graph=True)
    (thv,) = torch.autograd.grad((h1 * h1).sum() + h2.sum(), t1)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(g1.numpy(), h1.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hv.numpy(), thv.numpy(), rtol=1e-10, atol=1e-14)
