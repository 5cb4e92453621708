"""Gauss-Newton and Levenberg-Marquardt: the closure returns residuals, the
Jacobian comes from autograd, the damping options, the matrix-free CG solver,
least_squares(), and scipy for comparison where it is installed."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import optim


def t64(a):
    return tg.tensor(np.array(a, dtype=np.float64), dtype="float64", requires_grad=True)


# y = a·exp(-b·x) + c with noise: a small curve fit
X = np.linspace(0, 4, 30)
TRUE = np.array([2.5, 1.3, 0.5])
Y = TRUE[0] * np.exp(-TRUE[1] * X) + TRUE[2] + 0.01 * np.random.default_rng(0).standard_normal(30)
Xt, Yt = tg.tensor(X, dtype="float64"), tg.tensor(Y, dtype="float64")


def residual(p):
    return p[0] * (-p[1] * Xt).exp() + p[2] - Yt


def reference_fit():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    return scipy_optimize.least_squares(
        lambda p: p[0] * np.exp(-p[1] * X) + p[2] - Y, [1.0, 1.0, 0.0], method="lm",
        xtol=1e-15, ftol=1e-15, gtol=1e-15).x


def fit(opt_cls, start=(1.0, 1.0, 0.0), iters=100, **kwargs):
    p = t64(start)
    opt = opt_cls([p], **kwargs)
    losses = []
    for _ in range(iters):
        losses.append(float(opt.step(lambda: residual(p))))
        if opt.record["converged"] or opt.record["message"].startswith("stopped"):
            break
    return p, opt, losses


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(damping="levenberg"),
    dict(lambda_update="nielsen"),
    dict(lambda_update="multiplicative"),
    dict(damping="levenberg", lambda_update="multiplicative", lam=1.0),
    dict(geodesic=True),
    dict(solver="normal"),
    dict(jacobian="rows"),
    dict(jacobian="columns"),
])
def test_levenberg_marquardt_fits_the_curve(kwargs):
    p, opt, losses = fit(optim.LevenbergMarquardt, xtol=1e-12, ftol=1e-14, gtol=1e-12, **kwargs)
    np.testing.assert_allclose(p.numpy(), reference_fit(), rtol=1e-7)
    record = opt.record
    assert record["converged"], record["message"]
    # the cost never rises: a trial that does not lower it is rejected
    assert np.all(np.diff(losses) <= 1e-15 * losses[0])
    assert losses[0] == pytest.approx(0.5 * float((residual(t64([1.0, 1.0, 0.0])) ** 2).sum()
                                                  .item()))
    assert len(record["lam_history"]) == record["nit"] == len(record["loss_history"])
    assert record["njev"] >= 1 and record["nfev"] >= record["nit"]
    np.testing.assert_allclose(p.grad.numpy(), 0, atol=1e-6)


def test_lambda_rises_when_the_cost_does_not_fall():
    # From a poor start the first trials fail and λ grows (the trust-region view).
    p, opt, _ = fit(optim.LevenbergMarquardt, start=(10.0, 10.0, -5.0), iters=200,
                    lambda_update="multiplicative", lam=1e-6, xtol=1e-12)
    lams = opt.record["lam_history"]
    assert max(lams) > lams[0]
    np.testing.assert_allclose(p.numpy(), reference_fit(), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(), dict(solver="normal"),
                                    dict(line_search="armijo"), dict(solver="cg")])
def test_gauss_newton_fits_the_curve(kwargs):
    p, _, losses = fit(optim.GaussNewton, start=(2.0, 1.0, 0.3), iters=30, **kwargs)
    np.testing.assert_allclose(p.numpy(), reference_fit(), rtol=1e-6)
    assert losses[-1] <= losses[0]


def test_gauss_newton_is_exact_on_linear_least_squares():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 5))
    b = rng.standard_normal(40)
    At, bt = tg.tensor(A, dtype="float64"), tg.tensor(b, dtype="float64")
    for solver in ("svd", "normal", "cg"):
        x = t64(np.zeros(5))
        optim.GaussNewton([x], solver=solver).step(lambda: At @ x - bt)
        np.testing.assert_allclose(x.numpy(), np.linalg.lstsq(A, b, rcond=None)[0], rtol=1e-8)


def test_matrix_free_levenberg_on_a_small_network():
    # A 2-8-1 tanh network fit by LM with CG on J v / Jᵀw products (J never formed),
    # against the same LM with the direct solver.
    rng = np.random.default_rng(0)
    Xn = tg.tensor(rng.uniform(-2, 2, (40, 2)), dtype="float64")
    yn = tg.tensor(np.sin(Xn.numpy()[:, 0]) * np.cos(Xn.numpy()[:, 1]), dtype="float64")
    init = [rng.standard_normal((8, 2)) * 0.5, np.zeros(8), rng.standard_normal((1, 8)) * 0.5,
            np.zeros(1)]
    finals = {}
    for solver in ("svd", "cg"):
        params = [t64(a) for a in init]
        W1, b1, W2, b2 = params
        opt = optim.LevenbergMarquardt(params, damping="levenberg", solver=solver,
                                       lambda_update="nielsen", lam=0.1)
        losses = [float(opt.step(lambda: ((Xn @ W1.T + b1).tanh() @ W2.T + b2).reshape(-1)
                                 - yn)) for _ in range(15)]
        assert losses[-1] < 0.05 * losses[0], (solver, losses)
        finals[solver] = losses
    np.testing.assert_allclose(finals["cg"][:5], finals["svd"][:5], rtol=1e-6)
    # trust region with Steihaug-CG
    params = [t64(a) for a in init]
    W1, b1, W2, b2 = params
    opt = optim.LevenbergMarquardt(params, damping="levenberg", solver="cg")
    losses = [float(opt.step(lambda: ((Xn @ W1.T + b1).tanh() @ W2.T + b2).reshape(-1) - yn))
              for _ in range(15)]
    assert losses[-1] < 0.05 * losses[0]
    assert opt.record["jacobian_products"] > 0


def test_least_squares_result():
    res = optim.least_squares(residual, [1.0, 1.0, 0.0], xtol=1e-12)
    assert res.success and res.status == 0
    np.testing.assert_allclose(res.x, reference_fit(), rtol=1e-7)
    r = residual(tg.tensor(res.x, dtype="float64")).numpy()
    np.testing.assert_allclose(res.fun, r, rtol=1e-12)
    assert res.cost == pytest.approx(0.5 * r @ r)
    assert res.jac.shape == (30, 3)
    np.testing.assert_allclose(res.grad, res.jac.T @ res.fun, atol=1e-12)
    assert len(res.lam_history) == res.nit
    gn = optim.least_squares(residual, [2.0, 1.0, 0.3], method="gn", xtol=1e-12)
    assert gn.success
    np.testing.assert_allclose(gn.x, res.x, rtol=1e-6)
    budget = optim.least_squares(residual, [1.0, 1.0, 0.0], max_nfev=3)
    assert budget.status == 1 and "max_nfev" in budget.message
    with pytest.raises(ValueError, match="unknown method"):
        optim.least_squares(residual, [1.0, 1.0, 0.0], method="dogbox")


def test_least_squares_closure_contract_and_options():
    p = t64([1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="levenberg"):
        optim.LevenbergMarquardt([p], solver="cg")
    with pytest.raises(ValueError, match="geodesic"):
        optim.LevenbergMarquardt([p], solver="cg", damping="levenberg", geodesic=True)
    for kwargs in (dict(damping="tikhonov"), dict(lambda_update="random"), dict(solver="qr"),
                   dict(jacobian="forward")):
        with pytest.raises(ValueError):
            optim.LevenbergMarquardt([p], **kwargs)
    opt = optim.LevenbergMarquardt([p])
    with pytest.raises(RuntimeError, match="without a graph"):
        opt.step(lambda: residual(p).detach())


def test_zero_residual_stops_at_once():
    p = t64([2.0])
    opt = optim.LevenbergMarquardt([p])
    opt.step(lambda: p - 2.0)
    assert opt.record["converged"] and "zero" in opt.record["message"]


def test_levenberg_marquardt_state_dict_round_trip():
    p = t64([1.0, 1.0, 0.0])
    opt = optim.LevenbergMarquardt([p])
    for _ in range(2):
        opt.step(lambda: residual(p))
    saved = opt.state_dict()
    p_saved = p.numpy().copy()
    for _ in range(3):
        opt.step(lambda: residual(p))
    after = p.numpy().copy()
    p.data[...] = p_saved
    other = optim.LevenbergMarquardt([p])
    other.load_state_dict(saved)
    for _ in range(3):
        other.step(lambda: residual(p))
    np.testing.assert_allclose(p.numpy(), after, rtol=1e-12)
    assert other.record["nit"] == 5 and len(other.record["lam_history"]) == 5
