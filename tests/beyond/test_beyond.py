"""ProxProp, Hessian-free and K-FAC against hand-computed closed forms."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.optim.hessian_free import gauss_newton_vector_product

F = nn.functional


@pytest.fixture
def f64():
    old = tg.get_default_dtype() if hasattr(tg, "get_default_dtype") else None
    tg.set_default_dtype(np.float64)
    yield
    tg.set_default_dtype(old or np.float32)


def _batch(n=12, d=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    # in the models' dtype: a float64 batch into a float32 model is an error, as in torch
    return (tg.tensor(rng.standard_normal((n, d)), dtype=tg.get_default_dtype()),
            tg.tensor(rng.integers(0, c, n)))


def _layer_grads(mode, tau=0.7, seed=0):
    """A ProxLinear(4, 5) -> ReLU -> Linear(5, 3) net; returns (A, g, dW, db, x) where
    A = [x, 1] (12 x 5) are the layer inputs with ones, g = Aᵀ δ (5 x 5) the plain
    backprop gradient [∂L/∂Wᵀ; ∂L/∂bᵀ], and dW, db the ProxLinear's .grad."""
    tg.manual_seed(seed)
    net = nn.ProxPropMLP([4, 5, 3], optimization_mode=mode, tau_prox=tau)
    ref = nn.MLP([4, 5, 3])
    ref.load_state_dict(net.state_dict())
    x, y = _batch()
    F.cross_entropy(net(x), y).backward()
    F.cross_entropy(ref(x), y).backward()
    A = np.concatenate([x.numpy(), np.ones((12, 1))], axis=1)
    lin = ref.layers[0]
    g = np.concatenate([lin.weight.grad.numpy().T, lin.bias.grad.numpy()[None]], axis=0)
    layer = net.layers[0]
    return A, g, layer.weight.grad.numpy(), layer.bias.grad.numpy(), net, ref


def test_prox_exact_is_damped_solve(f64):
    tau = 0.7
    A, g, dW, db, net, ref = _layer_grads("prox_exact", tau)
    expected = np.linalg.solve(A.T @ A + np.eye(5) / tau, g)  # (AᵀA + I/τ)⁻¹ g
    np.testing.assert_allclose(dW, expected[:4].T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, expected[4], rtol=1e-10, atol=1e-12)
    # the classifier stays plain: its gradient is backprop's
    np.testing.assert_allclose(net.layers[2].weight.grad.numpy(),
                               ref.layers[2].weight.grad.numpy(), rtol=1e-12)
    assert not np.allclose(dW, g[:4].T)


def test_prox_cg1_is_one_cg_step(f64):
    tau = 0.7
    A, g, dW, db, *_ = _layer_grads("prox_cg1", tau)
    M = A.T @ A + np.eye(5) / tau
    # one CG step from d = 0 per output column j: d_j = (g_jᵀg_j / g_jᵀ M g_j) g_j
    alpha = (g * g).sum(0) / (g * (M @ g)).sum(0)
    expected = g * alpha
    np.testing.assert_allclose(dW, expected[:4].T, rtol=1e-10)
    np.testing.assert_allclose(db, expected[4], rtol=1e-10)


def test_gradient_mode_is_backprop(f64):
    A, g, dW, db, net, ref = _layer_grads("gradient")
    np.testing.assert_allclose(dW, g[:4].T, rtol=1e-12)
    np.testing.assert_allclose(db, g[4], rtol=1e-12)


def test_sgd_lr1_step_is_proximal_step(f64):
    """θ⁺ = argmin ½‖A X − (z − δ)‖² + 1/(2τ)‖X − θ‖², solved by hand, equals θ − 1·d."""
    tau = 0.5
    tg.manual_seed(1)
    net = nn.ProxPropMLP([4, 5, 3], optimization_mode="prox_exact", tau_prox=tau)
    x, y = _batch(seed=1)
    layer = net.layers[0]
    theta = np.concatenate([layer.weight.numpy().T, layer.bias.numpy()[None]], axis=0)
    A = np.concatenate([x.numpy(), np.ones((12, 1))], axis=1)
    z = tg.tensor(A @ theta, requires_grad=True)
    F.cross_entropy(net.layers[2](z.relu()), y).backward()  # δ = ∂L/∂z
    z_plus = z.numpy() - z.grad.numpy()
    theta_new = np.linalg.solve(A.T @ A + np.eye(5) / tau, A.T @ z_plus + theta / tau)
    opt = optim.SGD(net.parameters(), lr=1.0)
    F.cross_entropy(net(x), y).backward()
    opt.step()
    np.testing.assert_allclose(layer.weight.numpy(), theta_new[:4].T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.bias.numpy(), theta_new[4], rtol=1e-9, atol=1e-12)


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="prox_cg"):
        nn.ProxLinear(3, 2, optimization_mode="prox_cg0")


def test_gauss_newton_vector_product_matches_explicit_jacobian(f64):
    tg.manual_seed(0)
    net = nn.MLP([4, 3, 3], activation="tanh")
    x, y = _batch()
    params = list(net.parameters())
    out = net(x)
    product, g = gauss_newton_vector_product(out, lambda z: F.cross_entropy(z, y), params)
    # explicit J (36 x P) by finite differences of the outputs, H_L block-diagonal
    theta = np.concatenate([p.numpy().ravel() for p in params])

    def outputs(t):
        k = 0
        for p in params:
            p.data[...] = t[k:k + p.data.size].reshape(p.shape)
            k += p.data.size
        with tg.no_grad():
            return net(x).numpy().ravel()

    eps = 1e-6
    J = np.stack([(outputs(theta + eps * e) - outputs(theta - eps * e)) / (2 * eps)
                  for e in np.eye(theta.size)], axis=1)
    outputs(theta)
    p = np.exp(out.numpy() - out.numpy().max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    H = np.zeros((36, 36))
    for i in range(12):  # mean cross entropy: (diag p − p pᵀ)/N per sample
        H[3 * i:3 * i + 3, 3 * i:3 * i + 3] = (np.diag(p[i]) - np.outer(p[i], p[i])) / 12
    v = np.random.default_rng(3).standard_normal(theta.size)
    np.testing.assert_allclose(product(v), J.T @ (H @ (J @ v)), rtol=1e-6, atol=1e-8)
    F.cross_entropy(net(x), y).backward()
    np.testing.assert_allclose(g, np.concatenate([p.grad.numpy().ravel() for p in params]),
                               rtol=1e-10)


def test_kfac_factors_and_step(f64):
    tg.manual_seed(0)
    net = nn.MLP([4, 5, 3])
    x, y = _batch()
    opt = optim.KFAC(net, lr=0.5, momentum=0, damping=0.3, factor_decay=0.0, kl_clip=None)
    W0 = net.layers[0].weight.numpy().copy()
    b0 = net.layers[0].bias.numpy().copy()
    h = net.layers[0](x)
    h.retain_grad() if hasattr(h, "retain_grad") else None
    out = net.layers[2](h.relu())
    loss = F.cross_entropy(out, y)
    loss.backward()
    gW = net.layers[0].weight.grad.numpy().copy()
    gb = net.layers[0].bias.grad.numpy().copy()
    # δ = ∂L/∂s for the first layer, by hand through ReLU and the classifier
    p = np.exp(out.numpy() - out.numpy().max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dout = (p - np.eye(3)[y.numpy()]) / 12
    delta = (dout @ net.layers[2].weight.numpy()) * (h.numpy() > 0)
    opt.step()
    st = opt.kfac_state[0]
    a = np.concatenate([x.numpy(), np.ones((12, 1))], axis=1)
    np.testing.assert_allclose(st["A"], a.T @ a / 12, rtol=1e-12)          # E[ā āᵀ]
    g = delta * 12                                                        # per-sample ∂ℓ/∂s
    np.testing.assert_allclose(st["G"], g.T @ g / 12, rtol=1e-10)          # E[g gᵀ]
    V = np.concatenate([gW, gb[:, None]], axis=1)
    D = np.linalg.solve(st["G"] + 0.3 * np.eye(5), V) @ np.linalg.inv(st["A"] + 0.3 * np.eye(5))
    # explicit Kronecker solve: vec(D) = (Ā+γI ⊗ G+γI)⁻¹ vec(V) (column-major vec)
    K = np.kron(st["A"] + 0.3 * np.eye(5), st["G"] + 0.3 * np.eye(5))
    np.testing.assert_allclose(np.linalg.solve(K, V.ravel(order="F")), D.ravel(order="F"),
                               rtol=1e-9)
    np.testing.assert_allclose(net.layers[0].weight.numpy(), W0 - 0.5 * D[:, :4], rtol=1e-9)
    np.testing.assert_allclose(net.layers[0].bias.numpy(), b0 - 0.5 * D[:, 4], rtol=1e-9)


def test_kfac_preconditions_exactly_the_linear_layers():
    """K-FAC tells a layer x Wᵀ + b by what nn.Linear carries (optim does not import nn):
    every Linear and subclass, with or without bias, and nothing else."""
    tg.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.ProxLinear(5, 5), nn.ReLU(),
                        nn.Linear(5, 3, bias=False))
    opt = optim.KFAC(net)
    assert opt.layers == [m for m in net.modules() if isinstance(m, nn.Linear)]

    class Scale(nn.Module):  # a weight, but no x Wᵀ + b
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(tg.ones(3))

    with pytest.raises(ValueError, match="KFAC: Scale has no Linear layer"):
        optim.KFAC(Scale())


@pytest.mark.parametrize("method", ["sgd", "prox_exact", "prox_cg1", "hf", "kfac"])
def test_each_method_decreases_training_loss(method):
    tg.manual_seed(0)
    x, y = _batch(n=64, d=5, seed=2)
    net = (nn.ProxPropMLP([5, 16, 16, 3], optimization_mode=method, tau_prox=1.0)
           if method.startswith("prox") else nn.MLP([5, 16, 16, 3]))
    if method == "hf":
        opt = optim.HessianFree(net.parameters())
    elif method == "kfac":
        opt = optim.KFAC(net, lr=0.1)
    else:
        # the paper's ProxProp setting: Nesterov SGD at lr 1 (the prox direction is damped)
        lr = 1.0 if method.startswith("prox") else 0.1
        opt = optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True)
    first = float(F.cross_entropy(net(x), y).data)
    for _ in range(30):
        if method == "hf":
            opt.step(lambda: net(x), lambda z: F.cross_entropy(z, y))
        else:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    last = float(F.cross_entropy(net(x), y).data)
    assert last < 0.9 * first


def test_compare_quick_writes_table_and_plot(tmp_path):
    from tinygrad_opt.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--methods", "sgd_nesterov,proxprop_cg1,kfac",
                 "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "proxprop_cg1" in table and "kfac" in table
    assert (out / "compare.png").stat().st_size > 1000
