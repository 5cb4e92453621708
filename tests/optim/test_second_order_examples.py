"""The second-order examples run as a newcomer runs them and show what they promise."""


import numpy as np
from _helpers import load_example


def test_curve_fitting_side_by_side(capsys):
    runs = load_example("curve_fitting").main()
    lm = runs["Levenberg-Marquardt"]
    np.testing.assert_allclose(lm["params"], [200, 0.5], rtol=0.01)
    for name in ("Gauss-Newton", "Levenberg (λI)", "LM, trust region (default)"):
        np.testing.assert_allclose(runs[name]["params"], lm["params"], rtol=1e-7)
    assert runs["GD + Armijo"]["nit"] > 50 * lm["nit"]  # GD crawls
    assert lm["lam"][-1] < lm["lam"][0]  # λ falls as the steps succeed
    out = capsys.readouterr().out
    assert "λ trace" in out and "Gauss-Newton" in out


def test_newton_linear_regression_in_one_step(capsys):
    result = load_example("newton_linear_regression").main()
    assert result["newton_error"] < 1e-9 and result["gd_error"] > 1e-3
    assert "2XᵀX: True" in capsys.readouterr().out


def test_lbfgs_rosenbrock(capsys):
    result = load_example("lbfgs_rosenbrock").main()
    np.testing.assert_allclose(result["x"], [1.0, 1.0], atol=1e-8)
    assert result["first"] <= 44  # scipy's L-BFGS-B needs 44, PyTorch's LBFGS 44
    assert "L-BFGS" in capsys.readouterr().out
