"""Hessian-free Newton: conjugate gradient on Hessian-vector products."""

from ..autograd import grad as _grad
from ..backend import host_floats
from ..linalg import solvers
from ..op import enable_grad
from ..tensor import Tensor
from ._second_order import SecondOrderOptimizer

LINE_SEARCHES = (None, "armijo", "strong_wolfe")


class NewtonCG(SecondOrderOptimizer):
    r"""Newton-CG (truncated Newton, Hessian-free): H d = -g solved by CG.

    The Hessian is never formed: CG (``tg.linalg.steihaug``) touches it only
    through products H v, each one double-backward pass (Pearlmutter's trick:
    H v = ∇(∇L·v)) through the graph of the gradient, so memory and time per
    product are those of a few gradients -- Newton for models with 10⁵
    parameters.

    Two globalisations (Nocedal & Wright, ch. 7):

    * line search (default, ``trust_region=False``; Alg. 7.1): CG stops when
      ‖H d + g‖ <= η‖g‖ with the forcing term η = min(0.5, √‖g‖)
      (superlinear convergence), or at the first direction of non-positive
      curvature (it then returns the last iterate, or -g if that happens at
      once); the step length comes from ``line_search`` starting at ``lr``;
    * trust region (``trust_region=True``; Steihaug-CG, Alg. 7.2): CG stops at
      the boundary ‖d‖ = Δ or follows negative curvature to it; the radius Δ
      grows (×2, up to ``max_radius``) when the model predicts the decrease
      well (ρ > 3/4 at the boundary) and shrinks (×1/4) when it does not
      (ρ < 1/4); the step is taken when ρ > ``eta``.

    ``damping`` adds λI to H (Levenberg-style), e.g. for nonconvex networks.

    Closure contract: ``closure()`` returns the loss with its graph; one
    ``step(closure)`` is one Newton iteration (one gradient, a CG run of
    Hessian-vector products, a line search or a trust-region test) and
    returns the loss at its start. Record: ``nit``, ``nfev``, ``njev``,
    ``nhev`` (Hessian-vector products), ``loss_history``, ``step_size``,
    ``lam``, ``radius``, ``cg_iterations``, ``message``.
    """

    def __init__(self, params, lr=1.0, line_search="armijo", trust_region=False, radius=1.0,
                 max_radius=1e4, eta=0.15, max_cg_iter=None, cg_tol=None, damping=0.0,
                 tolerance_grad=1e-7, c1=1e-4, c2=0.9):
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"NewtonCG: line_search must be one of {LINE_SEARCHES}, got "
                             f"{line_search!r}.")
        defaults = dict(lr=lr, line_search=line_search, trust_region=trust_region,
                        radius=radius, max_radius=max_radius, eta=eta, max_cg_iter=max_cg_iter,
                        cg_tol=cg_tol, damping=damping, tolerance_grad=tolerance_grad, c1=c1,
                        c2=c2)
        super().__init__(params, defaults)

    def _hvp_operator(self, grads, record):
        """v ↦ (H + λI) v by double backward through the graph of ``grads``."""
        damping = self.param_groups[0]["damping"]
        params = self._params
        live = [k for k, gi in enumerate(grads) if gi is not None and gi.requires_grad]

        def hvp(v):
            record["nhev"] += 1
            if not live:
                return v * damping
            views = self._views(v)
            with enable_grad():
                total = None
                for k in live:
                    term = (grads[k] * Tensor.constant(views[k])).sum()
                    total = term if total is None else total + term
                hv = _grad([total], params, retain_graph=True, allow_unused=True)
            out = self._vector(hv)
            if damping:
                out += damping * v
            return out

        return hvp

    def _iterate(self, closure, record):
        group = self.param_groups[0]
        xp = self._xp
        loss, grads, g = self._loss_and_grad(closure, create_graph=True)
        f0, gmax, gnorm = host_floats(xp, loss.data.reshape(()), xp.abs(g).max(),
                               xp.sqrt((g * g).sum()))
        record["nit"] += 1
        record["loss_history"].append(f0)
        record["lam"] = group["damping"]
        self._set_grads(g)
        result = loss.detach()
        if gmax <= group["tolerance_grad"]:
            self._finish(record, "converged: max|g| <= tolerance_grad")
            return result
        hvp = self._hvp_operator(grads, record)
        tol = group["cg_tol"] if group["cg_tol"] is not None else min(0.5, gnorm ** 0.5)
        maxiter = group["max_cg_iter"] if group["max_cg_iter"] is not None \
            else 20 * self._numel
        if group["trust_region"]:
            return self._trust_region_step(closure, record, group, hvp, g, f0, tol, maxiter,
                                           result)
        solve = solvers.steihaug(hvp, g, None, tol=tol, maxiter=maxiter)
        record["cg_iterations"] = solve.niter
        d = solve.x
        (gtd,) = host_floats(xp, (g * d).sum())
        if not gtd < 0:
            d, gtd = -g, -gnorm * gnorm
        t = group["lr"]
        if group["line_search"] is not None:
            t, _ = self._line_search(closure, group["line_search"], self._gather(), d, t, f0, g,
                                     gtd, group)
        self._add(d, t)
        record["step_size"] = t
        return result

    def _trust_region_step(self, closure, record, group, hvp, g, f0, tol, maxiter, result):
        xp = self._xp
        state = self.state[self._params[0]]
        radius = state.get("radius", group["radius"])
        solve = solvers.steihaug(hvp, g, radius, tol=tol, maxiter=maxiter)
        record["cg_iterations"] = solve.niter
        p = solve.x
        gp, pHp, pnorm = host_floats(xp, (g * p).sum(), (p * hvp(p)).sum(), xp.sqrt((p * p).sum()))
        predicted = -(gp + 0.5 * pHp)
        x0 = self._gather()
        f_new = self._phi_value(closure, x0, p)(1.0)
        rho = (f0 - f_new) / predicted if predicted > 0 else -1.0
        if rho < 0.25:
            radius = 0.25 * radius
        elif rho > 0.75 and abs(pnorm - radius) <= 1e-6 * radius:
            radius = min(2 * radius, group["max_radius"])
        state["radius"] = radius
        if rho > group["eta"]:
            record["step_size"] = 1.0
        else:
            self._assign(x0)
            record["step_size"] = 0.0
        return result
