"""The second-order optimizers, line searches and linear solvers on the strict
device backend (tests/strict_array.py: NumPy dressed as CuPy, which refuses host
arrays and NumPy functions): same numbers as on the CPU, results on the device.
This is what keeps the CuPy path honest without a GPU."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import strict_array as strict
from _helpers import backward_closure, rosen

import tinygrad_opt as tg
from tinygrad_opt import linalg, optim
from tinygrad_opt.optim import line_search

strict.install()
DEV = "strict:0"


def t(a, device):
    return tg.tensor(np.array(a, dtype=np.float64), dtype="float64", device=device,
                     requires_grad=True)


MINIMIZERS = {
    "Newton": dict(), "Newton-abs": dict(modification="abs", line_search="armijo"),
    "NewtonCG": dict(), "NewtonCG-tr": dict(trust_region=True), "BFGS": dict(),
    "GD-exact": dict(line_search="exact"), "GD-wolfe": dict(line_search="strong_wolfe"),
}


@pytest.mark.parametrize("name", sorted(MINIMIZERS))
def test_minimizers_on_the_device_match_the_cpu(name):
    cls = getattr(optim, name.split("-")[0])
    out = {}
    for device in ("cpu", DEV):
        x = t([-1.2, 1.0, -1.2, 1.0], device)
        opt = cls([x], **MINIMIZERS[name])
        losses = [float(opt.step(lambda: rosen(x))) for _ in range(8)]
        assert x.device == device and x.grad.device == device
        out[device] = (x.numpy(), losses)
    np.testing.assert_allclose(out[DEV][0], out["cpu"][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[DEV][1], out["cpu"][1], rtol=1e-10)


LEAST_SQUARES = [("LevenbergMarquardt", dict()), ("LevenbergMarquardt", dict(geodesic=True)),
                 ("LevenbergMarquardt", dict(solver="normal", lambda_update="nielsen")),
                 ("LevenbergMarquardt", dict(damping="levenberg", solver="cg")),
                 ("GaussNewton", dict()), ("GaussNewton", dict(solver="cg")),
                 ("GaussNewton", dict(solver="normal", line_search="armijo"))]


@pytest.mark.parametrize("name,kwargs", LEAST_SQUARES)
def test_least_squares_on_the_device_match_the_cpu(name, kwargs):
    xs = np.linspace(0, 4, 30)
    ys = 2.5 * np.exp(-1.3 * xs) + 0.5
    out = {}
    for device in ("cpu", DEV):
        X = tg.tensor(xs, dtype="float64", device=device)
        Y = tg.tensor(ys, dtype="float64", device=device)
        p = t([2.0, 1.0, 0.3], device)
        opt = getattr(optim, name)([p], **kwargs)
        for _ in range(6):
            opt.step(lambda: p[0] * (-p[1] * X).exp() + p[2] - Y)
        assert p.device == device
        out[device] = p.numpy()
    np.testing.assert_allclose(out[DEV], out["cpu"], rtol=1e-9)
    np.testing.assert_allclose(out[DEV], [2.5, 1.3, 0.5], rtol=1e-6)


def test_lbfgs_and_line_searches_on_the_device():
    x = t([-1.2, 1.0], DEV)
    opt = optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=100, tolerance_change=1e-14)
    opt.step(backward_closure(opt, lambda: rosen(x)))
    assert x.device == DEV
    np.testing.assert_allclose(x.numpy(), [1.0, 1.0], atol=1e-5)
    x = t([-1.2, 1.0], DEV)
    d = tg.tensor([1.0, 0.0], dtype="float64", device=DEV)
    for search in (line_search.armijo, line_search.strong_wolfe, line_search.exact):
        assert search(rosen, x, d).success


@pytest.mark.parametrize("solver", [linalg.cg, linalg.pcg, linalg.jacobi, linalg.gauss_seidel,
                                    linalg.gradient_descent])
def test_linear_solvers_stay_on_the_device(solver):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    A = A @ A.T + 6 * np.eye(6)
    b = rng.standard_normal(6)
    res = solver(strict.strict(A), strict.strict(b), tol=1e-12)
    assert type(res.x) is strict.StrictArray and res.converged
    np.testing.assert_allclose(strict.xp.asnumpy(res.x) if hasattr(strict.xp, "asnumpy")
                               else res.x.get(), np.linalg.solve(A, b), rtol=1e-8)
    fun = solver(lambda v: strict.strict(A) @ v, strict.strict(b), tol=1e-12)
    assert fun.converged


def test_minimize_and_least_squares_keep_the_device():
    x0 = tg.tensor([-1.2, 1.0], dtype="float64", device=DEV)
    res = optim.minimize(rosen, x0, method="bfgs")
    assert isinstance(res.x, tg.Tensor) and res.x.device == DEV
    xs = tg.tensor(np.linspace(0, 1, 10), dtype="float64", device=DEV)
    ys = 3 * xs + 1
    fit = optim.least_squares(lambda p: p[0] * xs + p[1] - ys,
                              tg.tensor([0.0, 0.0], dtype="float64", device=DEV))
    assert fit.x.device == DEV
    np.testing.assert_allclose(fit.x.numpy(), [3.0, 1.0], rtol=1e-10)
