"""fit drives every optimizer: closures for L-BFGS, BFGS, Newton-CG, Gauss-Newton, LM and
Hessian-free, on mini-batches or the full batch; the residual form of the MSE."""

import math

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import data, nn, optim
from tinygrad_opt.train import evaluate, fit
from tinygrad_opt.train_step import closure_contract, residual_form

F = nn.functional


@pytest.fixture(scope="module")
def spirals():
    X, y = data.make_spirals(200, noise=0.2, seed=0)
    return data.train_val_test_split(X, y, seed=0)


def _final_loss(split, make_optimizer, batch_size, epochs):
    tg.manual_seed(0)
    model = nn.MLP([2, 16, 16, 3], activation="tanh")
    history = fit(model, F.cross_entropy, make_optimizer(model.parameters()), split.train,
                  split.val, epochs=epochs, batch_size=batch_size, progress=False)
    assert history.epochs == epochs and all(map(math.isfinite, history.iteration_loss))
    return evaluate(model, F.cross_entropy, split.train)["loss"], history


def test_full_batch_lbfgs_beats_minibatch_lbfgs_and_adam(spirals):
    """The lecture: L-BFGS works in full batch, deterministic mode, not on mini-batches."""
    lbfgs = lambda p: optim.LBFGS(p, line_search_fn="strong_wolfe")
    full, history = _final_loss(spirals, lbfgs, None, 6)
    assert history.iterations == 6  # one step (up to 20 L-BFGS iterations) per epoch
    minibatch, _ = _final_loss(spirals, lbfgs, 40, 6)
    adam, _ = _final_loss(spirals, lambda p: optim.Adam(p, lr=1e-2), 40, 6)
    assert full < 0.2 * adam and full < 0.2 * minibatch, (full, minibatch, adam)


@pytest.mark.parametrize("make", [lambda p: optim.BFGS(p), lambda p: optim.NewtonCG(p),
                                  lambda p: optim.Newton(p), lambda p: optim.HessianFree(p)],
                         ids=["bfgs", "newton-cg", "newton", "hessian-free"])
def test_graph_and_forward_optimizers_lower_the_loss(spirals, make):
    tg.manual_seed(0)
    model = nn.MLP([2, 8, 3], activation="tanh")
    before = evaluate(model, F.cross_entropy, spirals.train)["loss"]
    history = fit(model, F.cross_entropy, make(model.parameters()), spirals.train, epochs=5,
                  batch_size=None, progress=False)
    # the recorded loss is the batch loss before each step: the first one is the start
    assert history.iteration_loss[0] == pytest.approx(before, rel=1e-6)
    assert evaluate(model, F.cross_entropy, spirals.train)["loss"] < 0.95 * before


def test_residual_form_of_mse_equals_the_loss():
    out = tg.tensor(np.arange(6.0).reshape(3, 2))
    target = tg.tensor(np.ones((3, 2)))
    for loss in (F.mse_loss, nn.MSELoss(), nn.MSELoss(reduction="sum")):
        r = residual_form(loss)(out, target)
        assert 0.5 * float((r * r).sum().item()) == pytest.approx(loss(out, target).item())
    assert residual_form(F.cross_entropy) is None
    assert residual_form(nn.MSELoss(reduction="none")) is None


def test_levenberg_marquardt_fits_a_regression_with_the_mse_residual():
    X, y = data.make_sine(120, noise=0.05, seed=0)
    tg.manual_seed(0)
    model = nn.MLP([1, 8, 1], activation="tanh")
    history = fit(model, F.mse_loss, optim.LevenbergMarquardt(model.parameters()), (X, y),
                  epochs=15, batch_size=None, progress=False)
    assert history.train_loss[-1] < 0.05 * history.train_loss[0]
    assert all(math.isnan(v) for v in history.lr)  # LM has no learning rate


def test_least_squares_refuses_a_loss_without_residual_form(spirals):
    model = nn.MLP([2, 4, 3])
    for cls in (optim.LevenbergMarquardt, optim.GaussNewton):
        with pytest.raises(ValueError, match="has no residual form") as info:
            fit(model, F.cross_entropy, cls(model.parameters()), spirals.train, epochs=1)
        assert str(info.value).count(". ") == 0 and "cross_entropy" in str(info.value)
    with pytest.raises(ValueError, match="never reads"):
        fit(model, F.cross_entropy, optim.BFGS(model.parameters()), spirals.train, epochs=1,
            clip_grad_norm=1.0)


def test_closure_contracts():
    p = [tg.tensor([1.0, 2.0], requires_grad=True)]
    assert closure_contract(optim.SGD(p, lr=0.1)) == "none"
    assert closure_contract(optim.LBFGS(p)) == "backward"
    assert closure_contract(optim.Newton(p)) == "graph"
    assert closure_contract(optim.GaussNewton(p)) == "residual"
    assert closure_contract(optim.HessianFree(p)) == "forward"
