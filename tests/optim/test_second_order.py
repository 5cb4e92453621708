"""Second-order optimizers: Newton (double backward), Newton-CG, BFGS, L-BFGS
(against PyTorch), GD with line searches, the line searches on their own, the
OptimizeResult record, minimize(), and the closure contract. Everything in
float64."""

import copy

import numpy as np
import pytest
from _helpers import backward_closure, rosen

import tinygrad_opt as tg
from tinygrad_opt import optim
from tinygrad_opt.optim import line_search


def t64(a):
    return tg.tensor(np.array(a, dtype=np.float64), dtype="float64", requires_grad=True)


def rosen_start(n):
    return np.tile([-1.2, 1.0], n // 2)


def run(opt, closure, iters):
    for _ in range(iters):
        opt.step(closure)
        if opt.record["converged"]:
            break
    return opt.record


# ---------------------------------------------------------------------------
# Newton
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("start", [np.zeros(4), np.array([50.0, -3.0, 7.0, 1e3])])
def test_newton_solves_linear_regression_in_one_step(start):
    # The lecture's question: J(θ) = (y - Xθ)ᵀ(y - Xθ) is quadratic, so one
    # Newton step from anywhere lands on the least-squares solution.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.standard_normal(50)
    Xt, yt = tg.tensor(X, dtype="float64"), tg.tensor(y, dtype="float64")
    theta = t64(start)
    opt = optim.Newton([theta])

    def closure():
        r = yt - Xt @ theta
        return (r * r).sum()

    loss0 = opt.step(closure)
    np.testing.assert_allclose(theta.numpy(), np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)
    assert float(loss0) == pytest.approx(float(((y - X @ start) ** 2).sum()))
    opt.step(closure)
    assert opt.record["converged"]
    assert opt.record["nit"] == 2 and opt.record["nhev"] == 1
    assert opt.record["message"].startswith("converged")
    np.testing.assert_allclose(theta.grad.numpy(), 0, atol=1e-8)  # .grad is filled


def test_newton_on_x4_minus_2x2_follows_the_textbook_sequence():
    x = t64([2.0])
    opt = optim.Newton([x], modification=None)
    expected = 2.0
    for _ in range(6):
        opt.step(lambda: (x ** 4 - 2 * x ** 2).sum())
        expected = expected - (4 * expected ** 3 - 4 * expected) / (12 * expected ** 2 - 4)
        assert x.item() == pytest.approx(expected, rel=1e-13)
    assert x.item() == pytest.approx(1.0, abs=1e-11)  # quadratic convergence
    # 2 -> 1.4545... -> 1.1510... (the classic sequence)
    x = t64([2.0])
    opt = optim.Newton([x])
    opt.step(lambda: (x ** 4 - 2 * x ** 2).sum())
    assert x.item() == pytest.approx(16 / 11)
    assert opt.record["lam"] == 0.0  # positive definite: no damping


@pytest.mark.parametrize("kwargs,iters", [
    (dict(), 10),                                   # pure Newton: 7 iterations
    (dict(line_search="armijo"), 40),
    (dict(line_search="strong_wolfe"), 40),
    (dict(modification="abs", line_search="armijo"), 40),
])
def test_newton_reaches_rosenbrocks_minimum(kwargs, iters):
    x = t64([-1.2, 1.0])
    record = run(optim.Newton([x], **kwargs), lambda: rosen(x), iters)
    assert record["converged"], record["message"]
    np.testing.assert_allclose(x.numpy(), [1.0, 1.0], atol=1e-6)


def test_plain_newton_jumps_to_the_saddle_damped_newton_does_not():
    def saddle(x):
        return x[0] ** 2 - x[1] ** 2

    x = t64([1.0, 1e-3])
    optim.Newton([x], modification=None).step(lambda: saddle(x))
    np.testing.assert_allclose(x.numpy(), [0.0, 0.0], atol=1e-15)  # attracted to the saddle
    for modification in ("damping", "abs", "clip"):
        x = t64([1.0, 1e-3])
        opt = optim.Newton([x], modification=modification)
        losses = [float(opt.step(lambda: saddle(x))) for _ in range(6)]
        assert abs(x.numpy()[1]) > 1e-2, modification  # escapes along y
        assert losses[-1] < losses[0] and np.all(np.diff(losses) <= 1e-15)
        assert opt.record["lam"] > 0
    # with a line search, plain Newton notices when it is not descending
    x = t64([1e-3, 1.0])
    opt = optim.Newton([x], modification=None, line_search="armijo")
    opt.step(lambda: saddle(x))
    assert "not a descent direction" in opt.record["message"]


# ---------------------------------------------------------------------------
# Newton-CG, BFGS, L-BFGS on Rosenbrock
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 10, 100])
@pytest.mark.parametrize("name,kwargs", [
    ("NewtonCG", dict()),
    ("NewtonCG", dict(trust_region=True)),
    ("BFGS", dict()),
])
def test_newton_cg_and_bfgs_reach_rosenbrocks_minimum(n, name, kwargs):
    x = t64(rosen_start(n))
    record = run(getattr(optim, name)([x], tolerance_grad=1e-9, **kwargs), lambda: rosen(x),
                 3000)
    assert rosen(x).item() < 1e-12, (record["nit"], record["message"])
    np.testing.assert_allclose(x.numpy(), np.ones(n), atol=1e-5)
    if name == "NewtonCG":
        assert record["nhev"] > 0 and record["nit"] < record["nhev"] + 1


@pytest.mark.parametrize("n,ls", [(2, None), (2, "strong_wolfe"), (10, "strong_wolfe"),
                                  (100, "strong_wolfe")])
def test_lbfgs_reaches_rosenbrocks_minimum(n, ls):
    # (Without a line search, from the standard start in 10+ dimensions it ends in
    # the local minimum near x₁ = -1, as PyTorch's does.)
    x = t64(rosen_start(n))
    opt = optim.LBFGS([x], line_search_fn=ls, max_iter=50 if ls else 100,
                      tolerance_grad=1e-10, tolerance_change=1e-14,
                      lr=1.0 if ls else 0.5)
    closure = backward_closure(opt, lambda: rosen(x))
    for _ in range(200):
        opt.step(closure)
        if rosen(x).item() < 1e-12:
            break
    np.testing.assert_allclose(x.numpy(), np.ones(n), atol=1e-5)
    state = opt.state[x]
    assert state["n_iter"] == state["nit"] and state["func_evals"] == state["nfev"]


def test_lbfgs_matches_pytorch_step_for_step():
    torch = pytest.importorskip("torch")
    for ls in (None, "strong_wolfe"):
        x0 = rosen_start(10)
        xt = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        ot = torch.optim.LBFGS([xt], line_search_fn=ls, max_iter=7, history_size=5)
        x = t64(x0)
        ours = optim.LBFGS([x], line_search_fn=ls, max_iter=7, history_size=5)

        def ct():
            ot.zero_grad()
            v = (100 * (xt[1:] - xt[:-1] ** 2) ** 2 + (1 - xt[:-1]) ** 2).sum()
            v.backward()
            return v

        co = backward_closure(ours, lambda: rosen(x))
        for _ in range(3):
            a = ot.step(ct).item()
            b = ours.step(co).item()
            assert b == pytest.approx(a, rel=1e-9)
        np.testing.assert_allclose(x.numpy(), xt.detach().numpy(), rtol=1e-8, atol=1e-10)
        st, so = ot.state[xt], ours.state[x]
        assert st["func_evals"] == so["func_evals"] and st["n_iter"] == so["n_iter"]
        assert float(st["t"]) == pytest.approx(so["t"], rel=1e-8)
        for key in ("d", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss"):
            assert key in so


def test_lbfgs_defaults_and_errors_are_pytorchs():
    x = t64([1.0])
    opt = optim.LBFGS([x])
    group = opt.param_groups[0]
    assert (group["lr"], group["max_iter"], group["max_eval"], group["tolerance_grad"],
            group["tolerance_change"], group["history_size"], group["line_search_fn"]) == \
        (1, 20, 25, 1e-7, 1e-9, 100, None)
    with pytest.raises(ValueError, match="strong_wolfe"):
        optim.LBFGS([x], line_search_fn="armijo")
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [x]}, {"params": [t64([2.0])]}])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.LBFGS([x], lr=-1)


def test_lbfgs_state_dict_round_trip():
    x = t64(rosen_start(4))
    opt = optim.LBFGS([x], max_iter=3)
    closure = backward_closure(opt, lambda: rosen(x))
    opt.step(closure)
    saved = copy.deepcopy(opt.state_dict())
    x_saved = x.numpy().copy()
    opt.step(closure)
    after = x.numpy().copy()
    x.data[...] = x_saved
    other = optim.LBFGS([x], max_iter=3)
    other.load_state_dict(saved)
    other.step(backward_closure(other, lambda: rosen(x)))
    np.testing.assert_allclose(x.numpy(), after, rtol=1e-12)


# ---------------------------------------------------------------------------
# Line searches
# ---------------------------------------------------------------------------

def _functions():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 6))
    A = A @ A.T + np.eye(6)
    At = tg.tensor(A, dtype="float64")
    return {
        "rosenbrock": (rosen, rosen_start(6)),
        "quadratic": (lambda x: 0.5 * (x * (At @ x)).sum() - x.sum(), rng.standard_normal(6)),
        "logsumexp": (lambda x: (x * x).sum() * 0.1 + (3 * x).exp().sum().log(),
                      rng.standard_normal(6)),
    }


def _grad(fn, x):
    xt = t64(x)
    return tg.grad(fn(xt), xt)[0].numpy()


@pytest.mark.parametrize("name", ["rosenbrock", "quadratic", "logsumexp"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_line_searches_satisfy_their_conditions(name, scale):
    fn, x0 = _functions()[name]
    x = x0.copy()
    c1, c2 = 1e-4, 0.9
    for _ in range(8):  # along a path of steepest-descent directions
        g = _grad(fn, x)
        d = -scale * g
        f0 = fn(t64(x)).item()
        gtd = float(g @ d)
        res = line_search.armijo(fn, tg.tensor(x, dtype="float64"), tg.tensor(d, dtype="float64"))
        assert res.success
        assert fn(t64(x + res.step * d)).item() <= f0 + c1 * res.step * gtd
        res = line_search.strong_wolfe(fn, tg.tensor(x, dtype="float64"), d, c1=c1, c2=c2)
        assert res.success, res
        x_new = x + res.step * d
        assert fn(t64(x_new)).item() <= f0 + c1 * res.step * gtd
        assert abs(_grad(fn, x_new) @ d) <= c2 * abs(gtd)
        assert res.loss == pytest.approx(fn(t64(x_new)).item())
        np.testing.assert_allclose(res.grad.numpy(), _grad(fn, x_new), rtol=1e-12)
        x = x_new


def test_line_searches_refuse_ascent_directions_and_reuse_known_values():
    fn, x0 = _functions()["quadratic"]
    g = _grad(fn, x0)
    res = line_search.armijo(fn, x0, g)
    assert not res.success and "not a descent direction" in res.message
    loss = fn(t64(x0))
    res = line_search.armijo(fn, x0, -g, loss=loss.detach(), grad=g)
    assert res.success


def test_exact_step_is_the_argmin_on_a_quadratic():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5))
    A = A @ A.T + np.eye(5)
    b = rng.standard_normal(5)
    At, bt = tg.tensor(A, dtype="float64"), tg.tensor(b, dtype="float64")

    def q(x):
        return 0.5 * (x * (At @ x)).sum() - (bt * x).sum()

    x = rng.standard_normal(5)
    g = A @ x - b
    d = -g
    res = line_search.exact(q, x, d)
    t = (g @ g) / (g @ A @ g)
    assert res.success and res.step == pytest.approx(t, rel=1e-12)
    assert line_search.quadratic_step(A, g, d) == pytest.approx(t, rel=1e-12)
    assert line_search.quadratic_step(lambda v: A @ v, g, d) == pytest.approx(t, rel=1e-12)
    # along d, the derivative at the step is zero
    assert (A @ (x + t * d) - b) @ d == pytest.approx(0, abs=1e-10)
    bad = line_search.exact(lambda x: -(x * x).sum(), x, d)
    assert not bad.success


@pytest.mark.parametrize("ls", ["exact", "armijo", "strong_wolfe", None])
def test_gd_with_a_line_search(ls):
    # On a quadratic, GD with the exact step is steepest descent:
    # compare with the closed form, and every search decreases the loss.
    A = np.diag([1.0, 10.0])
    At = tg.tensor(A, dtype="float64")
    x = t64([5.0, 1.0])
    opt = optim.GD([x], line_search=ls, lr=0.15 if ls is None else 1.0)
    ref = np.array([5.0, 1.0])
    losses = []
    for _ in range(30):
        losses.append(float(opt.step(lambda: 0.5 * (x * (At @ x)).sum())))
        if ls == "exact":
            g = A @ ref
            ref = ref - (g @ g) / (g @ A @ g) * g
            np.testing.assert_allclose(x.numpy(), ref, rtol=1e-12)
    assert np.all(np.diff(losses) < 0)
    assert losses[-1] < 1e-3 * losses[0]
    assert opt.record["step_size"] is not None


# ---------------------------------------------------------------------------
# minimize(), the record, the closure contract
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bfgs", "l-bfgs", "newton", "newton-cg"])
def test_minimize_returns_an_optimize_result(method):
    res = optim.minimize(rosen, [-1.2, 1.0], method=method, tol=1e-10)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)
    assert isinstance(res.x, np.ndarray) and res.fun < 1e-12
    assert res.nit > 0 and res.nfev >= res.nit and res.njev > 0
    assert len(res.loss_history) >= 1 and res["x"] is res.x
    assert np.abs(res.jac).max() < 1e-5
    assert "message" in repr(res)
    x0 = tg.tensor([-1.2, 1.0], dtype="float64")
    assert isinstance(optim.minimize(rosen, x0, method=method).x, tg.Tensor)


def test_minimize_errors_and_budget():
    with pytest.raises(ValueError, match="unknown method"):
        optim.minimize(rosen, [0.0, 0.0], method="nelder-mead")
    res = optim.minimize(rosen, [-1.2, 1.0], method="gd", maxiter=5)
    assert not res.success and res.status == 1 and "maxiter" in res.message


def test_second_order_closure_contract_errors():
    x = t64([1.0, 2.0])
    opt = optim.Newton([x])

    def pytorch_style():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="do not call backward"):
        opt.step(pytorch_style)
    with pytest.raises(RuntimeError, match="without a graph"):
        opt.step(lambda: (x * x).sum().detach())
    with pytest.raises(RuntimeError, match="needs a closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="scalar"):
        opt.step(lambda: x * x)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.BFGS([{"params": [x]}, {"params": [t64([1.0])]}])
    for cls, kw in ((optim.Newton, dict(modification="magic")),
                    (optim.NewtonCG, dict(line_search="wolfe")),
                    (optim.BFGS, dict(line_search="exact")),
                    (optim.GD, dict(line_search="brent"))):
        with pytest.raises(ValueError):
            cls([x], **kw)


def test_record_counts_evaluations():
    x = t64(rosen_start(4))
    opt = optim.NewtonCG([x])
    opt.step(lambda: rosen(x))
    record = opt.state[x]
    assert record is opt.record
    for key in ("nit", "nfev", "njev", "nhev", "loss_history", "step_size", "lam", "converged",
                "message"):
        assert key in record
    assert record["nit"] == 1 and record["njev"] == 1 and record["nhev"] >= 1
    assert record["loss_history"] == [pytest.approx(rosen(t64(rosen_start(4))).item())]


def test_multiple_parameters_form_one_vector():
    # Newton over two tensors equals Newton over their concatenation.
    rng = np.random.default_rng(0)
    X = tg.tensor(rng.standard_normal((20, 3)), dtype="float64")
    y = tg.tensor(rng.standard_normal(20), dtype="float64")
    w, b = t64(np.zeros(3)), t64([0.0])
    opt = optim.Newton([w, b])
    opt.step(lambda: ((X @ w + b - y) ** 2).mean())
    Xb = np.c_[X.numpy(), np.ones(20)]
    sol = np.linalg.lstsq(Xb, y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(np.r_[w.numpy(), b.numpy()], sol, rtol=1e-10)


@pytest.mark.parametrize("name,kwargs", [("BFGS", {}), ("NewtonCG", {"trust_region": True}),
                                         ("Newton", {"line_search": "armijo"})])
def test_second_order_state_dict_round_trip(name, kwargs):
    x = t64(rosen_start(4))
    opt = getattr(optim, name)([x], **kwargs)
    for _ in range(3):
        opt.step(lambda: rosen(x))
    saved = copy.deepcopy(opt.state_dict())
    x_saved = x.numpy().copy()
    for _ in range(3):
        opt.step(lambda: rosen(x))
    after = x.numpy().copy()
    x.data[...] = x_saved
    other = getattr(optim, name)([x], **kwargs)
    other.load_state_dict(saved)
    for _ in range(3):
        other.step(lambda: rosen(x))
    np.testing.assert_allclose(x.numpy(), after, rtol=1e-12)
    assert other.record["nit"] == 6
