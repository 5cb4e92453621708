"""A race of linear solvers on A x = b: the lecture's "Linear Systems (Ax = b): LU, QR,
Cholesky, Jacobi, Gauss-Seidel, CG, PCG", with gradient descent as the baseline.

    from tinygrad_opt.study import solver_race
    A, b = solver_race.poisson_system(8, scale_decades=2)
    result = solver_race.race(A, b)
    print(result.format_table())
    plots.solver_race(result, "solvers.png")

Each iterative method records its relative residual ‖b - A x_k‖/‖b‖ per
iteration (one product with A each; Gauss-Seidel's sweep costs about the
same); a direct method (LU, QR, Cholesky) is one factorisation, drawn as a
single point at the residual it reaches. The default system is the 2-D Poisson
matrix (the 5-point Laplacian on a k × k grid: SPD, weakly diagonally
dominant, κ growing like k²), optionally scaled symmetrically, D A D with D
spread over ``scale_decades`` decades: Jacobi and Gauss-Seidel do not notice
the scaling (their iteration matrices are similar to the unscaled ones), CG
slows down by far, and PCG -- CG preconditioned by diag(A) -- undoes it.
"""

import time

import numpy as np

from ..linalg import solvers
from .race import format_rows

__all__ = ["DIRECT", "ITERATIVE", "SolverRace", "SolverRun", "poisson_system", "race"]

ITERATIVE = {
    "gd": lambda A, b, tol, maxiter: solvers.gradient_descent(A, b, tol=tol, maxiter=maxiter),
    "cg": lambda A, b, tol, maxiter: solvers.cg(A, b, tol=tol, maxiter=maxiter),
    "pcg": lambda A, b, tol, maxiter: solvers.pcg(A, b, tol=tol, maxiter=maxiter),
    "jacobi": lambda A, b, tol, maxiter: solvers.jacobi(A, b, tol=tol, maxiter=maxiter),
    "gauss_seidel": lambda A, b, tol, maxiter: solvers.gauss_seidel(A, b, tol=tol,
                                                                    maxiter=maxiter),
}
DIRECT = ("lu", "qr", "cholesky")
DEFAULT_METHODS = ("gd", "jacobi", "gauss_seidel", "cg", "pcg", "lu", "qr", "cholesky")


def poisson_system(k=8, scale_decades=0.0, seed=0):
    """(A, b): the 5-point Laplacian on a k × k grid (n = k²), scaled to D A D with D's
    entries log-uniform over ``scale_decades`` decades, and a seeded random b."""
    if k < 2:
        raise ValueError(f"poisson_system: k={k} must be at least 2 (a k × k grid).")
    T = 2 * np.eye(k) - np.eye(k, k=1) - np.eye(k, k=-1)
    A = np.kron(T, np.eye(k)) + np.kron(np.eye(k), T)
    rng = np.random.default_rng(seed)
    d = 10.0 ** rng.uniform(0, scale_decades, k * k)
    return d[:, None] * A * d[None, :], rng.standard_normal(k * k)


class SolverRun:
    """One method: ``residuals`` (relative, per iteration; one value for a direct
    method), ``niter``, ``converged``, ``message``, ``seconds`` and ``direct``."""

    def __init__(self, method, residuals, niter, converged, message, seconds, direct):
        self.method, self.residuals, self.niter = method, residuals, niter
        self.converged, self.message, self.seconds, self.direct = converged, message, \
            seconds, direct

    def to_dict(self):
        return {"method": self.method, "residuals": [float(r) for r in self.residuals],
                "niter": self.niter, "converged": self.converged, "message": self.message,
                "seconds": self.seconds, "direct": self.direct}


class SolverRace:
    """The runs of one race, in the order asked, with the table the command line prints."""

    def __init__(self, n, tol, runs):
        self.n, self.tol, self.runs = n, tol, runs

    def __getitem__(self, method):
        for run in self.runs:
            if run.method == method:
                return run
        raise KeyError(f"no run {method!r}; the race has "
                       f"{', '.join(r.method for r in self.runs)}.")

    def table(self):
        return [{"method": r.method, "iterations": None if r.direct else r.niter,
                 "final_residual": float(r.residuals[-1]), "converged": r.converged,
                 "seconds": r.seconds, "message": r.message} for r in self.runs]

    def format_table(self):
        head = ["method", "iterations", "‖b-Ax‖/‖b‖", "converged", "ms"]
        body = [[r["method"], "direct" if r["iterations"] is None else str(r["iterations"]),
                 f"{r['final_residual']:.2e}", "yes" if r["converged"] else "no",
                 f"{1e3 * r['seconds']:.2f}"] for r in self.table()]
        return (f"linear solvers on A x = b, n = {self.n}, tol = {self.tol:g}\n"
                + format_rows(head, body))

    def to_dict(self):
        return {"n": self.n, "tol": self.tol, "runs": [r.to_dict() for r in self.runs]}


def _direct_run(method, A, b, bnorm):
    start = time.perf_counter()
    try:
        x = solvers.solve(A, b, method=method)
    except ValueError as error:  # e.g. Cholesky on a matrix that is not SPD
        return SolverRun(method, [np.nan], 0, False, str(error), time.perf_counter() - start,
                         True)
    seconds = time.perf_counter() - start
    residual = float(np.linalg.norm(b - A @ x)) / bnorm
    return SolverRun(method, [residual], 1, True, "factorised and solved", seconds, True)


def race(A, b, methods=DEFAULT_METHODS, tol=1e-10, maxiter=2000):
    """Solve A x = b with each of ``methods`` (see ``ITERATIVE`` and ``DIRECT``);
    returns a :class:`SolverRace` whose runs hold the relative residual curves."""
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or b.shape != (A.shape[0],):
        raise ValueError(f"solver race: A must be square (n, n) and b a vector (n,), got "
                         f"shapes {A.shape} and {b.shape}.")
    unknown = [m for m in methods if m not in ITERATIVE and m not in DIRECT]
    if unknown:
        raise ValueError(f"solver race: unknown method(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(list(ITERATIVE) + list(DIRECT))}.")
    bnorm = float(np.linalg.norm(b)) or 1.0
    runs = []
    for method in methods:
        if method in DIRECT:
            runs.append(_direct_run(method, A, b, bnorm))
            continue
        start = time.perf_counter()
        result = ITERATIVE[method](A, b, tol, maxiter)
        seconds = time.perf_counter() - start
        runs.append(SolverRun(method, np.asarray(result.residuals) / bnorm, result.niter,
                              result.converged, result.message, seconds, False))
    return SolverRace(A.shape[0], tol, runs)
