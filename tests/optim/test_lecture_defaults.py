"""The README's table "Lecture vs PyTorch defaults": each claim, checked.

Every row says where a slide and PyTorch part and how to get the slide's numbers; here
each slide's loop is transcribed in NumPy (as the slide writes it) and compared with the
optimizer configured as the table says, and the defaults are checked to be PyTorch's.
"""

import inspect

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import optim

CURVATURE = np.array([1.0, 10.0, 0.1])
START = np.array([1.0, -2.0, 3.0])


def _grad(x):
    """∇ of ½ Σ cᵢ xᵢ² + Σ sin xᵢ: a badly conditioned, not quite quadratic bowl."""
    return CURVATURE * x + np.cos(x)


def _ours(cls, steps=30, **kw):
    x = tg.tensor(START.copy(), dtype="float64", requires_grad=True)
    opt = cls([x], **kw)
    path = []
    for _ in range(steps):
        x.grad = tg.tensor(_grad(x.numpy()), dtype="float64")
        opt.step()
        path.append(x.numpy().copy())
    return np.array(path)


def _default(cls, name):
    return inspect.signature(cls.__init__).parameters[name].default


# -- the slides' loops, as written on them ------------------------------------------

def _slide_rmsprop(lr, decay_rate, steps=30):
    x, grad_squared, path = START.copy(), 0.0, []
    for _ in range(steps):
        dx = _grad(x)
        grad_squared = decay_rate * grad_squared + (1 - decay_rate) * dx * dx
        x = x - lr * dx / (np.sqrt(grad_squared) + 1e-7)
        path.append(x)
    return np.array(path)


def _slide_adagrad(lr, steps=30):
    x, grad_squared, path = START.copy(), 0.0, []
    for _ in range(steps):
        dx = _grad(x)
        grad_squared = grad_squared + dx * dx
        x = x - lr * dx / (np.sqrt(grad_squared) + 1e-7)
        path.append(x)
    return np.array(path)


def _slide_adam(lr, unbias, beta1=0.9, beta2=0.999, steps=30):
    x, first, second, path = START.copy(), 0.0, 0.0, []
    for t in range(1, steps + 1):
        dx = _grad(x)
        first = beta1 * first + (1 - beta1) * dx
        second = beta2 * second + (1 - beta2) * dx * dx
        m, v = (first / (1 - beta1 ** t), second / (1 - beta2 ** t)) if unbias else (first, second)
        x = x - lr * m / (np.sqrt(v) + 1e-7)
        path.append(x)
    return np.array(path)


def test_rmsprop_slide_beta_is_alpha_0_9_and_eps_1e_7():
    assert _default(optim.RMSprop, "alpha") == 0.99 and _default(optim.RMSprop, "eps") == 1e-8
    slide = _slide_rmsprop(0.01, decay_rate=0.9)
    np.testing.assert_allclose(_ours(optim.RMSprop, lr=0.01, alpha=0.9, eps=1e-7), slide,
                               rtol=1e-12, atol=1e-14)
    assert np.abs(_ours(optim.RMSprop, lr=0.01) - slide).max() > 1e-3  # the default is not


def test_adagrad_slide_eps_is_1e_7():
    assert _default(optim.Adagrad, "eps") == 1e-10
    slide = _slide_adagrad(0.5)
    np.testing.assert_allclose(_ours(optim.Adagrad, lr=0.5, eps=1e-7), slide, rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("unbias", [True, False], ids=["full form", "almost"])
def test_adam_slides_are_eps_1e_7_with_and_without_bias_correction(unbias):
    assert _default(optim.Adam, "eps") == 1e-8 and _default(optim.Adam, "betas") == (0.9, 0.999)
    slide = _slide_adam(1e-2, unbias)
    ours = _ours(optim.Adam, lr=1e-2, eps=1e-7, bias_correction=unbias)
    np.testing.assert_allclose(ours, slide, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("form", ["pytorch", "lecture"])
def test_nesterov_reports_the_look_ahead_point(form):
    """The slide's Nesterov, v ← ρv - α∇f(x + ρv), x ← x + v, evaluates the gradient at
    the look-ahead x̃ = x + ρv; SGD(nesterov=True) reports θ = x̃, and x = θ - ρv gives back
    the slide's iterate (v = the lecture buffer, or -lr·b in PyTorch's form)."""
    lr, rho = 0.05, 0.9
    x, v = START.copy(), np.zeros(3)
    theta = tg.tensor(START.copy(), dtype="float64", requires_grad=True)
    opt = optim.SGD([theta], lr=lr, momentum=rho, nesterov=True, momentum_form=form)
    for step in range(30):
        v = rho * v - lr * _grad(x + rho * v)
        x = x + v
        theta.grad = tg.tensor(_grad(theta.numpy()), dtype="float64")
        opt.step()
        buffer = opt.state[theta]["momentum_buffer"].numpy()
        velocity = buffer if form == "lecture" else -lr * buffer
        np.testing.assert_allclose(theta.numpy(), x + rho * v, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(theta.numpy() - rho * velocity, x, rtol=1e-11, atol=1e-13)
    assert np.abs(theta.numpy() - x).max() > 1e-6  # the two iterates are not the same point


def test_bfgs_update_is_rank_two_not_rank_one():
    """The slide says "rank 1 updates"; BFGS's H ← (I - ρsyᵀ)H(I - ρysᵀ) + ρssᵀ changes H by
    a matrix of rank 2 (SR1 is the rank-1 quasi-Newton method), and keeps the secant
    condition H y = s."""
    x = tg.tensor([-1.2, 1.0, 0.5, -0.3], dtype="float64", requires_grad=True)
    opt = optim.BFGS([x])
    scales = tg.tensor([1.0, 4.0, 9.0, 16.0], dtype="float64")

    def loss():
        return (scales * x * x).sum() + (x[0] * x[1] - x[2]) ** 2

    ranks, starts, previous = [], [], None
    for _ in range(5):
        starts.append((x.numpy().copy(), _exact_grad(loss, x)))
        opt.step(loss)
        H = opt.state[x].get("H")
        if H is None:
            continue
        # each step first updates H with the pair (s, y) of the step before it
        H = np.asarray(H)
        (x0, g0), (x1, g1) = starts[-2], starts[-1]
        np.testing.assert_allclose(H @ (g1 - g0), x1 - x0, rtol=1e-8, atol=1e-12)  # secant
        if previous is not None:
            sv = np.linalg.svd(H - previous, compute_uv=False)
            ranks.append(int((sv > 1e-10 * sv[0]).sum()))
        previous = H.copy()
    assert len(ranks) >= 2 and all(r == 2 for r in ranks), ranks


def _exact_grad(loss, x):
    """The gradient through autograd, without touching x.grad."""
    return tg.grad(loss(), x)[0].numpy()


def test_levenberg_is_levenberg_marquardt_with_levenberg_damping():
    xs = tg.tensor(np.linspace(0, 2, 8), dtype="float64")
    ys = tg.tensor(2.0 * np.exp(-1.3 * np.linspace(0, 2, 8)), dtype="float64")

    def path(cls, **kw):
        b = tg.tensor([1.0, -0.5], dtype="float64", requires_grad=True)
        opt = cls([b], lambda_update="multiplicative", **kw)
        out = []
        for _ in range(6):
            opt.step(lambda: b[0] * (b[1] * xs).exp() - ys)
            out.append(b.numpy().copy())
        return opt, np.array(out)

    plain, ours = path(optim.Levenberg)
    _, reference = path(optim.LevenbergMarquardt, damping="levenberg")
    np.testing.assert_array_equal(ours, reference)
    assert isinstance(plain, optim.LevenbergMarquardt)
    assert plain.param_groups[0]["damping"] == "levenberg"
    with pytest.raises(TypeError, match="LevenbergMarquardt"):
        optim.Levenberg([tg.tensor([1.0], requires_grad=True)], damping="marquardt")
