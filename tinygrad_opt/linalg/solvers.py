"""Linear solvers for A x = b, with A a matrix or a function v ↦ A v.

The lecture's last word on linear systems is that gradient descent is not a
way to solve one: for a symmetric positive definite A, conjugate gradient
reaches the solution in at most n iterations (in exact arithmetic), while
gradient descent crawls at a rate set by the condition number. This module
has the iterations the lecture lists, each recording its residual history:

* :func:`cg` -- conjugate gradient (Hestenes & Stiefel 1952), optionally
  preconditioned (``M``); stops at negative curvature, which is what
  Newton-CG needs;
* :func:`pcg` -- CG with the Jacobi (diagonal) preconditioner M = diag(A);
* :func:`steihaug` -- CG inside a trust region (Steihaug 1983, Toint 1981):
  the subproblem solver of trust-region Newton-CG and Gauss-Newton;
* :func:`jacobi` and :func:`gauss_seidel` -- the classic splittings (weighted
  Jacobi; Gauss-Seidel with over-relaxation ``omega``, i.e. SOR);
* :func:`gradient_descent` -- steepest descent on ½xᵀAx - bᵀx with the exact
  step (or a fixed one): the baseline that CG beats;
* :func:`lu_solve`, :func:`qr_solve`, :func:`cholesky` / :func:`cho_solve` -- the
  direct route for dense systems, on the backend's LAPACK (NumPy or CuPy):
  LU with partial pivoting for any nonsingular A, QR (A = QR, then R x = Qᵀb)
  for a better-conditioned solve, Cholesky (A = LLᵀ) for SPD A at half LU's
  cost -- Newton's H d = -g, Gauss-Newton's normal equations;
* :func:`solve` -- one entry point: ``solve(A, b, method="lu" | "qr" |
  "cholesky" | "cg" | "pcg" | "jacobi" | "gauss_seidel")``, the lecture's list
  of ways to solve A x = b.

``A`` is a matrix (a NumPy or CuPy array, or a Tensor) or a callable: it is
called with a vector of the same kind as ``b`` (a Tensor when ``b`` is a
Tensor, an array otherwise) and may return either. ``b`` is a vector (n,) or
a block (n, k) of k independent right-hand sides, which CG solves together
with one step length per column (ProxProp's block CG). The result keeps b's
kind. Everything runs in ``b``'s array namespace (NumPy or CuPy); each
iteration moves one small vector of scalars to the host for its convergence
test, and nothing else.

The stationary iterations (Jacobi, Gauss-Seidel, gradient descent with a fixed
step) converge only when their iteration matrix G (x ← G x + c) has spectral
radius ρ(G) < 1. When the residual grows instead -- non-finite, or 1e4 times
its start, or larger at ``maxiter`` than at the start -- they stop with
``converged=False`` and a message saying so, with ρ(G) when A is a small matrix.

Every iterative solver returns a :class:`SolveResult`: ``x``, ``converged``, ``niter``,
``residuals`` (‖b - A x_k‖ for k = 0..niter, as Python floats; Frobenius norm
for a block) and ``message``.
"""

from dataclasses import dataclass

import numpy as np

from ..backend import to_host, xp_of
from ..tensor import Tensor

__all__ = [
    "SolveResult",
    "as_operator",
    "cg",
    "cho_solve",
    "cholesky",
    "gauss_seidel",
    "gradient_descent",
    "jacobi",
    "lu_solve",
    "pcg",
    "qr_solve",
    "solve",
    "steihaug",
]

# Probing a function for its diagonal or its matrix costs n products.
PROBE_LIMIT = 4096
# A stationary iteration whose residual grows this much has diverged.
DIVERGENCE_GROWTH = 1e4
# Up to this size a diverging splitting reports its iteration matrix's spectral radius.
SPECTRAL_RADIUS_LIMIT = 1000
METHODS = ("lu", "qr", "cholesky", "cg", "pcg", "jacobi", "gauss_seidel")


@dataclass(repr=False, eq=False)  # arrays inside: compared by identity, as before
class SolveResult:
    """What a solver returns (scipy's OptimizeResult in spirit).

    Attributes:
        x: the solution (same kind as ``b``: Tensor or array).
        converged (bool): the residual reached the tolerance.
        niter (int): iterations done.
        residuals (list of float): ‖b - A x_k‖ for k = 0..niter.
        message (str): why it stopped.
        negative_curvature (bool): CG met a direction p with pᵀAp <= 0.
        on_boundary (bool): Steihaug's step ends on the trust-region boundary.
    """

    x: object
    converged: bool
    niter: int
    residuals: list
    message: str
    negative_curvature: bool = False
    on_boundary: bool = False

    def __repr__(self):
        last = self.residuals[-1] if self.residuals else float("nan")
        return (f"SolveResult(converged={self.converged}, niter={self.niter}, "
                f"residual={last:.3e}, message={self.message!r})")


# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------

def _array(v):
    return v.data if isinstance(v, Tensor) else v


def as_operator(A, b):
    """(matvec on arrays, the matrix as an array or None) for ``A`` and a
    right-hand side ``b`` (whose kind, Tensor or array, a callable A receives)."""
    if callable(A) and not hasattr(A, "shape"):
        if isinstance(b, Tensor):
            def matvec(v):
                return _array(A(Tensor.constant(v)))
        else:
            def matvec(v):
                return _array(A(v))
        return matvec, None
    matrix = _array(A)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"linear solver: A must be a square matrix or a function v -> A v, "
                         f"got an array of shape {tuple(matrix.shape)}.")
    return (lambda v: matrix @ v), matrix


def _prepare(A, b, x0):
    """Arrays for b and x0, the operator, and a function giving the result b's kind."""
    bd = _array(b)
    if bd.ndim not in (1, 2):
        raise ValueError(f"linear solver: b must be a vector (n,) or a block (n, k), got shape "
                         f"{tuple(bd.shape)}.")
    if bd.dtype.kind != "f":
        bd = bd.astype("float64")
    matvec, matrix = as_operator(A, b)
    if matrix is not None and matrix.shape[1] != bd.shape[0]:
        raise ValueError(f"linear solver: A has shape {tuple(matrix.shape)} but b has "
                         f"{bd.shape[0]} rows; they must agree.")
    xp = xp_of((bd,))
    if x0 is None:
        x = xp.zeros_like(bd)
    else:
        x = _array(x0).astype(bd.dtype, copy=True)
        if x.shape != bd.shape:
            raise ValueError(f"linear solver: x0 has shape {tuple(x.shape)}, b has "
                             f"{tuple(bd.shape)}; they must match.")
    wrap = (lambda a: Tensor.constant(a)) if isinstance(b, Tensor) else (lambda a: a)
    return xp, bd, x, matvec, matrix, wrap


def _dot(a, c):
    """Column-wise inner products: a scalar for vectors, (k,) for blocks."""
    return (a * c).sum(axis=0)


def _safe_div(xp, num, den):
    """num / den, and 0 where den == 0 (a column that has already converged)."""
    ok = den != 0
    return xp.where(ok, num / xp.where(ok, den, 1), 0)


def _norm(xp, v):
    return xp.sqrt((v * v).sum())


def _host(xp, *scalars):
    """One device-to-host transfer of a few scalars (a no-op copy on NumPy)."""
    return [float(s) for s in to_host(xp.stack([xp.asarray(s, dtype="float64")
                                                for s in scalars]))]


def _diagonal(xp, A, matvec, matrix, n, dtype, diag, who):
    if diag is not None:
        return _array(diag)
    if matrix is not None:
        return xp.diagonal(matrix).copy()
    if n > PROBE_LIMIT:
        raise ValueError(f"{who}: A is a function and n = {n} is too large to probe for its "
                         "diagonal (n products); pass diag= (the diagonal of A).")
    out = xp.empty(n, dtype=dtype)
    e = xp.zeros(n, dtype=dtype)
    for i in range(n):
        e[i] = 1
        out[i] = matvec(e)[i]
        e[i] = 0
    return out


def _dense(xp, matvec, matrix, n, dtype, who):
    if matrix is not None:
        return matrix
    if n > PROBE_LIMIT:
        raise ValueError(f"{who}: A is a function and n = {n} is too large to build as a "
                         "matrix (n products); pass A as a matrix.")
    return xp.stack([matvec(col) for col in xp.eye(n, dtype=dtype)], axis=1)


def _threshold(xp, bd, tol, atol):
    (bnorm,) = _host(xp, _norm(xp, bd))
    return max(tol * bnorm, atol)


def _krylov_start(xp, bd, r, tol, atol, maxiter):
    """What CG and Steihaug set up before iterating: the iteration cap (default 10·n),
    the stopping threshold max(tol·‖b‖, atol) and ‖r₀‖."""
    maxiter = 10 * bd.shape[0] if maxiter is None else int(maxiter)
    (rnorm,) = _host(xp, _norm(xp, r))
    return maxiter, _threshold(xp, bd, tol, atol), rnorm


def _stationary(xp, bd, x, r, step, tol, atol, maxiter, callback, wrap, why_diverged):
    """The loop of the stationary methods (Jacobi, Gauss-Seidel, gradient descent):
    ``x, r = step(x, r)`` until ‖r‖ <= max(tol·‖b‖, atol) or ``maxiter`` steps, recording
    ‖r_k‖ and calling ``callback`` after each step. A growing residual (see the module
    doc) stops it; ``why_diverged()`` then says why in a clause."""
    threshold = _threshold(xp, bd, tol, atol)
    residuals = _host(xp, _norm(xp, r))
    converged, k = residuals[0] <= threshold, 0
    with np.errstate(all="ignore"):  # a diverging iteration overflows: reported, not warned
        while not converged and k < maxiter:
            k += 1
            x, r = step(x, r)
            residuals += _host(xp, _norm(xp, r))
            if callback is not None:
                callback(wrap(x))
            converged = residuals[-1] <= threshold
            if not residuals[-1] <= DIVERGENCE_GROWTH * residuals[0]:  # also catches NaN
                break
    if converged:
        message = f"converged in {k} iterations"
    elif not residuals[-1] <= residuals[0]:
        message = (f"diverged: the residual grew from {residuals[0]:.3g} to "
                   f"{residuals[-1]:.3g} in {k} iterations, because {why_diverged()}")
    else:
        message = f"reached maxiter={maxiter}"
    return SolveResult(wrap(x), converged, k, residuals, message)


def _spectral_radius(G):
    """max |eigenvalue| of the iteration matrix G, on the host (None when too large)."""
    if G is None or G.shape[0] > SPECTRAL_RADIUS_LIMIT:
        return None
    with np.errstate(all="ignore"):
        return float(np.abs(np.linalg.eigvals(np.asarray(to_host(G), dtype=np.float64))).max())


def _radius_clause(G, matrix_name, condition):
    """'the iteration matrix I - ωD⁻¹A has spectral radius 2.3 > 1 (A is not ...)'."""
    rho = _spectral_radius(G)
    size = f"spectral radius {rho:.3g} > 1" if rho is not None else "spectral radius above 1"
    return f"the iteration matrix {matrix_name} has {size} ({condition})"


# ---------------------------------------------------------------------------
# Conjugate gradient
# ---------------------------------------------------------------------------

def cg(A, b, x0=None, *, tol=1e-10, atol=0.0, maxiter=None, M=None, callback=None):
    """Conjugate gradient for a symmetric positive definite A.

    Stops when ‖b - A x‖ <= max(tol·‖b‖, atol) (scipy's rule), after
    ``maxiter`` iterations (default 10·n), or when a search direction p has
    pᵀAp <= 0 -- A is not positive definite there; then ``x`` is the last
    iterate before that direction and ``negative_curvature`` is set (a
    Newton-CG step stops exactly there).

    Args:
        A: matrix or function v ↦ A v.
        b: right-hand side (n,) or block (n, k) (one CG per column).
        x0: starting point (default zeros; ProxProp warm-starts).
        tol, atol: relative and absolute residual tolerances.
        maxiter: iteration cap.
        M: preconditioner: a function r ↦ M⁻¹r, or an array d meaning
            M = diag(d) (r ↦ r / d).
        callback: called as ``callback(x)`` after every iteration.
    """
    xp, bd, x, matvec, _, wrap = _prepare(A, b, x0)
    precondition = _preconditioner(M, b)
    r = bd - matvec(x) if x0 is not None else bd.copy()
    maxiter, threshold, rnorm = _krylov_start(xp, bd, r, tol, atol, maxiter)
    residuals = [rnorm]
    if rnorm <= threshold:
        return SolveResult(wrap(x), True, 0, residuals, "converged: the residual is below "
                           "the tolerance at the start")
    z = precondition(r)
    p = z.copy()
    rz = _dot(r, z)
    message, converged, negative = f"reached maxiter={maxiter}", False, False
    k = 0
    for k in range(1, maxiter + 1):
        Ap = matvec(p)
        pAp = _dot(p, Ap)
        alpha = _safe_div(xp, rz, pAp)
        x += alpha * p
        r -= alpha * Ap
        curvature, rnorm = _host(xp, pAp.min() if pAp.ndim else pAp, _norm(xp, r))
        if curvature <= 0:
            x -= alpha * p  # undo the step along a direction of non-positive curvature
            r += alpha * Ap
            k -= 1
            negative = True
            message = (f"stopped: A is not positive definite along a search direction "
                       f"(pᵀAp = {curvature:.3e})")
            break
        residuals.append(rnorm)
        if callback is not None:
            callback(wrap(x))
        if rnorm <= threshold:
            converged, message = True, f"converged in {k} iterations"
            break
        z = precondition(r)
        rz_new = _dot(r, z)
        beta = _safe_div(xp, rz_new, rz)
        rz = rz_new
        p *= beta
        p += z
    return SolveResult(wrap(x), converged, k, residuals, message, negative_curvature=negative)


def _preconditioner(M, b):
    if M is None:
        return lambda r: r
    if callable(M) and not hasattr(M, "shape"):
        if isinstance(b, Tensor):
            return lambda r: _array(M(Tensor.constant(r)))
        return lambda r: _array(M(r))
    d = _array(M)

    def diagonal(r):
        return r / (d if r.ndim == 1 else d[:, None])

    return diagonal


def pcg(A, b, x0=None, *, diag=None, tol=1e-10, atol=0.0, maxiter=None, callback=None):
    """CG preconditioned by Jacobi: M = diag(A).

    On a badly scaled SPD system (rows and columns of very different sizes)
    this removes the scaling from the condition number and CG needs far fewer
    iterations. ``diag`` is A's diagonal; when A is a function and ``diag`` is
    not given it is probed with n products (n <= 4096).
    """
    xp, bd, _, matvec, matrix, _ = _prepare(A, b, x0)
    d = _diagonal(xp, A, matvec, matrix, bd.shape[0], bd.dtype, diag, "pcg")
    (smallest,) = _host(xp, d.min())
    if smallest <= 0:
        raise ValueError(f"pcg: the Jacobi preconditioner needs a positive diagonal; the "
                         f"smallest diagonal entry is {smallest:.3e}.")
    return cg(A, b, x0, tol=tol, atol=atol, maxiter=maxiter, M=d, callback=callback)


def steihaug(A, g, radius=None, *, tol=1e-10, atol=0.0, maxiter=None, callback=None):
    """Steihaug-Toint CG for the trust-region subproblem

        minimize  m(p) = gᵀp + ½ pᵀAp   subject to  ‖p‖ <= radius,

    i.e. CG on A p = -g from p = 0, stopped early when the iterate leaves the
    region (the step is cut at the boundary) or a direction of non-positive
    curvature appears (the step follows it to the boundary). Returns a
    :class:`SolveResult` whose ``x`` is the step p; ``on_boundary`` and
    ``negative_curvature`` say how it ended. ``radius=None`` means no region:
    then negative curvature stops at the last iterate (or at -g if it is met
    at once, -g scaled by gᵀg/|gᵀAg| as scipy's Newton-CG), the truncated
    Newton-CG step of Nocedal & Wright, Alg. 7.1.
    """
    b = -g if isinstance(g, Tensor) else -_array(g)
    xp, bd, z, matvec, _, wrap = _prepare(A, b, None)
    if bd.ndim != 1:
        raise ValueError("steihaug: g must be a vector.")
    r = bd.copy()            # residual -g - A z  (z = 0)
    d = r.copy()
    maxiter, threshold, rnorm = _krylov_start(xp, bd, r, tol, atol, maxiter)
    residuals = [rnorm]
    if rnorm <= threshold:
        return SolveResult(wrap(z), True, 0, residuals, "converged: the gradient is below "
                           "the tolerance")
    k = 0
    rr_host = rnorm * rnorm
    for k in range(1, maxiter + 1):
        Ad = matvec(d)
        curvature, zd, dd, zz = _host(xp, _dot(d, Ad), _dot(z, d), _dot(d, d), _dot(z, z))
        if curvature <= 0:
            if radius is None:
                if k == 1:  # steepest descent, scaled by |curvature| (as scipy's Newton-CG)
                    return SolveResult(wrap(bd * (rr_host / max(-curvature, 1e-300))), False, 1,
                                       residuals, "negative curvature at once: steepest "
                                       "descent", negative_curvature=True)
                return SolveResult(wrap(z), False, k - 1, residuals,
                                   "stopped at negative curvature", negative_curvature=True)
            z += _to_boundary(zz, zd, dd, radius) * d
            return SolveResult(wrap(z), False, k, residuals, "negative curvature: followed "
                               "to the trust-region boundary", negative_curvature=True,
                               on_boundary=True)
        alpha = rr_host / curvature
        if radius is not None and zz + 2 * alpha * zd + alpha * alpha * dd >= radius * radius:
            z += _to_boundary(zz, zd, dd, radius) * d
            return SolveResult(wrap(z), False, k, residuals, "stopped at the trust-region "
                               "boundary", on_boundary=True)
        z += alpha * d
        r -= alpha * Ad
        (rnorm,) = _host(xp, _norm(xp, r))
        residuals.append(rnorm)
        if callback is not None:
            callback(wrap(z))
        if rnorm <= threshold:
            return SolveResult(wrap(z), True, k, residuals, f"converged in {k} iterations")
        rr_new = rnorm * rnorm
        d *= rr_new / rr_host
        d += r
        rr_host = rr_new
    return SolveResult(wrap(z), False, k, residuals, f"reached maxiter={maxiter}")


def _to_boundary(zz, zd, dd, radius):
    """The τ >= 0 with ‖z + τ d‖ = radius (z inside the region)."""
    c = zz - radius * radius
    disc = max(zd * zd - dd * c, 0.0)
    return (-zd + disc ** 0.5) / dd if dd > 0 else 0.0


# ---------------------------------------------------------------------------
# Splitting methods
# ---------------------------------------------------------------------------

def jacobi(A, b, x0=None, *, omega=1.0, diag=None, tol=1e-10, atol=0.0, maxiter=1000,
           callback=None):
    """Jacobi iteration x ← x + ω D⁻¹ (b - A x), D = diag(A) (ω = 1: plain Jacobi).

    Converges for strictly diagonally dominant A (and for SPD A when ω is
    small enough). One product with A per iteration; ``diag`` as in :func:`pcg`.
    """
    xp, bd, x, matvec, matrix, wrap = _prepare(A, b, x0)
    d = _diagonal(xp, A, matvec, matrix, bd.shape[0], bd.dtype, diag, "jacobi")
    dcol = d[:, None] if bd.ndim == 2 else d

    def step(x, r):
        x += omega * r / dcol
        return x, bd - matvec(x)

    def why_diverged():
        n = d.shape[0]
        G = None if matrix is None or n > SPECTRAL_RADIUS_LIMIT else \
            xp.eye(n, dtype=bd.dtype) - omega * matrix / d[:, None]
        return _radius_clause(G, "I - ωD⁻¹A", "A is not diagonally dominant")

    return _stationary(xp, bd, x, bd - matvec(x), step, tol, atol, maxiter, callback, wrap,
                       why_diverged)


def gauss_seidel(A, b, x0=None, *, omega=1.0, tol=1e-10, atol=0.0, maxiter=1000,
                 callback=None):
    """Gauss-Seidel sweeps, with successive over-relaxation when ω != 1 (SOR).

    With A = D + L + U (diagonal, strictly lower, strictly upper), one forward
    sweep solves (D + ωL) x_new = ω b - (ωU + (ω - 1) D) x: each unknown uses
    the values already updated in the same sweep. Converges for diagonally
    dominant or SPD A (0 < ω < 2). A function A is turned into its matrix
    (n products, n <= 4096).
    """
    xp, bd, x, matvec, matrix, wrap = _prepare(A, b, x0)
    n = bd.shape[0]
    Am = _dense(xp, matvec, matrix, n, bd.dtype, "gauss_seidel")
    D = xp.diag(xp.diagonal(Am))
    lower = xp.tril(Am, -1)
    upper = xp.triu(Am, 1)
    left = D + omega * lower
    right = omega * upper + (omega - 1) * D

    def step(x, r):
        x = _solve_lower(xp, left, omega * bd - right @ x)
        return x, bd - Am @ x

    def why_diverged():
        G = None if n > SPECTRAL_RADIUS_LIMIT else -_solve_lower(xp, left, right)
        return _radius_clause(G, "-(D + ωL)⁻¹(ωU + (ω - 1)D)",
                              "A is neither diagonally dominant nor symmetric positive "
                              "definite with 0 < ω < 2")

    return _stationary(xp, bd, x, bd - Am @ x, step, tol, atol, maxiter, callback, wrap,
                       why_diverged)


def gradient_descent(A, b, x0=None, *, lr=None, tol=1e-10, atol=0.0, maxiter=10000,
                     callback=None):
    """Gradient descent on q(x) = ½xᵀAx - bᵀx, whose gradient is A x - b = -r.

    With ``lr=None`` every step is the exact minimiser along -∇q,
    α = rᵀr / rᵀAr (steepest descent); otherwise the fixed step ``lr``. On an
    SPD system with condition number κ the error falls by about
    (κ - 1)/(κ + 1) per step, against CG's n-step finish: the lecture's "GD is
    not a way to solve a linear system".
    """
    xp, bd, x, matvec, _, wrap = _prepare(A, b, x0)

    def step(x, r):
        Ar = matvec(r)
        alpha = _safe_div(xp, _dot(r, r), _dot(r, Ar)) if lr is None else lr
        x += alpha * r
        r -= alpha * Ar
        return x, r

    def why_diverged():
        if lr is None:
            return "A is not positive definite (the exact step needs rᵀAr > 0)"
        return (f"the step lr={lr:g} exceeds 2/λmax(A) (the iteration matrix I - lr·A has "
                "spectral radius above 1)")

    return _stationary(xp, bd, x, bd - matvec(x), step, tol, atol, maxiter, callback, wrap,
                       why_diverged)


# ---------------------------------------------------------------------------
# Direct solves for small dense systems
# ---------------------------------------------------------------------------

def _solve_lower(xp, L, rhs):
    return _triangular(xp, L, rhs, lower=True)


def _triangular(xp, T, rhs, lower):
    """Solve T x = rhs for triangular T: scipy / cupyx when present, else a general solve."""
    try:
        if xp.__name__ == "numpy":
            from scipy.linalg import solve_triangular  # optional (scipy): this path only
        else:
            from cupyx.scipy.linalg import solve_triangular  # optional (the gpu extra)
    except ImportError:
        return xp.linalg.solve(T, rhs)
    return solve_triangular(T, rhs, lower=lower, check_finite=False)


def cholesky(A):
    """The lower Cholesky factor L (A = L Lᵀ) as an array, or None when A is
    not (numerically) positive definite. Works on NumPy, which raises, and
    CuPy, which returns NaNs (checked with one host transfer)."""
    Am = _array(A)
    xp = xp_of((Am,))
    try:
        L = xp.linalg.cholesky(Am)
    except ValueError:  # numpy.linalg.LinAlgError (cupy's too, when it raises)
        return None
    if xp.__name__ != "numpy" and not bool(to_host(xp.isfinite(L).all())):
        return None
    return L


def cho_solve(L, b):
    """Solve (L Lᵀ) x = b from the Cholesky factor L (two triangular solves)."""
    L = _array(L)
    bd = _array(b)
    xp = xp_of((L,))
    y = _triangular(xp, L, bd, lower=True)
    x = _triangular(xp, L.T, y, lower=False)
    return Tensor.constant(x) if isinstance(b, Tensor) else x


def _direct_arrays(A, b, who):
    """(xp, A, b) as arrays after the checks every direct solve needs."""
    Am, bd = _array(A), _array(b)
    if Am.ndim != 2 or Am.shape[0] != Am.shape[1]:
        raise ValueError(f"{who}: A must be a square matrix (n, n) for A x = b to have one "
                         f"solution, got shape {tuple(Am.shape)}; for a rectangular A solve "
                         "the least-squares problem (optim.least_squares or numpy.linalg."
                         "lstsq).")
    if bd.ndim not in (1, 2) or bd.shape[0] != Am.shape[0]:
        raise ValueError(f"{who}: A has shape {tuple(Am.shape)} but b has shape "
                         f"{tuple(bd.shape)}; b must be ({Am.shape[0]},) or "
                         f"({Am.shape[0]}, k).")
    return xp_of((Am,)), Am, bd


def _like_b(x, b):
    return Tensor.constant(x) if isinstance(b, Tensor) else x


def _singular(who, Am):
    return ValueError(f"{who}: A ({Am.shape[0]} × {Am.shape[1]}) is singular, so A x = b has "
                      "no unique solution; check for dependent rows, or solve the "
                      "least-squares problem instead.")


def lu_solve(A, b):
    """A x = b by LU with partial pivoting, PA = LU (LAPACK's gesv through
    ``xp.linalg.solve``): about ⅔n³ flops, any nonsingular A."""
    xp, Am, bd = _direct_arrays(A, b, "lu_solve")
    try:
        x = xp.linalg.solve(Am, bd)
    except ValueError:  # numpy.linalg.LinAlgError: "Singular matrix"
        raise _singular("lu_solve", Am) from None
    if xp.__name__ != "numpy" and not bool(to_host(xp.isfinite(x).all())):
        raise _singular("lu_solve", Am)  # CuPy returns NaNs instead of raising
    return _like_b(x, b)


def qr_solve(A, b):
    """A x = b by Householder QR, A = QR, then R x = Qᵀb by back substitution.
    About twice LU's flops, but Q is orthogonal, so it never squares the
    condition number -- the route of choice for least squares."""
    xp, Am, bd = _direct_arrays(A, b, "qr_solve")
    Q, R = xp.linalg.qr(Am)
    diag = xp.abs(xp.diagonal(R))
    smallest, largest = _host(xp, diag.min(), diag.max())
    if not smallest > Am.shape[0] * np.finfo(np.float64).eps * largest:
        raise _singular("qr_solve", Am)
    return _like_b(_triangular(xp, R, Q.T @ bd, lower=False), b)


def _cholesky_solve(A, b):
    """A x = b by Cholesky, A = LLᵀ, for symmetric positive definite A (one sentence if not)."""
    xp, Am, _ = _direct_arrays(A, b, "solve")
    asym, scale = _host(xp, xp.abs(Am - Am.T).max(), xp.abs(Am).max())
    symmetric = asym <= 1e-12 * scale
    L = cholesky(Am) if symmetric else None
    if L is None:
        raise ValueError(f"solve: method='cholesky' needs a symmetric positive definite A, and "
                         f"this {Am.shape[0]} × {Am.shape[1]} A is "
                         f"{'not positive definite' if symmetric else 'not symmetric'}; use "
                         "method='lu'.")
    return cho_solve(L, b)


def solve(A, b, method=None, **options):
    """Solve A x = b by ``method``; returns x (a Tensor when b is one).

    * ``"lu"`` (:func:`lu_solve`), ``"qr"`` (:func:`qr_solve`), ``"cholesky"``
      (SPD A: :func:`cholesky` then :func:`cho_solve`) -- direct, on LAPACK;
    * ``"cg"``, ``"pcg"``, ``"jacobi"``, ``"gauss_seidel"`` -- iterative; ``options``
      go to :func:`cg`, :func:`pcg`, :func:`jacobi` or :func:`gauss_seidel` (``tol``,
      ``maxiter``, ``omega``, ...). One that does not converge raises a
      RuntimeError with its reason; call the function itself for the
      :class:`SolveResult` and its residual history;
    * ``None`` (default): Cholesky when A is symmetric positive definite, else LU.
    """
    direct = {"lu": lu_solve, "qr": qr_solve, "cholesky": _cholesky_solve}
    iterative = {"cg": cg, "pcg": pcg, "jacobi": jacobi, "gauss_seidel": gauss_seidel}
    if method is not None and method not in direct and method not in iterative:
        raise ValueError(f"solve: unknown method {method!r}; choose from "
                         f"{', '.join(METHODS)}.")
    if method in iterative:
        result = iterative[method](A, b, **options)
        if not result.converged:
            raise RuntimeError(f"solve: method={method!r} did not converge: {result.message}.")
        return result.x
    if options:
        raise TypeError(f"solve: the direct methods take no options, got {sorted(options)}; "
                        "they belong to an iterative method (method='cg', ...).")
    if method is not None:
        return direct[method](A, b)
    _, Am, _ = _direct_arrays(A, b, "solve")
    L = cholesky(Am)
    return cho_solve(L, b) if L is not None else lu_solve(A, b)
