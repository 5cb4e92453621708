"""The linear-solver race (study.solver_race, ``tinygrad-opt solver-race``): the lecture's
"LU, QR, Cholesky, Jacobi, Gauss-Seidel, CG, PCG" on a scaled 2-D Poisson system."""

import json

import numpy as np
import pytest

from tinygrad_opt.cli import main
from tinygrad_opt.study import solver_race


def test_poisson_matrix_is_the_five_point_laplacian():
    A, b = solver_race.poisson_system(3)
    assert A.shape == (9, 9) and b.shape == (9,)
    np.testing.assert_array_equal(np.diag(A), 4.0)
    assert A[4].tolist() == [0, -1, 0, -1, 4, -1, 0, -1, 0]  # the centre of the 3 × 3 grid
    eigenvalues = np.linalg.eigvalsh(A)  # 4 - 2cos(iπ/4) - 2cos(jπ/4), i, j = 1..3
    grid = np.arange(1, 4) * np.pi / 4
    expected = np.sort((4 - 2 * np.cos(grid)[:, None] - 2 * np.cos(grid)[None, :]).ravel())
    np.testing.assert_allclose(eigenvalues, expected, atol=1e-12)


def test_the_race_orders_the_methods_as_the_lecture_says():
    A, b = solver_race.poisson_system(6, scale_decades=2)
    result = solver_race.race(A, b, tol=1e-8, maxiter=1000)
    for method in ("jacobi", "gauss_seidel", "cg", "pcg", "lu", "qr", "cholesky"):
        assert result[method].converged, (method, result[method].message)
        assert result[method].residuals[-1] <= 1e-8
    assert not result["gd"].converged  # the scaled system defeats plain gradient descent
    assert result["gauss_seidel"].niter < result["jacobi"].niter
    assert result["pcg"].niter < result["cg"].niter / 3  # diag(A) undoes the scaling
    assert all(result[m].residuals[-1] < 1e-12 for m in ("lu", "qr", "cholesky"))
    assert "pcg" in result.format_table()


def test_scaling_leaves_jacobi_alone_and_slows_cg():
    plain = solver_race.race(*solver_race.poisson_system(6), ("jacobi", "cg"), tol=1e-8)
    scaled = solver_race.race(*solver_race.poisson_system(6, scale_decades=2), ("jacobi", "cg"),
                              tol=1e-8)
    # the same spectral radius; the residual is measured in another norm, hence the slack
    assert abs(plain["jacobi"].niter - scaled["jacobi"].niter) <= 0.25 * plain["jacobi"].niter
    assert scaled["cg"].niter > 2 * plain["cg"].niter


def test_bad_requests_are_one_sentence():
    A, b = solver_race.poisson_system(3)
    with pytest.raises(ValueError, match="unknown method"):
        solver_race.race(A, b, ("cg", "multigrid"))
    with pytest.raises(ValueError, match="must be square"):
        solver_race.race(A[:, :4], b)


def test_the_command_prints_the_table_and_writes_the_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code = main(["solver-race", "--grid", "5", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "gauss_seidel" in out and "cholesky" in out
    saved = json.loads((tmp_path / "solvers.json").read_text())
    assert [r["method"] for r in saved["runs"]] == list(solver_race.DEFAULT_METHODS)
    assert (tmp_path / "solvers.png").stat().st_size > 5000
    assert main(["solver-race", "--methods", "cg,qwerty", "--out", str(tmp_path)]) == 2
