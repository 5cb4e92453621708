"""Cases shared by the device tests (test_strict_backend.py on the strict test backend,
gpu/ on CuPy): the optimizer table, a noisy quadratic whose gradient is set by hand, and
an op's value with its first and second derivatives."""

import contextlib

import numpy as np

import tinygrad_opt as tg
from tinygrad_opt import backend

OPTIMIZERS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, momentum_form="lecture")),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True, maximize=True, eps_inside_sqrt=True)),
    ("AdamW", dict(lr=0.05, amsgrad=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, eps_inside_sqrt=True, maximize=True)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.05, momentum_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, momentum_form="lecture")),  # last: keeps [1::2]
]
OPT_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in OPTIMIZERS]


def quadratic(device, dtype="float64", *, shapes=((3, 4), (5,)), steps=6, seed=0):
    """Parameters and a gradient rule g = c ⊙ θ + noise_t, all on ``device``."""
    rng = np.random.default_rng(seed)
    params = [tg.tensor(rng.standard_normal(s), dtype=dtype, device=device,
                        requires_grad=True) for s in shapes]
    curv = [tg.tensor(rng.uniform(0.1, 3.0, s), dtype=dtype, device=device) for s in shapes]
    noise = [[tg.tensor(rng.standard_normal(s) * 0.5, dtype=dtype, device=device)
              for s in shapes] for _ in range(steps)]
    return params, curv, noise


def set_grads(params, curv, noise):
    """p.grad ← c ⊙ p + n for each parameter (one row of ``quadratic``'s noise)."""
    with tg.no_grad():
        for p, c, n in zip(params, curv, noise):
            p.grad = p.detach() * c + n


def place(value, device):
    """Array-valued kwargs (conditions, index arrays, masks) onto the device."""
    if isinstance(value, (np.ndarray, np.generic)):
        return backend.transfer(np.asarray(value), device) if device != "cpu" else value
    if isinstance(value, tuple):
        return tuple(place(v, device) for v in value)
    return value


def derivatives(case, arrays, kwargs, device, dtype="float64", guard=None):
    """An op's value, its first derivatives (Jᵀw) and second derivatives (∂(Jᵀw·v)/∂x).

    The inputs, w and v are made first; the op and both backwards then run inside
    ``guard`` (a context manager, e.g. one that forbids host transfers)."""
    rng = np.random.default_rng(7)
    xs = [tg.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]
    kwargs = {k: place(v, device) for k, v in kwargs.items()}
    out = case.fn(*xs, **kwargs)
    w = tg.tensor(rng.uniform(-1, 1, out.shape), dtype=dtype, device=device)
    vs = [tg.tensor(rng.uniform(-1, 1, a.shape), dtype=dtype, device=device) for a in arrays]
    with guard or contextlib.nullcontext():
        out = case.fn(*xs, **kwargs)
        grads = tg.grad((out * w).sum(), xs, create_graph=True, allow_unused=True)
        live = [(g * v).sum() for g, v in zip(grads, vs) if g is not None and g.requires_grad]
        second = tg.grad(sum(live[1:], live[0]), xs, allow_unused=True) if live \
            else (None,) * len(xs)
    return out, list(grads), list(second)


def exponential_fit(name, cls, kw, device, steps=5):
    """θ = (a, k) after ``steps`` steps of the second-order method ``cls(**kw)`` (called
    ``name``) on the least-squares fit of a e^{kt} to 12 noisy samples of 2 e^{-1.3t},
    everything on ``device``: residuals for Gauss-Newton and Levenberg-Marquardt, ½‖r‖²
    otherwise (L-BFGS's closure also runs backward)."""
    rng = np.random.default_rng(0)
    t_np = np.linspace(0, 1, 12)
    y_np = 2.0 * np.exp(-1.3 * t_np) + 0.01 * rng.standard_normal(12)
    theta = tg.tensor([1.0, -0.5], dtype="float64", device=device, requires_grad=True)
    t, y = tg.tensor(t_np, device=device), tg.tensor(y_np, device=device)
    opt = cls([theta], **kw)

    def closure():
        residual = theta[0] * (theta[1] * t).exp() - y
        if name in ("GaussNewton", "LevenbergMarquardt"):
            return residual
        loss = 0.5 * (residual * residual).sum()
        if name == "LBFGS":
            opt.zero_grad()
            loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return theta
