"""BFGS with a dense inverse-Hessian approximation."""

from ..backend import host_floats
from ..tensor import Tensor
from . import line_search as ls
from ._second_order import SecondOrderOptimizer

LINE_SEARCHES = (None, "armijo", "strong_wolfe")


class BFGS(SecondOrderOptimizer):
    r"""Broyden-Fletcher-Goldfarb-Shanno: a quasi-Newton method.

    BFGS keeps an approximation H ≈ ∇²L⁻¹ (n × n, O(n²) memory) built from
    the steps s = θ_{k+1} - θ_k and gradient changes y = g_{k+1} - g_k:

        H ← (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ,   ρ = 1 / yᵀs,

    the closest matrix to H that maps y to s (the secant condition). The
    direction is d = -H g and its length comes from the strong Wolfe line
    search (default), which guarantees yᵀs > 0 and so keeps H positive
    definite. Before the first update H is scaled to (yᵀs / yᵀy) I (Nocedal
    & Wright, eq. 6.20); the first trial step is min(1, 1/‖g‖₁)·lr, later ones
    ``lr``. A pair with yᵀs <= 1e-10 is skipped. For large n use L-BFGS.

    The gradient at the accepted point, computed by the line search, is
    reused by the next step when the parameters have not been changed in
    between: one Wolfe iteration usually costs one evaluation.

    Closure contract: ``closure()`` returns the loss with its graph; one
    ``step(closure)`` is one iteration and returns the loss at its start.
    Record: ``nit``, ``nfev``, ``njev``, ``loss_history``, ``step_size``,
    ``message``; the matrix is ``state[first param]["H"]``.
    """

    def __init__(self, params, lr=1.0, line_search="strong_wolfe", c1=1e-4, c2=0.9,
                 tolerance_grad=1e-7, tolerance_change=1e-9):
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"BFGS: line_search must be one of {LINE_SEARCHES}, got "
                             f"{line_search!r}.")
        defaults = dict(lr=lr, line_search=line_search, c1=c1, c2=c2,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change)
        super().__init__(params, defaults)

    def _start_point(self, closure, record, state):
        """(f, g) at θ: the line search's last evaluation when θ is still there."""
        xp = self._xp
        cached = state.get("_next")
        if cached is not None:
            x_cached, f, g = cached
            if bool(host_floats(xp, xp.all(self._gather() == x_cached))[0]):
                return f, g
        loss, _, g = self._loss_and_grad(closure)
        (f,) = host_floats(xp, loss.data.reshape(()))
        return f, g

    def _iterate(self, closure, record):
        group = self.param_groups[0]
        xp = self._xp
        state = self.state[self._params[0]]
        f0, g = self._start_point(closure, record, state)
        state["_next"] = None
        record["nit"] += 1
        record["loss_history"].append(f0)
        self._set_grads(g)
        result = Tensor.constant(xp.asarray(f0, dtype=self._dtype))
        x0 = self._gather()
        gmax, gsum = host_floats(xp, xp.abs(g).max(), xp.abs(g).sum())
        if gmax <= group["tolerance_grad"]:
            self._finish(record, "converged: max|g| <= tolerance_grad")
            return result

        H = state.get("H")
        prev = state.get("prev")
        if prev is not None:
            x_prev, g_prev = prev
            s = x0 - x_prev
            y = g - g_prev
            ys, yy = host_floats(xp, (y * s).sum(), (y * y).sum())
            if ys > 1e-10:
                if H is None:
                    H = xp.eye(self._numel, dtype=self._dtype) * (ys / yy)
                rho = 1.0 / ys
                Hy = H @ y
                yHy = float(host_floats(xp, (y * Hy).sum())[0])
                H = H + ((ys + yHy) * rho * rho) * xp.outer(s, s) \
                    - rho * (xp.outer(Hy, s) + xp.outer(s, Hy))
                state["H"] = H
        d = -g if H is None else -(H @ g)
        (gtd,) = host_floats(xp, (g * d).sum())
        if not gtd < 0:  # H lost positive definiteness (rounding): restart
            state["H"] = H = None
            d, gtd = -g, -float(host_floats(xp, (g * g).sum())[0])
        t = group["lr"] if H is not None else min(1.0, 1.0 / gsum) * group["lr"]
        search = group["line_search"]
        if search == "strong_wolfe":
            (d_norm,) = host_floats(xp, xp.abs(d).max())
            f_new, g_new, t, _, _ = ls.strong_wolfe_on_phi(self._phi(closure, x0, d), t, d_norm,
                                                           f0, g, gtd, group["c1"], group["c2"],
                                                           group["tolerance_change"])
            self._assign(x0)
            self._add(d, t)
            state["_next"] = [self._gather(), f_new, g_new]
        elif search == "armijo":
            t, _, _, _ = ls.armijo_on_phi(self._phi_value(closure, x0, d), f0, gtd, t,
                                          group["c1"])
            self._assign(x0)
            self._add(d, t)
        else:
            self._add(d, t)
        state["prev"] = [x0, g]
        record["step_size"] = t
        (change,) = host_floats(xp, xp.abs(d).max() * abs(t))
        if change <= group["tolerance_change"]:
            self._finish(record, "converged: the step is below tolerance_change")
        return result
