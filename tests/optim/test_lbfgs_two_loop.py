"""The L-BFGS two-loop recursion against the explicit BFGS inverse-Hessian updates."""

import numpy as np

from tinygrad_opt.optim.lbfgs import CurvatureHistory, two_loop_direction


def _explicit_inverse(pairs, gamma, n):
    """H_k from H₀ = γI by H ← (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ, oldest pair first."""
    H = gamma * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (y @ s)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


def test_two_loop_direction_is_minus_the_bfgs_inverse_times_the_gradient():
    rng = np.random.default_rng(0)
    n, size = 6, 3
    A = rng.standard_normal((n, n))
    A = A @ A.T + n * np.eye(n)  # SPD: every pair has yᵀs > 0
    history = CurvatureHistory([], [], [])
    pairs = []
    for _ in range(5):  # more pairs than the history keeps: the oldest drop out
        s = rng.standard_normal(n)
        y = A @ s
        history.push(s, y, y @ s, size)
        pairs = (pairs + [(s, y)])[-size:]
    g = rng.standard_normal(n)
    gamma = (pairs[-1][1] @ pairs[-1][0]) / (pairs[-1][1] @ pairs[-1][1])
    assert len(history.dirs) == size and np.isclose(history.H_diag, gamma, rtol=1e-14)
    d, alphas = two_loop_direction(g, history)
    np.testing.assert_allclose(d, -_explicit_inverse(pairs, gamma, n) @ g, rtol=1e-12,
                               atol=1e-12)
    assert len(alphas) == size
