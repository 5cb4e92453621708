"""The examples run as a newcomer runs them, and the digits one reaches its promise."""

import time

import numpy as np
import pytest
from _helpers import EXAMPLES, load_example


def test_digits_reaches_97_percent_quickly(capsys):
    pytest.importorskip("sklearn")
    start = time.perf_counter()
    result = load_example("digits").main()  # its defaults, exactly as `python examples/digits.py`
    elapsed = time.perf_counter() - start
    assert result["test_acc"] >= 0.97
    assert elapsed < 30, f"the digits example took {elapsed:.1f} s; it promises well under a minute"
    out = capsys.readouterr().out
    assert "test accuracy" in out and "confusion matrix" in out


def test_moons_runs(capsys):
    result = load_example("moons").main()
    assert result["test_acc"] > 0.9
    out = capsys.readouterr().out
    picture = "".join(out.splitlines()[-20:])  # the decision regions drawn as text
    assert "test accuracy" in out and "o" in picture and "x" in picture


def test_sine_regression_runs(capsys):
    result = load_example("sine_regression").main(epochs=60)
    assert result["test_mse"] < 0.02
    assert "test MSE" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["digits", "moons", "sine_regression"])
def test_examples_stay_short(name):
    assert len((EXAMPLES / f"{name}.py").read_text().splitlines()) < 100


def test_curve_fitting_second_order_methods_reach_the_least_squares_fit(capsys):
    runs = load_example("curve_fitting").main()
    best = runs["Levenberg-Marquardt"]["cost"]
    for name in ("Gauss-Newton", "Levenberg (λI)", "LM, trust region (default)"):
        assert abs(runs[name]["cost"] - best) < 1e-6 * best
    assert runs["GD + Armijo"]["cost"] > 10 * best  # the lesson: GD is far from it
    assert "Levenberg-Marquardt" in capsys.readouterr().out


def test_lbfgs_rosenbrock_converges_where_gd_does_not(capsys):
    out = load_example("lbfgs_rosenbrock").main()
    np.testing.assert_allclose(out["x"], [1.0, 1.0], atol=1e-5)
    assert out["others"]["gd"].fun > 1e-6 and out["others"]["bfgs"].fun < 1e-10
    capsys.readouterr()


def test_newton_solves_linear_regression_in_one_step(capsys):
    out = load_example("newton_linear_regression").main()
    assert out["newton_error"] < 1e-8 < out["gd_error"]
    assert "2XᵀX: True" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["curve_fitting", "lbfgs_rosenbrock",
                                  "newton_linear_regression"])
def test_the_other_examples_stay_short(name):
    assert len((EXAMPLES / f"{name}.py").read_text().splitlines()) < 100
