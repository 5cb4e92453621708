"""Newton's method with the exact Hessian from double backward."""

from ..autograd.batched import hessian_from_gradient
from ..backend import host_floats
from ..linalg import solvers
from ._second_order import SecondOrderOptimizer, check_choice

MODIFICATIONS = (None, "damping", "abs", "clip")
LINE_SEARCHES = (None, "armijo", "strong_wolfe")


class Newton(SecondOrderOptimizer):
    r"""Newton's method: θ ← θ + t d with H d = -g.

    The lecture's update θ_{k+1} = θ_k - H⁻¹∇L(θ_k): step to the minimum of
    the local quadratic model. The gradient is computed with
    ``create_graph=True`` and the exact Hessian is its Jacobian, taken in one
    batched double-backward pass; H d = -g is solved by Cholesky
    (``tg.linalg.cholesky``). On linear least squares (a quadratic loss) one
    step lands on the minimum from any start.

    Where H is not positive definite the plain step may climb or stop at a
    saddle (on x² - y² it jumps straight to the saddle (0, 0)).
    ``modification`` says what to do:

    * ``None`` -- the plain Newton step, whatever H is (LU; least squares
      when H is singular);
    * ``"damping"`` (default) -- Cholesky of H + λI with λ raised until it
      succeeds: λ₀ = 0 if min Hᵢᵢ > 0 else -min Hᵢᵢ + β, then λ ← max(2λ, β)
      with β = 1e-3·max(1, max|Hᵢᵢ|) (Nocedal & Wright, Alg. 3.3); λ = 0 when
      H is positive definite, so the step is then Newton's own;
    * ``"abs"`` -- eigenvalues replaced by max(|λᵢ|, δ): negative curvature
      becomes positive, so saddles repel (saddle-free Newton, Dauphin et al. 2014);
    * ``"clip"`` -- eigenvalues replaced by max(λᵢ, δ).

    δ is ``min_curvature``. With ``line_search`` the step length t comes
    from Armijo backtracking or the strong Wolfe search starting at ``lr``;
    without, t = ``lr`` (1: the pure Newton step).

    Closure contract: ``closure()`` returns the loss with its graph; one
    ``step(closure)`` is one iteration and returns the loss at its start.
    Record (``state[first param]``): ``nit``, ``nfev``, ``njev``, ``nhev``,
    ``loss_history``, ``step_size``, ``lam`` (the damping used), ``message``.
    The full Hessian costs O(n²) memory and O(n³) per solve: for large models
    use :class:`NewtonCG`.
    """

    def __init__(self, params, lr=1.0, modification="damping", line_search=None,
                 min_curvature=1e-8, tolerance_grad=1e-7, c1=1e-4, c2=0.9):
        check_choice("Newton", "modification", modification, MODIFICATIONS)
        check_choice("Newton", "line_search", line_search, LINE_SEARCHES)
        defaults = dict(lr=lr, modification=modification, line_search=line_search,
                        min_curvature=min_curvature, tolerance_grad=tolerance_grad, c1=c1, c2=c2)
        super().__init__(params, defaults)

    def _iterate(self, closure, record):
        group = self.param_groups[0]
        xp = self._xp
        loss, grads, g = self._loss_and_grad(closure, create_graph=True)
        f0, gmax = host_floats(xp, loss.data.reshape(()), xp.abs(g).max())
        result = loss.detach()
        if self._begin_iteration(record, f0, g, gmax):
            return result
        H = hessian_from_gradient(grads, self._params, xp, self._numel)
        record["nhev"] += 1
        d, lam = newton_direction(xp, H, g, group["modification"], group["min_curvature"])
        record["lam"] = lam
        t = group["lr"]
        search = group["line_search"]
        if search is not None:
            (gtd,) = host_floats(xp, (g * d).sum())
            if not gtd < 0:  # not a descent direction (plain Newton at a saddle)
                self._finish(record, f"stopped: the Newton direction is not a descent "
                             f"direction (gᵀd = {gtd:.3e})", converged=False)
                return result
            t, _ = self._line_search(closure, search, self._gather(), d, t, f0, g, gtd, group)
        self._add(d, t)
        record["step_size"] = t
        return result


def newton_direction(xp, H, g, modification, min_curvature=1e-8):
    """d solving (modified) H d = -g, and the damping λ used (0 if none)."""
    n = H.shape[0]
    if modification is None:
        try:
            return xp.linalg.solve(H, -g), 0.0
        except ValueError:  # LinAlgError, singular: the least-squares (pseudo-inverse) step
            return xp.linalg.lstsq(H, -g, rcond=None)[0], 0.0
    if modification == "damping":
        diag = xp.diagonal(H)
        dmin, dmax = host_floats(xp, diag.min(), xp.abs(diag).max())
        beta = 1e-3 * max(1.0, dmax)
        lam = 0.0 if dmin > 0 else -dmin + beta
        eye = xp.eye(n, dtype=H.dtype)
        for _ in range(100):
            L = solvers.cholesky(H + lam * eye if lam else H)
            if L is not None:
                return solvers.cho_solve(L, -g), lam
            lam = max(2 * lam, beta)
        raise RuntimeError("Newton: could not make H + λI positive definite (is the Hessian "
                           "finite?).")
    w0, V = xp.linalg.eigh(H)
    w = xp.maximum(xp.abs(w0) if modification == "abs" else w0, min_curvature)
    (shift,) = host_floats(xp, xp.abs(w - w0).max())
    return -(V @ ((V.T @ g) / w)), shift
