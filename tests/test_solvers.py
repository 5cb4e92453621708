"""Linear solvers (tg.linalg / tg.optim.solvers): CG, PCG, Steihaug, Jacobi,
Gauss-Seidel, steepest descent and the direct route, with A as a matrix, a
Tensor or a function, and their residual histories."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import linalg, optim


def spd(n, cond, seed=0, spacing="log"):
    """A random SPD matrix with eigenvalues in [1, cond], log- or evenly spaced."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    ev = np.logspace(0, np.log10(cond), n) if spacing == "log" else np.linspace(1, cond, n)
    return (Q * ev) @ Q.T


def dominant(n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A + np.diag(np.abs(A).sum(axis=1) + 1.0)


def test_exported_in_both_places():
    assert optim.solvers is linalg.solvers
    assert tg.linalg.cg is linalg.solvers.cg


@pytest.mark.parametrize("n", [50, 100, 400])
def test_cg_solves_spd_to_1e_10_in_at_most_n_iterations(n):
    # Condition number 10^3 (the lecture's race), eigenvalues evenly spread.
    # (In floating point CG loses orthogonality: with eigenvalues clustered
    # log-wise it needs up to ~sqrt(κ)·log(1/tol) steps, more than a small n.)
    A = spd(n, 1e3, spacing="even")
    b = np.random.default_rng(1).standard_normal(n)
    res = linalg.cg(A, b, tol=1e-10)
    assert res.converged and res.niter <= n, res
    assert np.linalg.norm(A @ res.x - b) <= 1e-10 * np.linalg.norm(b)
    assert len(res.residuals) == res.niter + 1
    assert res.residuals[-1] <= 1e-10 * np.linalg.norm(b)
    assert res.residuals[0] == pytest.approx(np.linalg.norm(b))


def test_cg_on_a_small_system_finishes_in_n_steps():
    A = spd(8, 10.0)
    b = np.arange(1.0, 9.0)
    res = linalg.cg(A, b, tol=1e-12)
    assert res.converged and res.niter <= 8
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-10)


def test_gradient_descent_crawls_where_cg_flies():
    n = 200
    A = spd(n, 1e3, seed=3, spacing="even")
    b = np.random.default_rng(2).standard_normal(n)
    cg = linalg.cg(A, b, tol=1e-8)
    gd = linalg.gradient_descent(A, b, tol=1e-8, maxiter=20 * n)
    assert cg.converged and cg.niter <= n
    assert gd.niter > 10 * cg.niter
    # steepest descent with the exact step never increases the A-norm error;
    # its residual history is recorded at every iteration
    assert len(gd.residuals) == gd.niter + 1


def test_cg_accepts_functions_tensors_blocks_and_a_warm_start():
    n = 30
    A = spd(n, 100.0)
    B = np.random.default_rng(0).standard_normal((n, 3))
    exact = np.linalg.solve(A, B)
    # a function on arrays
    res = linalg.cg(lambda v: A @ v, B[:, 0])
    np.testing.assert_allclose(res.x, exact[:, 0], rtol=1e-8)
    # Tensors in, Tensor out; the function receives Tensors
    At = tg.tensor(A, dtype="float64")
    seen = []

    def matvec(v):
        seen.append(type(v))
        return At @ v

    res = linalg.cg(matvec, tg.tensor(B[:, 1], dtype="float64"))
    assert isinstance(res.x, tg.Tensor) and seen[0] is tg.Tensor
    np.testing.assert_allclose(res.x.numpy(), exact[:, 1], rtol=1e-8)
    # a Tensor matrix
    res = linalg.cg(At, B[:, 2])
    np.testing.assert_allclose(res.x, exact[:, 2], rtol=1e-8)
    # a block of right-hand sides: one CG per column
    res = linalg.cg(A, B)
    assert res.converged
    np.testing.assert_allclose(res.x, exact, rtol=1e-8, atol=1e-10)
    # warm start at the solution: nothing to do
    res = linalg.cg(A, B[:, 0], x0=exact[:, 0])
    assert res.niter == 0 and res.converged


def test_cg_one_step_is_an_exact_line_search_from_the_warm_start():
    # ProxProp's prox_cg1: one CG step from x0 is steepest descent on the
    # quadratic with the exact step along the residual.
    A = spd(12, 50.0)
    b = np.ones(12)
    x0 = np.linspace(-1, 1, 12)
    r = b - A @ x0
    expected = x0 + (r @ r) / (r @ A @ r) * r
    res = linalg.cg(A, b, x0=x0, maxiter=1)
    np.testing.assert_allclose(res.x, expected, rtol=1e-12)
    assert not res.converged and res.niter == 1
    x0_copy = np.linspace(-1, 1, 12)
    np.testing.assert_array_equal(x0, x0_copy)  # the warm start is not modified


def test_pcg_needs_fewer_iterations_on_a_badly_scaled_system():
    n = 80
    A = spd(n, 10.0, seed=4)
    D = np.diag(np.logspace(-3, 3, n))
    As = D @ A @ D
    b = np.random.default_rng(5).standard_normal(n)
    plain = linalg.cg(As, b, tol=1e-10, maxiter=20 * n)
    jacobi = linalg.pcg(As, b, tol=1e-10, maxiter=20 * n)
    assert jacobi.converged
    assert jacobi.niter < plain.niter / 3, (jacobi.niter, plain.niter)
    np.testing.assert_allclose(As @ jacobi.x, b, atol=1e-8 * np.linalg.norm(b))
    # a function A with its diagonal given, or probed
    f = linalg.pcg(lambda v: As @ v, b, diag=np.diag(As), tol=1e-10, maxiter=20 * n)
    g = linalg.pcg(lambda v: As @ v, b, tol=1e-10, maxiter=20 * n)
    assert f.niter == jacobi.niter == g.niter


def test_cg_stops_at_negative_curvature():
    A = np.diag([2.0, 1.0, -1.0])
    res = linalg.cg(A, np.ones(3))
    assert res.negative_curvature and not res.converged
    assert "not positive definite" in res.message


@pytest.mark.parametrize("solver", [linalg.jacobi, linalg.gauss_seidel])
def test_splittings_converge_on_diagonally_dominant_systems(solver):
    n = 40
    A = dominant(n)
    b = np.random.default_rng(7).standard_normal(n)
    res = solver(A, b, tol=1e-10)
    assert res.converged, res
    np.testing.assert_allclose(A @ res.x, b, atol=1e-9 * np.linalg.norm(b))
    r = np.asarray(res.residuals)
    assert r[-1] < 1e-10 * np.linalg.norm(b) and len(r) == res.niter + 1
    # a contraction: the residual falls steadily
    assert np.all(r[1:] < r[:-1] * 1.0001)


def test_gauss_seidel_beats_jacobi_and_sor_accepts_omega():
    A = dominant(50, seed=2)
    b = np.ones(50)
    jac = linalg.jacobi(A, b, tol=1e-10)
    gs = linalg.gauss_seidel(A, b, tol=1e-10)
    sor = linalg.gauss_seidel(A, b, tol=1e-10, omega=1.1)
    assert gs.niter < jac.niter
    assert sor.converged
    np.testing.assert_allclose(sor.x, np.linalg.solve(A, b), rtol=1e-8)
    # a function A (materialised by probing)
    fun = linalg.gauss_seidel(lambda v: A @ v, b, tol=1e-10)
    assert fun.niter == gs.niter
    wj = linalg.jacobi(lambda v: A @ v, b, tol=1e-10, omega=0.9)
    assert wj.converged


def test_steihaug_respects_the_trust_region_and_follows_negative_curvature():
    A = spd(20, 100.0)
    g = np.random.default_rng(0).standard_normal(20)
    inside = linalg.steihaug(A, g, radius=1e6)
    np.testing.assert_allclose(inside.x, np.linalg.solve(A, -g), rtol=1e-8)
    assert inside.converged and not inside.on_boundary
    small = linalg.steihaug(A, g, radius=0.05)
    assert small.on_boundary
    assert np.linalg.norm(small.x) == pytest.approx(0.05)
    assert g @ small.x < 0  # a descent step
    H = np.diag([1.0, -2.0])
    neg = linalg.steihaug(H, np.array([1.0, 1.0]), radius=3.0)
    assert neg.negative_curvature and neg.on_boundary
    assert np.linalg.norm(neg.x) == pytest.approx(3.0)
    # no region: negative curvature at once gives scaled steepest descent
    free = linalg.steihaug(np.diag([-1.0, -2.0]), np.array([1.0, 1.0]))
    assert free.negative_curvature
    np.testing.assert_allclose(free.x / np.linalg.norm(free.x), -np.ones(2) / np.sqrt(2))


def test_direct_solves():
    A = spd(6, 10.0)
    b = np.arange(6.0)
    L = linalg.cholesky(A)
    np.testing.assert_allclose(L @ L.T, A, rtol=1e-12)
    np.testing.assert_allclose(linalg.cho_solve(L, b), np.linalg.solve(A, b), rtol=1e-10)
    assert linalg.cholesky(np.diag([1.0, -1.0])) is None
    N = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(linalg.solve(N, np.array([2.0, 3.0])), [3.0, 2.0])
    x = linalg.solve(tg.tensor(A, dtype="float64"), tg.tensor(b, dtype="float64"))
    assert isinstance(x, tg.Tensor)


def test_errors_are_one_clear_sentence():
    with pytest.raises(ValueError, match="square matrix"):
        linalg.cg(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="rows"):
        linalg.cg(np.eye(3), np.ones(4))
    with pytest.raises(ValueError, match="x0 has shape"):
        linalg.cg(np.eye(3), np.ones(3), x0=np.ones(2))
    with pytest.raises(ValueError, match="positive diagonal"):
        linalg.pcg(np.diag([1.0, -1.0]), np.ones(2))
    with pytest.raises(ValueError, match="too large to probe"):
        linalg.pcg(lambda v: v, np.ones(linalg.solvers.PROBE_LIMIT + 1))
    assert "converged" in repr(linalg.cg(np.eye(2), np.ones(2)))


# -- direct solvers, the one entry point, divergence (issue 13, items 4 and 12) ----------------


@pytest.mark.parametrize("method", linalg.solvers.METHODS)
def test_solve_by_every_method_matches_numpy(method):
    A = dominant(12, seed=4)
    A = A @ A.T if method in ("cholesky", "cg", "pcg") else A  # SPD where the method needs it
    b = np.random.default_rng(5).standard_normal(12)
    x = linalg.solve(A, b, method=method)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
    xt = linalg.solve(tg.tensor(A, dtype="float64"), tg.tensor(b, dtype="float64"),
                      method=method)
    assert isinstance(xt, tg.Tensor)
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-10, atol=1e-12)


def test_direct_solvers_match_torch_and_take_blocks():
    torch = pytest.importorskip("torch")
    A = spd(10, 50.0, seed=6)
    B = np.random.default_rng(7).standard_normal((10, 3))
    expected = torch.linalg.solve(torch.tensor(A), torch.tensor(B)).numpy()
    for solver in (linalg.lu_solve, linalg.qr_solve):
        np.testing.assert_allclose(solver(A, B), expected, rtol=1e-10)
    np.testing.assert_allclose(linalg.solve(A, B, method="cholesky"), expected, rtol=1e-10)


def test_direct_solver_errors_are_one_sentence():
    with pytest.raises(ValueError, match=r"must be a square matrix .* got shape \(3, 2\)"):
        linalg.solve(np.ones((3, 2)), np.ones(3), method="qr")
    with pytest.raises(ValueError, match="A has shape"):
        linalg.lu_solve(np.eye(3), np.ones(4))
    with pytest.raises(ValueError, match="is singular"):
        linalg.solve(np.ones((3, 3)), np.ones(3), method="lu")
    with pytest.raises(ValueError, match="is singular"):
        linalg.qr_solve(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="not positive definite; use method='lu'"):
        linalg.solve(np.diag([1.0, -1.0]), np.ones(2), method="cholesky")
    with pytest.raises(ValueError, match="is not symmetric"):
        linalg.solve(np.array([[2.0, 1.0], [0.0, 2.0]]), np.ones(2), method="cholesky")
    with pytest.raises(ValueError, match="unknown method 'svd'"):
        linalg.solve(np.eye(2), np.ones(2), method="svd")
    with pytest.raises(TypeError, match="direct methods take no options"):
        linalg.solve(np.eye(2), np.ones(2), method="lu", tol=1e-3)


NOT_DOMINANT = np.array([[1.0, 3.0], [2.0, 1.0]])


def test_jacobi_and_gauss_seidel_stop_when_they_diverge_and_say_why():
    b = np.ones(2)
    D = np.diag(np.diag(NOT_DOMINANT))
    radius_j = np.abs(np.linalg.eigvals(np.eye(2) - np.linalg.solve(D, NOT_DOMINANT))).max()
    L, U = np.tril(NOT_DOMINANT, -1), np.triu(NOT_DOMINANT, 1)
    radius_gs = np.abs(np.linalg.eigvals(-np.linalg.solve(D + L, U))).max()
    for solver, radius in ((linalg.jacobi, radius_j), (linalg.gauss_seidel, radius_gs)):
        res = solver(NOT_DOMINANT, b)
        assert not res.converged and res.niter < 50  # stopped long before maxiter
        assert np.all(np.isfinite(res.x)) and np.isfinite(res.residuals).all()
        assert res.message.startswith("diverged: the residual grew from")
        assert f"spectral radius {radius:.3g} > 1" in res.message
        assert "diagonally dominant" in res.message
    with pytest.raises(RuntimeError, match="did not converge: diverged"):
        linalg.solve(NOT_DOMINANT, b, method="jacobi")
    fixed = linalg.gradient_descent(np.diag([1.0, 10.0]), b, lr=0.3)
    assert fixed.message.startswith("diverged") and "exceeds 2/λmax(A)" in fixed.message


def test_a_slow_but_convergent_splitting_still_reaches_maxiter_honestly():
    res = linalg.jacobi(dominant(6), np.ones(6), maxiter=2, tol=1e-14)
    assert not res.converged and res.message == "reached maxiter=2"
