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

import numpy as np

from ..autograd import grad as _grad
from ..autograd.batched import jacobian_matrix
from ..backend import to_host
from ..function import enable_grad, no_grad
from ..linalg import solvers
from ..tensor import Tensor
from . import line_search as ls
from ._second_order import SecondOrderOptimizer, evaluate, host

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
        """r(θ0 + step) as a flat array (θ is left there); None if not finite."""
        self._assign(x0 + step)
        with no_grad(), np.errstate(all="ignore"):  # a wild trial may overflow: it is rejected
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
                    term = (gx[k] * Tensor._make(views[k], False, None)).sum()
                    total = term if total is None else total + term
                if total is None:
                    return xp.zeros(rflat.shape, dtype=r.dtype)
                (out,) = _grad([total], [u], retain_graph=True, allow_unused=True)
            return out.data if out is not None else xp.zeros(rflat.shape, dtype=r.dtype)

        def jtv(w):
            record["jacobian_products"] += 1
            with enable_grad():
                out = _grad([rflat], params, [Tensor._make(w, False, None)], retain_graph=True,
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
            same = bool(host(self._xp, self._xp.all(self._gather() == cached[0]))[0])
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
    when max|Jᵀr| <= ``tolerance_grad`` or the step is below
    ``xtol``·(‖θ‖ + ``xtol``).

    Closure contract: ``closure()`` returns the residual vector r (any
    shape) with its graph; the loss is ½‖r‖². One ``step(closure)`` is one
    iteration; it returns ½‖r‖² at its start. Record: ``nit``, ``nfev``,
    ``njev``, ``loss_history``, ``step_size``, ``message``.
    """

    def __init__(self, params, lr=1.0, line_search=None, solver="svd", jacobian="auto",
                 tolerance_grad=1e-12, xtol=1e-10, cg_tol=1e-10, max_cg_iter=None, c1=1e-4):
        if solver not in SOLVERS:
            raise ValueError(f"GaussNewton: solver must be one of {SOLVERS}, got {solver!r}.")
        if jacobian not in JACOBIANS:
            raise ValueError(f"GaussNewton: jacobian must be one of {JACOBIANS}, got "
                             f"{jacobian!r}.")
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
        (ff,) = host(xp, (rd * rd).sum())
        f0 = 0.5 * ff
        record["nit"] += 1
        record["loss_history"].append(f0)
        result = Tensor._make(xp.asarray(f0, dtype=rd.dtype), False, None)
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
        gmax, gtd = host(xp, xp.abs(g).max(), (g * d).sum())
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
                return 0.5 * host(xp, (rt * rt).sum())[0]

            t, _, _, ok = ls._armijo(phi, f0, gtd, t, group["c1"])
            self._assign(x0)
            if not ok:
                self._finish(record, "stopped: no decrease along the Gauss-Newton direction",
                             converged=False)
                return result
        x_before = self._gather()
        self._add(d, t)
        record["step_size"] = t
        if group["xtol"] > 0:
            dn, xn = host(xp, xp.sqrt((d * d).sum()) * abs(t), xp.sqrt((x_before ** 2).sum()))
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
        if solver not in SOLVERS:
            raise ValueError(f"LevenbergMarquardt: solver must be one of {SOLVERS}, got "
                             f"{solver!r}.")
        if jacobian not in JACOBIANS:
            raise ValueError(f"LevenbergMarquardt: jacobian must be one of {JACOBIANS}, got "
                             f"{jacobian!r}.")
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
        (ff,) = host(xp, (rd * rd).sum())
        record["nit"] += 1
        record["loss_history"].append(0.5 * ff)
        result = Tensor._make(xp.asarray(0.5 * ff, dtype=rd.dtype), False, None)
        if record["converged"]:
            return result
        fnorm = math.sqrt(ff)
        if fnorm == 0:
            self._finish(record, "converged: the residual is exactly zero")
            return result
        if group["solver"] == "cg":
            return self._iterate_cg(closure, record, state, group, r, rd, fnorm, result)
        if J is None:
            J = self._jacobian(r)
        g = J.T @ rd
        self._set_grads(g)
        cn = xp.sqrt((J * J).sum(axis=0))
        if group["damping"] == "marquardt":
            D = state.get("D")
            D = cn if D is None else xp.maximum(D, cn)
            D = xp.where(D > 0, D, 1)
            state["D"] = D
        else:
            D = xp.ones_like(cn)
        if group["gtol"] > 0:
            (cosine,) = host(xp, (xp.abs(g) / xp.where(cn > 0, cn, 1)).max() / fnorm)
            if cosine <= group["gtol"]:
                self._finish(record, "converged: gtol (the residual is orthogonal to the "
                             "columns of J)")
                return result
        system = _DampedSystem(xp, J, rd, D, "svd" if group["solver"] == "svd" else "normal")
        x0 = self._gather()
        (xnorm,) = host(xp, xp.sqrt(((D * x0) ** 2).sum()))
        update = group["lambda_update"]
        if update == "trust_region":
            if state.get("delta") is None:
                state["delta"] = group["factor"] * xnorm if xnorm > 0 else group["factor"]
                state["par"] = 0.0
        elif state.get("lam_value") is None:
            if group["lam"] is not None:
                state["lam_value"] = float(group["lam"])
            elif group["damping"] == "marquardt":
                state["lam_value"] = 1e-3
            else:
                state["lam_value"] = 1e-3 * float(system.wh.max())
            state["nu"] = 2.0
        first = record["nit"] == 1

        for _ in range(group["max_trials"]):
            if update == "trust_region":
                lam, _ = system.radius_lambda(state["delta"], state["par"])
                state["par"] = lam
            else:
                lam = state["lam_value"]
            p = system.step(lam)
            Jp = J @ p
            Dp = D * p
            jpn, dpn = host(xp, (Jp * Jp).sum(), (Dp * Dp).sum())
            pnorm = math.sqrt(dpn)
            if update == "trust_region" and first:
                state["delta"] = min(state["delta"], pnorm)
                first = False
            prered = (jpn + 2.0 * lam * dpn) / ff
            dirder = -(jpn + lam * dpn) / ff
            step = p
            if group["geodesic"] and prered > 1e-6:
                step = self._accelerate(closure, x0, rd, J, p, pnorm, system, lam, group)
            rn = self._trial(closure, x0, step)
            with np.errstate(all="ignore"):
                (fn2,) = host(xp, (rn * rn).sum())
            fn1 = math.sqrt(fn2) if math.isfinite(fn2) else math.inf
            if step is not p:
                Js = J @ step
                lin, rjs = host(xp, ((rd + Js) ** 2).sum(), (rd * Js).sum())
                prered = (ff - lin) / ff
                dirder = rjs / ff
                Ds = D * step
                pnorm = math.sqrt(host(xp, (Ds * Ds).sum())[0])
            actred = 1.0 - (fn1 / fnorm) ** 2 if 0.1 * fn1 < fnorm else -1.0
            ratio = actred / prered if prered > 0 else 0.0
            Jn = None
            if ratio < 1e-4 and math.isfinite(fn1) and 0 < prered < group["noise_tol"]:
                if actred >= 0:
                    ratio = 0.5
                else:
                    ratio, Jn = self._judge_by_gradient(closure, x0, step, g, D)
            self._update_damping(update, state, group, ratio, actred, dirder, pnorm, fn1,
                                 fnorm)
            accepted = ratio >= (1e-4 if update == "trust_region" else 1e-12)
            if accepted:
                self._assign(x0 + step)
                state["_accepted"] = [self._gather(), Jn]
                record["step_size"] = pnorm
                xnorm = math.sqrt(host(xp, ((D * (x0 + step)) ** 2).sum())[0])
            else:
                self._assign(x0)
            record["lam"] = lam
            record["radius"] = state.get("delta")
            if self._stopping(record, group, update, state, actred, prered, ratio, pnorm, xnorm):
                break
            if accepted:
                break
        else:
            self._finish(record, f"stopped: no acceptable step in max_trials="
                         f"{group['max_trials']} trials", converged=False)
        record["lam_history"].append(record["lam"])
        return result

    def _accelerate(self, closure, x0, rd, J, v, vnorm, system, lam, group):
        """Geodesic acceleration: v + a/2, or v when the correction is too large."""
        xp = self._xp
        h = group["geodesic_h"]
        r2 = self._trial(closure, x0, h * v)
        rvv = (2.0 / h) * ((r2 - rd) / h - J @ v)
        a = system.solve(-(system.Js.T @ rvv), lam)
        D = system.D
        (anorm,) = host(xp, xp.sqrt(((D * a) ** 2).sum()))
        if math.isfinite(anorm) and 2.0 * anorm <= group["geodesic_alpha"] * vnorm:
            return v + 0.5 * a
        return v

    def _judge_by_gradient(self, closure, x0, step, g, D):
        """In the rounding-noise regime: accept the trial if ‖D⁻¹Jᵀr‖ falls."""
        xp = self._xp
        self._assign(x0 + step)
        r = self._residual(closure)
        Jn = self._jacobian(r)
        gn = Jn.T @ r.data.reshape(-1)
        new, old = host(xp, xp.sqrt(((gn / D) ** 2).sum()), xp.sqrt(((g / D) ** 2).sum()))
        self._assign(x0)
        if new < old:
            return 0.5, Jn
        return 0.0, None

    def _update_damping(self, update, state, group, ratio, actred, dirder, pnorm, fn1, fnorm):
        """Move Δ (trust region) or λ after a trial with gain ratio ``ratio``;
        ``dirder`` is the directional derivative of ‖r‖²/‖r₀‖² along the step."""
        if update == "trust_region":  # MINPACK lmder's radius rules
            delta = state["delta"]
            if ratio <= 0.25:
                if actred >= 0:
                    temp = 0.5
                else:  # the minimiser of the quadratic through f0, f'(0) and f(1)
                    denom = dirder + 0.5 * actred
                    temp = 0.5 * dirder / denom if denom != 0 else 0.1
                if 0.1 * fn1 >= fnorm or temp < 0.1:
                    temp = 0.1
                state["delta"] = temp * min(delta, pnorm / 0.1)
                state["par"] = state["par"] / temp
            elif state["par"] == 0 or ratio >= 0.75:
                state["delta"] = pnorm / 0.5
                state["par"] = 0.5 * state["par"]
        elif update == "nielsen":
            if ratio > 0:
                state["lam_value"] *= max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
                state["nu"] = 2.0
            else:
                state["lam_value"] *= state["nu"]
                state["nu"] *= 2.0
        else:
            if ratio > 0:
                state["lam_value"] /= group["lam_down"]
            else:
                state["lam_value"] *= group["lam_up"]

    def _stopping(self, record, group, update, state, actred, prered, ratio, pnorm, xnorm):
        ftol, xtol = group["ftol"], group["xtol"]
        if ftol > 0 and abs(actred) <= ftol and prered <= ftol and 0.5 * ratio <= 1:
            self._finish(record, "converged: ftol (the relative reduction of ‖r‖² is below "
                         "ftol)")
            return True
        if xtol > 0:
            size = state["delta"] if update == "trust_region" else pnorm
            if size <= xtol * (xnorm + (0 if update == "trust_region" else xtol)):
                self._finish(record, "converged: xtol (the relative step is below xtol)")
                return True
        if update != "trust_region" and state["lam_value"] > 1e32:
            self._finish(record, "stopped: λ grew beyond 1e32 without a decrease",
                         converged=False)
            return True
        return False

    # -- matrix-free (Levenberg damping) --------------------------------------------------

    def _iterate_cg(self, closure, record, state, group, r, rd, fnorm, result):
        xp = self._xp
        ff = fnorm * fnorm
        jv, jtv = self._matrix_free(r)
        g = jtv(rd)
        self._set_grads(g)
        x0 = self._gather()
        (xnorm,) = host(xp, xp.sqrt((x0 * x0).sum()))
        update = group["lambda_update"]
        if update == "trust_region" and state.get("delta") is None:
            state["delta"] = group["factor"] * xnorm if xnorm > 0 else group["factor"]
            state["par"] = 0.0
        if update != "trust_region" and state.get("lam_value") is None:
            state["lam_value"] = float(group["lam"]) if group["lam"] is not None else 1e-3
            state["nu"] = 2.0
        for _ in range(group["max_trials"]):
            if update == "trust_region":
                lam = 0.0
                solve = solvers.steihaug(lambda v: jtv(jv(v)), g, state["delta"],
                                         tol=group["cg_tol"], maxiter=group["max_cg_iter"])
            else:
                lam = state["lam_value"]
                solve = solvers.cg(lambda v, lam=lam: jtv(jv(v)) + lam * v, -g, tol=group["cg_tol"],
                                   maxiter=group["max_cg_iter"])
            p = solve.x
            Jp = jv(p)
            lin, pn2, rjp = host(xp, ((rd + Jp) ** 2).sum(), (p * p).sum(), (rd * Jp).sum())
            pnorm = math.sqrt(pn2)
            prered = (ff - lin) / ff
            dirder = rjp / ff
            rn = self._trial(closure, x0, p)
            with np.errstate(all="ignore"):
                (fn2,) = host(xp, (rn * rn).sum())
            fn1 = math.sqrt(fn2) if math.isfinite(fn2) else math.inf
            actred = 1.0 - (fn1 / fnorm) ** 2 if 0.1 * fn1 < fnorm else -1.0
            ratio = actred / prered if prered > 0 else 0.0
            self._update_damping(update, state, group, ratio, actred, dirder, pnorm, fn1,
                                 fnorm)
            accepted = ratio >= (1e-4 if update == "trust_region" else 1e-12)
            if accepted:
                record["step_size"] = pnorm
                xnorm = math.sqrt(host(xp, ((x0 + p) ** 2).sum())[0])
            else:
                self._assign(x0)
            record["lam"] = lam
            record["radius"] = state.get("delta")
            record["cg_iterations"] = solve.niter
            if self._stopping(record, group, update, state, actred, prered, ratio, pnorm, xnorm):
                break
            if accepted:
                break
        record["lam_history"].append(record["lam"])
        return result
