"""Every first-order optimizer × every option, on a 0-d, a 1-d and a 2-d parameter at once,
against ``torch.optim`` (``foreach=False``) for 50 steps in float64; the lecture's options,
which torch lacks, against the documented rules of ``optim_reference``.

The gradient comes from our own backward (so 0-d gradients are exercised too) and is handed
to torch unchanged: any difference is the optimizer's.
"""

import numpy as np
import pytest
from optim_reference import RULES

import tinygrad_opt as tg
from tinygrad_opt import optim

SHAPES = [(), (3,), (2, 3)]
STEPS = 50

# (class name, keyword arguments): each option of each optimizer, alone and combined.
TORCH_CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, decoupled_weight_decay=True,
                  weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3,
                     eps=1e-6, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1,
                     maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, betas=(0.7, 0.9), weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]
# Options of the lecture that torch does not have: against the documented rule instead.
LECTURE_CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9, momentum_form="lecture")),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, momentum_form="lecture",
                 weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.05, eps=1e-3, eps_inside_sqrt=True, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, eps=1e-4, eps_inside_sqrt=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, eps=1e-4, eps_inside_sqrt=True)),
]


def _ids(configs):
    return [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
            for name, kw in configs]


def _problem():
    """Starts, curvatures and per-step pulls of L_t(θ) = Σ ½ c θ² + n_t θ over the shapes."""
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal(s) for s in SHAPES]
    curv = [rng.uniform(0.1, 3.0, s) for s in SHAPES]
    pulls = [[rng.standard_normal(s) * 0.5 for s in SHAPES] for _ in range(STEPS)]
    return starts, curv, pulls


def _backward(params, curv, pulls):
    """Our gradients of L_t, through our own autograd (0-d included)."""
    for p in params:
        p.grad = None
    loss = sum(((tg.tensor(c) * p * p * 0.5) + tg.tensor(n) * p).sum()
               for p, c, n in zip(params, curv, pulls))
    loss.backward()


@pytest.fixture
def float64_default():
    """float64 default dtype here and in torch (if installed): ``step`` and NAdam's
    ``mu_product`` follow it."""
    torch = None
    try:
        import torch
    except ImportError:
        pass
    previous = tg.get_default_dtype(), torch and torch.get_default_dtype()
    tg.set_default_dtype("float64")
    if torch:
        torch.set_default_dtype(torch.float64)
    yield
    tg.set_default_dtype(previous[0])
    if torch:
        torch.set_default_dtype(previous[1])


@pytest.mark.parametrize("name,kw", TORCH_CONFIGS, ids=_ids(TORCH_CONFIGS))
def test_every_option_matches_torch_on_0d_1d_2d(name, kw, float64_default):
    torch = pytest.importorskip("torch")
    starts, curv, pulls = _problem()
    ours = [tg.tensor(x, dtype="float64", requires_grad=True) for x in starts]
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in starts]
    opt = getattr(optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for t in range(STEPS):
        _backward(ours, curv, pulls[t])
        for p, q in zip(ours, theirs):
            assert p.grad.shape == p.shape
            q.grad = torch.tensor(np.array(p.grad.numpy()))
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {kw} shape {p.shape}: step {t + 1}")
    for p, q in zip(ours, theirs):
        assert set(opt.state[p]) == set(ref.state[q])
        for key, value in ref.state[q].items():
            x, y = opt.state[p][key].numpy(), value.detach().numpy()
            assert isinstance(opt.state[p][key].data, np.ndarray), (name, key)
            assert x.shape == y.shape and x.dtype == y.dtype, (name, key, p.shape)
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, err_msg=f"{name} {key}")


@pytest.mark.parametrize("name,kw", LECTURE_CONFIGS, ids=_ids(LECTURE_CONFIGS))
def test_lecture_options_match_their_rule_on_0d_1d_2d(name, kw, float64_default):
    starts, curv, pulls = _problem()
    ours = [tg.tensor(x, dtype="float64", requires_grad=True) for x in starts]
    opt = getattr(optim, name)(ours, **kw)
    thetas = [x.copy() for x in starts]
    states = [{} for _ in thetas]
    for t in range(STEPS):
        _backward(ours, curv, pulls[t])
        opt.step()
        thetas = [RULES[name](np.asarray(th), c * th + n, st, t + 1, **kw)
                  for th, c, n, st in zip(thetas, curv, pulls[t], states)]
        for p, th in zip(ours, thetas):
            np.testing.assert_allclose(p.numpy(), th, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {kw} shape {p.shape}: step {t + 1}")


# -- second order: a 0-d parameter behaves as a one-element vector -------------------

def _residuals(a, b):
    """Residuals whose least-squares problem couples a scalar a with a vector b."""
    return tg.stack([a - 1.5, a * b[0] - 1, a * b[1] - 1, b[0] - b[1] * 0.5])


SECOND_ORDER = [("GD", dict(lr=0.1)), ("Newton", dict()), ("NewtonCG", dict()),
                ("BFGS", dict()), ("LBFGS", dict(line_search_fn="strong_wolfe")),
                ("HessianFree", dict()), ("GaussNewton", dict()),
                ("LevenbergMarquardt", dict())]


def _second_order_path(name, kw, a_shape):
    a = tg.tensor(np.full(a_shape, 0.3), dtype="float64", requires_grad=True)
    b = tg.tensor([0.5, 0.2], dtype="float64", requires_grad=True)
    opt = getattr(optim, name)([a, b], **kw)

    def loss():
        r = _residuals(a.reshape(()), b)
        return (r * r).sum()

    def closure():  # PyTorch's closure (LBFGS): zero_grad, forward, backward
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    path = []
    for _ in range(4):
        if name == "HessianFree":
            opt.step(lambda: _residuals(a.reshape(()), b), lambda r: (r * r).sum())
        elif name in ("GaussNewton", "LevenbergMarquardt"):
            opt.step(lambda: _residuals(a.reshape(()), b))
        else:
            opt.step(closure if name == "LBFGS" else loss)
        assert a.shape == a_shape and isinstance(a.data, np.ndarray)
        path.append(np.concatenate([a.numpy().reshape(-1), b.numpy()]))
    return np.array(path)


@pytest.mark.parametrize("name,kw", SECOND_ORDER, ids=[n for n, _ in SECOND_ORDER])
def test_second_order_on_a_0d_parameter_equals_a_one_element_vector(name, kw, float64_default):
    np.testing.assert_allclose(_second_order_path(name, kw, ()),
                               _second_order_path(name, kw, (1,)), rtol=1e-12, atol=1e-14)


def _lbfgs(lib, stack, params, steps=3):
    """``steps`` LBFGS steps of ``lib`` (optim or torch.optim) on the coupled residuals."""
    opt = lib.LBFGS(params, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        a, b = params
        r = stack([a - 1.5, a * b[0] - 1, a * b[1] - 1, b[0] - b[1] * 0.5])
        value = (r * r).sum()
        value.backward()
        return value

    for _ in range(steps):
        opt.step(closure)


def test_lbfgs_on_0d_and_1d_parameters_matches_torch(float64_default):
    torch = pytest.importorskip("torch")
    ours = [tg.tensor(0.3, dtype="float64", requires_grad=True),
            tg.tensor([0.5, 0.2], dtype="float64", requires_grad=True)]
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    _lbfgs(optim, tg.stack, ours)
    _lbfgs(torch.optim, torch.stack, theirs)
    for p, q in zip(ours, theirs):
        assert p.shape == tuple(q.shape)
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-9, atol=1e-12)
