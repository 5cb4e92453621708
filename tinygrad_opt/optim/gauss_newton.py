"""Nonlinear least squares: Gauss-Newton and Levenberg-Marquardt.

Both minimise L(θ) = ½‖r(θ)‖² for a residual vector r (m entries) of n
parameters. The closure returns r -- a Tensor with its graph -- and the
optimizer takes the Jacobian J = ∂r/∂θ (m × n) from autograd itself
(``tg.autograd.batched.jacobian_matrix``: all m rows in one batched reverse
pass when m is small, else the n columns by the double-vjp trick in one
batched pass). Then ∇L = Jᵀr and ∇²L ≈ JᵀJ: the Hessian without second
derivatives (the lecture: H_f ≈ 2JᵀJ for f = ‖r‖²).

* Gauss-Newton solves JᵀJ δ = -Jᵀr -- the least-squares problem
  min ‖r + Jδ‖ of the linearised residual.
* Levenberg damps it: (JᵀJ + λI) δ = -Jᵀr; small λ is Gauss-Newton, large
  λ a short gradient step.
* Marquardt scales the damping by the curvature of each parameter:
  (JᵀJ + λ D²) δ = -Jᵀr with D² = diag(JᵀJ) ("scale each component of the
  gradient according to the curvature").

Linear algebra (``solver``): ``"svd"`` (default) works with the SVD of the
scaled Jacobian J D⁻¹ -- it never squares the condition number, which is
what the ill-conditioned NIST problems (Hahn1, MGH10) need; ``"normal"``
forms the normal equations (Cholesky, ``tg.linalg.cholesky``, for
Gauss-Newton; an eigendecomposition of D⁻¹JᵀJD⁻¹ for LM); ``"cg"`` never
forms J: conjugate gradient (``tg.linalg.cg`` / ``tg.linalg.steihaug``) on
products J v (double-vjp) and Jᵀw (one backward) -- Gauss-Newton and
Levenberg for models with many parameters.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..autograd import grad as _grad
from ..autograd.batched import jacobian_matrix
from ..backend import host_floats, to_host
from ..linalg import solvers
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from . import line_search as ls
from ._second_order import SecondOrderOptimizer, check_choice, evaluate

SOLVERS = ("svd", "normal", "cg")
JACOBIANS = ("auto", "rows", "columns")


def _host_array(a):
    return np.asarray(to_host(a), dtype=np.float64)


class _DampedSystem:
    """(J̃ᵀJ̃ + λI) q = -ĝ for the scaled Jacobian J̃ = J D⁻¹ and ĝ = D⁻¹Jᵀr,
    diagonalised once per iteration: J̃ᵀJ̃ = V diag(w) Vᵀ, a = -Vᵀĝ, so that
    q(λ) = V (a / (w + λ)) for every λ at the cost of a product. w and a are
    n-vectors kept on the host too, where the trust-region radius equation
    ‖q(λ)‖ = Δ is solved."""

    def __init__(self, xp, J, r, D, solver):
        Js = J / D
        m, n = J.shape
        if solver == "svd":
            # More parameters than residuals: the full V spans the null space too (w = 0).
            _, s, Vt = xp.linalg.svd(Js, full_matrices=m < n)
            V = Vt.T
            w = s * s
            if w.shape[0] < n:
                w = xp.concatenate([w, xp.zeros(n - w.shape[0], dtype=w.dtype)])
        else:  # the normal equations
            w, V = xp.linalg.eigh(Js.T @ Js)
            w = xp.maximum(w, 0)
        a = -(V.T @ (Js.T @ r))
        self.xp, self.V, self.D = xp, V, D
        self.w, self.a = w, a
        self.wh, self.ah = _host_array(w), _host_array(a)
        wmax = float(self.wh.max()) if self.wh.size else 0.0
        # singular values below max(m, n)·eps·s_max count as zero (lstsq's rcond)
        self.rank_tol = wmax * (max(J.shape) * np.finfo(np.float64).eps) ** 2
        self.Js = Js

    def coefficients(self, lam, cutoff=False):
        """a / (w + λ) on the host. At λ = 0 a zero curvature wᵢ with aᵢ != 0
        gives an infinite step (the trust region then picks λ > 0); with
        ``cutoff`` (Gauss-Newton's pseudo-inverse) wᵢ below the rank tolerance
        are dropped instead."""
        w = self.wh
        if lam > 0:
            return self.ah / (w + lam)
        small = w <= (self.rank_tol if cutoff else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = self.ah / np.where(small, 1.0, w)
        if cutoff:
            return np.where(small, 0.0, c)
        return np.where(small & (self.ah != 0), np.inf, np.where(small, 0.0, c))

    def model_decrease(self):
        """The largest decrease of ‖r + Jδ‖² the linear model allows -- the
        Gauss-Newton step's, Σ aᵢ²/wᵢ over the curvatures above the rank
        tolerance (‖r‖² minus the squared distance from r to J's range)."""
        keep = self.wh > self.rank_tol
        return float(np.sum(self.ah[keep] ** 2 / self.wh[keep]))

    def scaled_norm(self, lam):
        c = self.coefficients(lam)
        return math.sqrt(float(c @ c))

    def step(self, lam, cutoff=False):
        """δ = D⁻¹ q(λ) on the device."""
        xp = self.xp
        c = xp.asarray(self.coefficients(lam, cutoff), dtype=self.V.dtype)
        return (self.V @ c) / self.D

    def solve(self, rhs_scaled, lam):
        """D⁻¹ (J̃ᵀJ̃ + λI)⁻¹ rhs_scaled (the geodesic acceleration's system)."""
        xp = self.xp
        b = self.V.T @ rhs_scaled
        w = self.w
        keep = (w + lam) > self.rank_tol
        c = xp.where(keep, b / xp.where(keep, w + lam, 1), 0)
        return (self.V @ c) / self.D

    def radius_lambda(self, delta, lam0):
        """λ >= 0 with ‖q(λ)‖ within 10% of Δ (Hebden/Moré's Newton iteration on
        1/‖q(λ)‖ - 1/Δ, kept inside a shrinking bracket); λ = 0 when the
        Gauss-Newton step is already inside the region."""
        n0 = self.scaled_norm(0.0)
        if n0 <= 1.1 * delta:
            return 0.0, n0
        w, a = self.wh, self.ah
        hi = math.sqrt(float(a @ a)) / delta
        lo = 0.0
        lam = lam0 if lo < lam0 < hi else 1e-3 * hi
        nq = n0
        for _ in range(60):
            q = a / (w + lam)
            nq = math.sqrt(float(q @ q))
            if abs(nq - delta) <= 0.1 * delta:
                break
            if nq > delta:
                lo = max(lo, lam)
            else:
                hi = min(hi, lam)
            slope = float(np.sum(q * q / (w + lam))) / nq  # -d‖q‖/dλ
            new = lam + (nq / delta) * (nq - delta) / slope if slope > 0 else hi
            if not lo < new < hi:
                new = max(math.sqrt(lo * hi), 1e-3 * hi) if lo > 0 else 1e-3 * hi
            lam = new
        return lam, nq


class _LeastSquares(SecondOrderOptimizer):
    """Shared machinery: residual evaluations, Jacobians, matrix-free products."""

    def _residual(self, closure):
        """The residual Tensor (with its graph) at the current θ."""
        r = evaluate(closure, type(self).__name__)
        return r

    def _trial(self, closure, x0, step):
        """r(θ0 + step) as a flat array (possibly not finite: the caller rejects it);
        θ stays at θ0 -- the caller moves it once a trial is accepted."""
        # a wild trial may overflow: it is rejected
        with self._evaluated_at(x0 + step), no_grad(), np.errstate(all="ignore"):
            r = closure()
        self.record["nfev"] += 1
        rd = r.data.reshape(-1) if isinstance(r, Tensor) else self._xp.asarray(r).reshape(-1)
        return rd

    def _jacobian(self, r):
        self.record["njev"] += 1
        return jacobian_matrix(r, self._params, self.param_groups[0]["jacobian"])

    def _matrix_free(self, r):
        """(J v, Jᵀ w) as functions on flat arrays, through the graph of r."""
        xp = self._xp
        params = self._params
        rflat = r.reshape(-1)
        with enable_grad():
            u = Tensor._make(xp.zeros(rflat.shape, dtype=r.dtype), True, None)
            gx = _grad([rflat], params, [u], retain_graph=True, create_graph=True,
                       allow_unused=True)
        live = [k for k, g in enumerate(gx) if g is not None and g.requires_grad]
        record = self.record
        record.setdefault("jacobian_products", 0)

        def jv(v):
            record["jacobian_products"] += 1
            views = self._views(v)
            with enable_grad():
                total = None
                for k in live:
                    term = (gx[k] * Tensor.constant(views[k])).sum()
                    total = term if total is None else total + term
                if total is None:
                    return xp.zeros(rflat.shape, dtype=r.dtype)
                (out,) = _grad([total], [u], retain_graph=True, allow_unused=True)
            return out.data if out is not None else xp.zeros(rflat.shape, dtype=r.dtype)

        def jtv(w):
            record["jacobian_products"] += 1
            with enable_grad():
                out = _grad([rflat], params, [Tensor.constant(w)], retain_graph=True,
                            allow_unused=True)
            return self._vector(out)

        return jv, jtv

    def _start(self, closure, record):
        """r (flat array), its Tensor, and ½‖r‖² at the start of an iteration."""
        r = self._residual(closure)
        rd = r.data.reshape(-1)
        state = self.state[self._params[0]]
        cached = state.get("_accepted")
        same = False
        if cached is not None:
            same = bool(host_floats(self._xp, self._xp.all(self._gather() == cached[0]))[0])
        if not same:
            record["nfev"] += 1
        return r, rd, (cached[1] if same and cached[1] is not None else None)


class GaussNewton(_LeastSquares):
    r"""Gauss-Newton for nonlinear least squares: δ = argmin ‖r + J δ‖.

    The lecture's GN step, solving JᵀJ δ = -Jᵀr (``solver="normal"``: by
    Cholesky, ``tg.linalg.cholesky``) -- or, better conditioned, the same
    least-squares problem through the SVD of J (``"svd"``, default; the
    pseudo-inverse when J is rank deficient), or matrix-free by conjugate
    gradient on J v and Jᵀw products (``"cg"``, ``tg.linalg.cg``). The step
    θ ← θ + t δ uses t = ``lr``, or Armijo backtracking on ½‖r‖² from ``lr``
    with ``line_search="armijo"`` (damped Gauss-Newton). ``converged`` is set
    when max|Jᵀr| <= ``tolerance_grad`` or the Gauss-Newton step δ itself (not
    t·δ: a small t is no sign of convergence) is below ``xtol``·(‖θ‖ + ``xtol``).

    Closure contract: ``closure()`` returns the residual vector r (any
    shape) with its graph; the loss is ½‖r‖². One ``step(closure)`` is one
    iteration; it returns ½‖r‖² at its start. Record: ``nit``, ``nfev``,
    ``njev``, ``loss_history``, ``step_size``, ``message``.
    """

    def __init__(self, params, lr=1.0, line_search=None, solver="svd", jacobian="auto",
                 tolerance_grad=1e-12, xtol=1e-10, cg_tol=1e-10, max_cg_iter=None, c1=1e-4):
        check_choice("GaussNewton", "solver", solver, SOLVERS)
        check_choice("GaussNewton", "jacobian", jacobian, JACOBIANS)
        if line_search not in (None, "armijo"):
            raise ValueError(f"GaussNewton: line_search must be None or 'armijo', got "
                             f"{line_search!r}.")
        defaults = dict(lr=lr, line_search=line_search, solver=solver, jacobian=jacobian,
                        tolerance_grad=tolerance_grad, xtol=xtol, cg_tol=cg_tol,
                        max_cg_iter=max_cg_iter, c1=c1)
        super().__init__(params, defaults)

    def _iterate(self, closure, record):
        group = self.param_groups[0]
        xp = self._xp
        r, rd, _ = self._start(closure, record)
        (ff,) = host_floats(xp, (rd * rd).sum())
        f0 = 0.5 * ff
        record["nit"] += 1
        record["loss_history"].append(f0)
        result = Tensor.constant(xp.asarray(f0, dtype=rd.dtype))
        if group["solver"] == "cg":
            jv, jtv = self._matrix_free(r)
            g = jtv(rd)
            solve = solvers.cg(lambda v: jtv(jv(v)), -g, tol=group["cg_tol"],
                               maxiter=group["max_cg_iter"])
            d = solve.x
            record["cg_iterations"] = solve.niter
        else:
            J = self._jacobian(r)
            g = J.T @ rd
            d = None
            if group["solver"] == "normal":
                L = solvers.cholesky(J.T @ J)
                if L is not None:
                    d = solvers.cho_solve(L, -g)
            if d is None:  # column scaling leaves the step alone and sharpens the rank test
                cn = xp.sqrt((J * J).sum(axis=0))
                D = xp.where(cn > 0, cn, 1)
                d = _DampedSystem(xp, J, rd, D, "svd").step(0.0, cutoff=True)
        self._set_grads(g)
        gmax, gtd = host_floats(xp, xp.abs(g).max(), (g * d).sum())
        if gmax <= group["tolerance_grad"]:
            self._finish(record, "converged: max|Jᵀr| <= tolerance_grad")
            return result
        t = group["lr"]
        if group["line_search"] == "armijo":
            x0 = self._gather()
            if not gtd < 0:
                self._finish(record, "stopped: the Gauss-Newton direction is not a descent "
                             "direction", converged=False)
                return result

            def phi(step):
                rt = self._trial(closure, x0, step * d)
                return 0.5 * host_floats(xp, (rt * rt).sum())[0]

            t, _, _, ok = ls.armijo_on_phi(phi, f0, gtd, t, group["c1"])
            if not ok:
                self._finish(record, "stopped: no decrease along the Gauss-Newton direction",
                             converged=False)
                return result
        x_before = self._gather()
        self._add(d, t)
        record["step_size"] = t
        if group["xtol"] > 0:  # the full step: a short lr or a backtracked t is not convergence
            dn, xn = host_floats(xp, xp.sqrt((d * d).sum()), xp.sqrt((x_before ** 2).sum()))
            if dn <= group["xtol"] * (xn + group["xtol"]):
                self._finish(record, "converged: xtol (the relative step is below xtol)")
        return result


class LevenbergMarquardt(_LeastSquares):
    r"""Levenberg-Marquardt: (JᵀJ + λ D²) δ = -Jᵀr, with λ adapted every iteration.

    ``damping="marquardt"`` (default) uses D² = diag(JᵀJ) -- kept as the
    running maximum of the column norms of J, as MINPACK does, so that the
    scaling never shrinks -- and ``damping="levenberg"`` uses D = I.

    How λ moves (``lambda_update``), all following the lecture's rule "raise
    λ when the cost does not fall":

    * ``"trust_region"`` (default; Moré 1978, MINPACK's ``lmder``): the step
      is the minimiser of the linear model within ‖D δ‖ <= Δ; λ is the value
      that puts it on that boundary (found from the SVD by a few Newton
      iterations), or 0 when the Gauss-Newton step is inside. The radius Δ
      starts at ``factor``·‖D θ₀‖ and follows the gain ratio
      ρ = actual / predicted reduction of ‖r‖²: shrunk (×0.1 to ×0.5) when
      ρ < 1/4, doubled (to 2‖D δ‖) when ρ > 3/4; the step is taken when
      ρ >= 1e-4;
    * ``"nielsen"`` (Nielsen 1999; Madsen, Nielsen & Tingleff): λ ×= max(1/3,
      1 - (2ρ - 1)³) after a success, λ ×= ν, ν ×= 2 after a failure;
    * ``"multiplicative"`` (Marquardt 1963, the textbook rule): λ /= ``lam_down``
      after a success, λ ×= ``lam_up`` after a failure.

    ``lam`` is the starting λ (default 1e-3 for Marquardt's scaling,
    1e-3·λ_max(JᵀJ) for Levenberg's, 1e-3 with ``solver="cg"``, which never
    sees JᵀJ whole); the trust-region variant starts from the radius instead.

    ``geodesic=True`` adds Transtrum & Sethna's geodesic acceleration (2012):
    the second directional derivative r_vv of r along the LM step v (one
    extra residual evaluation, a finite difference with step ``geodesic_h``)
    gives a correction a solving the same damped system with -Jᵀr_vv, and
    the step becomes v + a/2 when 2‖Da‖ <= ``geodesic_alpha``·‖Dv‖. It follows
    curved valleys (Rosenbrock, BoxBOD, Bennett5, MGH17) in far fewer
    iterations. It is switched off near convergence (predicted relative
    decrease below 1e-6), where the finite difference is noise.

    When the predicted relative decrease of ‖r‖² is below ``noise_tol``
    (1e-10), the gain ratio is rounding noise: near the solution of a
    small-residual problem a Gauss-Newton step that would gain digits in θ
    can look like a failure, and on a plateau (BoxBOD from NIST's first
    start, where exp(-b₂x) ≈ 0 flattens the model in b₂) the model predicts
    almost nothing while the step is sound. There a trial is taken, with a
    neutral ratio that leaves Δ alone, if ‖r‖ did not grow; if it grew, it
    is taken when the scaled gradient ‖D⁻¹Jᵀr‖ falls (the Jacobian at the
    trial is then reused by the next iteration). This is what lets
    Levenberg-Marquardt certify all 54 NIST runs (MINPACK's stops at
    BoxBOD's plateau) and reach 10+ digits where MINPACK stops at 6-8.

    Stopping tests, as MINPACK (their names are scipy's): ``ftol`` -- the
    actual and predicted relative reductions of ‖r‖² are both <= ftol;
    ``xtol`` -- Δ <= xtol·‖Dθ‖ (the relative step for the λ rules);
    ``gtol`` -- max_j |(Jᵀr)_j| / (‖J_j‖‖r‖) <= gtol. When one holds,
    ``converged`` is set, ``message`` says which, and later steps only
    evaluate the residual. A value of 0 switches a test off.

    A small step or a small decrease is not convergence by itself: a large λ
    (or a small radius) makes both small far from any minimum -- plain
    Levenberg on Misra1a takes steps below xtol after three iterations while
    ‖r‖² is still falling 500-fold. So the ftol and xtol tests count only
    when the Gauss-Newton model itself has nothing left to give: the
    largest relative decrease of ‖r‖² it predicts (undamped, (‖r‖² -
    dist(r, range J)²)/‖r‖², a scale-free measure of the gradient) is at
    most max(ftol, noise_tol), or when the trial was rejected -- a step that
    small in a descent direction fails only where the gradient is rounding
    noise (Lanczos1's floor). Otherwise the iteration goes on (the λ rules
    shrink λ after each success), ending at most with ``converged=False``:
    λ beyond 1e32, ``max_trials`` failures, or the caller's budget.

    Closure contract: ``closure()`` returns the residual vector r (any
    shape) with its graph; the loss is ½‖r‖². One ``step(closure)`` is one
    iteration: one Jacobian and as many trial residuals as it takes to find
    an acceptable step (at most ``max_trials``); it returns ½‖r‖² at its
    start. Record (``state[first param]``): ``nit``, ``nfev``, ``njev``,
    ``loss_history``, ``lam`` and ``lam_history`` (λ per iteration),
    ``radius``, ``step_size`` (‖δ‖), ``converged``, ``message``.

    ``solver="cg"`` (matrix-free, Levenberg damping only): CG on
    (JᵀJ + λI) δ = -Jᵀr, or Steihaug-CG in the trust region.
    """

    def __init__(self, params, damping="marquardt", lambda_update="trust_region", lam=None,
                 factor=100.0, lam_up=10.0, lam_down=10.0, geodesic=False,
                 geodesic_alpha=0.75, geodesic_h=0.1, solver="svd", jacobian="auto",
                 ftol=1e-8, xtol=1e-8, gtol=1e-8, noise_tol=1e-10, max_trials=50,
                 cg_tol=1e-10, max_cg_iter=None):
        if damping not in ("marquardt", "levenberg"):
            raise ValueError(f"LevenbergMarquardt: damping must be 'marquardt' or "
                             f"'levenberg', got {damping!r}.")
        if lambda_update not in ("trust_region", "nielsen", "multiplicative"):
            raise ValueError(f"LevenbergMarquardt: lambda_update must be 'trust_region', "
                             f"'nielsen' or 'multiplicative', got {lambda_update!r}.")
        check_choice("LevenbergMarquardt", "solver", solver, SOLVERS)
        check_choice("LevenbergMarquardt", "jacobian", jacobian, JACOBIANS)
        if solver == "cg" and damping == "marquardt":
            raise ValueError("LevenbergMarquardt: solver='cg' never forms J, so it cannot "
                             "scale by diag(JᵀJ); use damping='levenberg' with it.")
        if solver == "cg" and geodesic:
            raise ValueError("LevenbergMarquardt: geodesic acceleration needs a direct "
                             "solver ('svd' or 'normal').")
        defaults = dict(damping=damping, lambda_update=lambda_update, lam=lam, factor=factor,
                        lam_up=lam_up, lam_down=lam_down, geodesic=geodesic,
                        geodesic_alpha=geodesic_alpha, geodesic_h=geodesic_h, solver=solver,
                        jacobian=jacobian, ftol=ftol, xtol=xtol, gtol=gtol,
                        noise_tol=noise_tol, max_trials=max_trials, cg_tol=cg_tol,
                        max_cg_iter=max_cg_iter)
        super().__init__(params, defaults)

    # -- one iteration ------------------------------------------------------------------

    def _iterate(self, closure, record):
        group = self.param_groups[0]
        xp = self._xp
        state = self.state[self._params[0]]
        record.setdefault("lam_history", [])
        record.setdefault("radius", None)
        r, rd, J = self._start(closure, record)
        state["_accepted"] = None
        (ff,) = host_floats(xp, (rd * rd).sum())
        record["nit"] += 1
        record["loss_history"].append(0.5 * ff)
        result = Tensor.constant(xp.asarray(0.5 * ff, dtype=rd.dtype))
        if record["converged"]:
            return result
        if ff == 0:
            self._finish(record, "converged: the residual is exactly zero")
            return result
        if group["solver"] == "cg":
            steps = _MatrixFreeSteps(self, r, rd, ff, group)
        else:
            steps = _DenseSteps(self, closure, r, rd, J, ff, group, state, first=record["nit"] == 1)
            if group["gtol"] > 0 and steps.gradient_cosine() <= group["gtol"]:
                self._finish(record, "converged: gtol (the residual is orthogonal to the "
                             "columns of J)")
                return result
        self._trials(closure, record, state, group, steps)
        record["lam_history"].append(record["lam"])
        return result

    def _trials(self, closure, record, state, group, steps):
        """The trial loop: ``steps`` proposes a step for the current λ (or radius),
        the residual there decides (gain ratio), λ or Δ moves, and the loop ends at
        the first accepted step, a stopping test, or ``max_trials`` rejections."""
        x0 = self._gather()
        xnorm = steps.norm(x0)
        self._init_damping(state, group, xnorm, steps)
        for _ in range(group["max_trials"]):
            proposal = steps.propose(state, group["lambda_update"])
            trial = self._judge(closure, x0, proposal, steps, group)
            self._update_damping(state, group, trial)
            if trial.accepted:
                record["step_size"] = proposal.pnorm
                xnorm = steps.norm(x0 + proposal.step)
            record["lam"] = proposal.lam
            record["radius"] = state.get("delta")
            if proposal.cg_iterations is not None:
                record["cg_iterations"] = proposal.cg_iterations
            # model_gain() may still differentiate the graph recorded at θ0: move θ after it
            stop = self._stopping(record, group, state, trial, xnorm, steps.model_gain)
            if trial.accepted:
                self._assign(x0 + proposal.step)
                state["_accepted"] = [self._gather(), trial.jacobian]
            if stop or trial.accepted:
                return
        self._finish(record, f"stopped: no acceptable step in max_trials="
                     f"{group['max_trials']} trials", converged=False)

    @staticmethod
    def _init_damping(state, group, xnorm, steps):
        """The first radius Δ = factor·‖Dθ‖ (trust region) or the first λ (λ rules)."""
        if group["lambda_update"] == "trust_region":
            if state.get("delta") is None:
                state["delta"] = group["factor"] * xnorm if xnorm > 0 else group["factor"]
                state["par"] = 0.0
        elif state.get("lam_value") is None:
            state["lam_value"] = (float(group["lam"]) if group["lam"] is not None
                                  else steps.default_lam())
            state["nu"] = 2.0

    def _judge(self, closure, x0, proposal, steps, group):
        """Evaluate r(θ0 + step) and judge the step by its gain ratio ρ = actual /
        predicted relative reduction of ‖r‖² (see the class doc for the rounding-noise
        regime, where ρ alone cannot judge)."""
        rn = self._trial(closure, x0, proposal.step)
        with np.errstate(all="ignore"):
            (fn2,) = host_floats(self._xp, (rn * rn).sum())
        fn1 = math.sqrt(fn2) if math.isfinite(fn2) else math.inf
        fnorm, prered = steps.fnorm, proposal.prered
        actred = 1.0 - (fn1 / fnorm) ** 2 if 0.1 * fn1 < fnorm else -1.0
        ratio = actred / prered if prered > 0 else 0.0
        jacobian = None
        if (steps.rescues_noise and ratio < 1e-4 and math.isfinite(fn1)
                and 0 < prered < group["noise_tol"]):
            if actred >= 0:
                ratio = 0.5
            else:
                ratio, jacobian = steps.judge_by_gradient(closure, x0, proposal.step)
        threshold = 1e-4 if group["lambda_update"] == "trust_region" else 1e-12
        return _Trial(ratio, actred, prered, proposal.dirder, proposal.pnorm, fn1, fnorm,
                      ratio >= threshold, jacobian)

    @staticmethod
    def _update_damping(state, group, trial):
        """Move Δ (trust region) or λ after a trial with gain ratio ``trial.ratio``."""
        ratio = trial.ratio
        update = group["lambda_update"]
        if update == "trust_region":  # MINPACK lmder's radius rules
            delta = state["delta"]
            if ratio <= 0.25:
                if trial.actred >= 0:
                    temp = 0.5
                else:  # the minimiser of the quadratic through f0, f'(0) and f(1)
                    denom = trial.dirder + 0.5 * trial.actred
                    temp = 0.5 * trial.dirder / denom if denom != 0 else 0.1
                if 0.1 * trial.fnorm_new >= trial.fnorm or temp < 0.1:
                    temp = 0.1
                state["delta"] = temp * min(delta, trial.pnorm / 0.1)
                state["par"] = state["par"] / temp
            elif state["par"] == 0 or ratio >= 0.75:
                state["delta"] = trial.pnorm / 0.5
                state["par"] = 0.5 * state["par"]
        elif update == "nielsen":
            if ratio > 0:
                state["lam_value"] *= max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
                state["nu"] = 2.0
            else:
                state["lam_value"] *= state["nu"]
                state["nu"] *= 2.0
        elif ratio > 0:
            state["lam_value"] /= group["lam_down"]
        else:
            state["lam_value"] *= group["lam_up"]

    def _stopping(self, record, group, state, trial, xnorm, model_gain):
        """MINPACK's ftol and xtol tests, each certified: by a rejected trial (a step
        this small that does not decrease ‖r‖ means the gradient is below what
        rounding resolves), or by ``model_gain()`` -- the relative decrease of ‖r‖²
        the undamped Gauss-Newton model still predicts -- at most max(ftol, noise_tol)."""
        ftol, xtol = group["ftol"], group["xtol"]
        trust_region = group["lambda_update"] == "trust_region"
        small_decrease = (ftol > 0 and abs(trial.actred) <= ftol and trial.prered <= ftol
                          and 0.5 * trial.ratio <= 1)
        size = state["delta"] if trust_region else trial.pnorm
        small_step = xtol > 0 and size <= xtol * (xnorm + (0 if trust_region else xtol))
        if (small_decrease or small_step) and (
                not trial.accepted or model_gain() <= max(ftol, group["noise_tol"])):
            if small_decrease:
                self._finish(record, "converged: ftol (the relative reduction of ‖r‖² is below "
                             "ftol)")
            else:
                self._finish(record, "converged: xtol (the relative step is below xtol)")
            return True
        if not trust_region and state["lam_value"] > 1e32:
            self._finish(record, "stopped: λ grew beyond 1e32 without a decrease",
                         converged=False)
            return True
        return False


# -- the step proposers of Levenberg-Marquardt -------------------------------------------

@dataclass
class _Proposal:
    """A step for one λ: ``pnorm`` = ‖Dδ‖; ``prered`` and ``dirder`` are the predicted
    relative reduction of ‖r‖² and its directional derivative along the step, both
    from the linear model r + Jδ and relative to ‖r₀‖²."""

    step: object
    lam: float
    pnorm: float
    prered: float
    dirder: float
    cg_iterations: int = None


@dataclass
class _Trial:
    """A trial judged: the gain ratio and what the damping rules read."""

    ratio: float
    actred: float
    prered: float
    dirder: float
    pnorm: float
    fnorm_new: float  # ‖r(θ0 + δ)‖ (inf when not finite)
    fnorm: float  # ‖r(θ0)‖
    accepted: bool
    jacobian: object = None  # J at the trial, when the noise rule computed it


class _DenseSteps:
    """Steps from the SVD (or eigendecomposition) of the scaled Jacobian J D⁻¹: for a
    given λ the exact solution of (JᵀJ + λD²) δ = -Jᵀr; in the trust region λ is the
    one that puts ‖Dδ‖ on the radius Δ. Optional geodesic acceleration."""

    rescues_noise = True  # in the rounding-noise regime it judges by the gradient

    def __init__(self, opt, closure, r, rd, J, ff, group, state, first):
        xp = opt._xp
        if J is None:
            J = opt._jacobian(r)
        g = J.T @ rd
        opt._set_grads(g)
        cn = xp.sqrt((J * J).sum(axis=0))
        if group["damping"] == "marquardt":
            D = state.get("D")
            D = cn if D is None else xp.maximum(D, cn)
            D = xp.where(D > 0, D, 1)
            state["D"] = D
        else:
            D = xp.ones_like(cn)
        self.opt, self.closure, self.xp, self.group = opt, closure, xp, group
        self.rd, self.J, self.g, self.D, self.cn = rd, J, g, D, cn
        self.ff, self.fnorm = ff, math.sqrt(ff)
        self.first = first  # the first iteration clips Δ to the first step
        self.system = _DampedSystem(xp, J, rd, D, "svd" if group["solver"] == "svd"
                                    else "normal")

    def gradient_cosine(self):
        """max_j |(Jᵀr)_j| / (‖J_j‖‖r‖), the gtol measure."""
        xp = self.xp
        (cosine,) = host_floats(xp, (xp.abs(self.g) / xp.where(self.cn > 0, self.cn, 1)).max()
                         / self.fnorm)
        return cosine

    def default_lam(self):
        return 1e-3 if self.group["damping"] == "marquardt" else 1e-3 * float(self.system.wh.max())

    def norm(self, x):
        """‖D x‖."""
        return math.sqrt(host_floats(self.xp, ((self.D * x) ** 2).sum())[0])

    def model_gain(self):
        return self.system.model_decrease() / self.ff

    def propose(self, state, update):
        xp, system, D = self.xp, self.system, self.D
        if update == "trust_region":
            lam, _ = system.radius_lambda(state["delta"], state["par"])
            state["par"] = lam
        else:
            lam = state["lam_value"]
        p = system.step(lam)
        Jp = self.J @ p
        Dp = D * p
        jpn, dpn = host_floats(xp, (Jp * Jp).sum(), (Dp * Dp).sum())
        pnorm = math.sqrt(dpn)
        if update == "trust_region" and self.first:
            state["delta"] = min(state["delta"], pnorm)
            self.first = False
        prered = (jpn + 2.0 * lam * dpn) / self.ff
        dirder = -(jpn + lam * dpn) / self.ff
        if self.group["geodesic"] and prered > 1e-6:
            step = self._accelerate(p, pnorm, lam)
            if step is not p:  # the linear model along the accelerated step
                Js = self.J @ step
                Ds = D * step
                lin, rjs, ds2 = host_floats(xp, ((self.rd + Js) ** 2).sum(), (self.rd * Js).sum(),
                                     (Ds * Ds).sum())
                return _Proposal(step, lam, math.sqrt(ds2), (self.ff - lin) / self.ff,
                                 rjs / self.ff)
        return _Proposal(p, lam, pnorm, prered, dirder)

    def _accelerate(self, v, vnorm, lam):
        """Geodesic acceleration: v + a/2, or v when the correction is too large."""
        xp, opt, system = self.xp, self.opt, self.system
        h = self.group["geodesic_h"]
        r2 = opt._trial(self.closure, opt._gather(), h * v)  # θ stays θ0 during the trials
        rvv = (2.0 / h) * ((r2 - self.rd) / h - self.J @ v)
        a = system.solve(-(system.Js.T @ rvv), lam)
        (anorm,) = host_floats(xp, xp.sqrt(((self.D * a) ** 2).sum()))
        if math.isfinite(anorm) and 2.0 * anorm <= self.group["geodesic_alpha"] * vnorm:
            return v + 0.5 * a
        return v

    def judge_by_gradient(self, closure, x0, step):
        """In the rounding-noise regime: accept the trial (ratio 0.5, with the Jacobian
        there) if ‖D⁻¹Jᵀr‖ falls, else reject it (ratio 0)."""
        xp, opt, D = self.xp, self.opt, self.D
        with opt._evaluated_at(x0 + step):
            r = opt._residual(closure)
            Jn = opt._jacobian(r)
        gn = Jn.T @ r.data.reshape(-1)
        new, old = host_floats(xp, xp.sqrt(((gn / D) ** 2).sum()),
                               xp.sqrt(((self.g / D) ** 2).sum()))
        if new < old:
            return 0.5, Jn
        return 0.0, None


class _MatrixFreeSteps:
    """Steps by conjugate gradient on products J v and Jᵀw (Levenberg damping, D = I):
    CG on (JᵀJ + λI) δ = -Jᵀr for the λ rules, Steihaug-CG inside the radius Δ for
    the trust region (λ reported as 0)."""

    rescues_noise = False  # no Jacobian to judge a trial by its gradient

    def __init__(self, opt, r, rd, ff, group):
        self.jv, self.jtv = opt._matrix_free(r)
        self.g = self.jtv(rd)
        opt._set_grads(self.g)
        self.xp, self.rd, self.group = opt._xp, rd, group
        self.ff, self.fnorm = ff, math.sqrt(ff)

    @staticmethod
    def default_lam():
        return 1e-3  # JᵀJ is never seen whole

    def norm(self, x):
        return math.sqrt(host_floats(self.xp, (x * x).sum())[0])

    def _normal_product(self, v, lam=0.0):
        """(JᵀJ + λI) v."""
        out = self.jtv(self.jv(v))
        return out + lam * v if lam else out

    def model_gain(self):
        """The Gauss-Newton step by CG (only when a stopping test fires)."""
        group = self.group
        d = solvers.cg(self._normal_product, -self.g, tol=group["cg_tol"],
                       maxiter=group["max_cg_iter"]).x
        (lin,) = host_floats(self.xp, ((self.rd + self.jv(d)) ** 2).sum())
        return (self.ff - lin) / self.ff

    def propose(self, state, update):
        group = self.group
        if update == "trust_region":
            lam = 0.0
            solve = solvers.steihaug(self._normal_product, self.g, state["delta"],
                                     tol=group["cg_tol"], maxiter=group["max_cg_iter"])
        else:
            lam = state["lam_value"]
            solve = solvers.cg(lambda v: self._normal_product(v, lam), -self.g,
                               tol=group["cg_tol"], maxiter=group["max_cg_iter"])
        p = solve.x
        Jp = self.jv(p)
        lin, pn2, rjp = host_floats(self.xp, ((self.rd + Jp) ** 2).sum(), (p * p).sum(),
                             (self.rd * Jp).sum())
        return _Proposal(p, lam, math.sqrt(pn2), (self.ff - lin) / self.ff, rjp / self.ff,
                         solve.niter)
