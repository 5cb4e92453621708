"""Full-batch gradient descent with a line search: the lecture's "optimal learning rate"."""

from ..autograd import grad
from ..backend import host_floats
from ..op import enable_grad
from ..tensor import Tensor
from ._second_order import SecondOrderOptimizer, check_choice
from .optimizer import check_number

LINE_SEARCHES = (None, "armijo", "strong_wolfe", "exact")


class GD(SecondOrderOptimizer):
    r"""Gradient descent θ ← θ - t ∇L(θ), with the step t from a line search.

    The lecture's side note: instead of a hand-tuned learning rate, take the
    step that minimises the loss along the negative gradient,
    t = argmin_α L(θ - α∇L). ``line_search`` picks how:

    * ``None`` -- the fixed step ``lr`` (plain gradient descent);
    * ``"exact"`` -- t = ∇Lᵀ∇L / ∇Lᵀ∇²L∇L from one Hessian-vector product:
      exactly argmin_α when L is quadratic (steepest descent); when the
      curvature along -∇L is not positive it falls back to Armijo;
    * ``"armijo"`` -- backtracking to sufficient decrease;
    * ``"strong_wolfe"`` -- PyTorch's strong Wolfe search.

    The searches try ``lr`` first, and later min(``lr``, 2 × the previous
    step): gradient steps of similar length follow one another, and
    backtracking from ``lr`` every time would waste evaluations.

    Closure contract of the second-order family: ``closure()`` returns the
    loss with its graph and the optimizer differentiates it; one
    ``step(closure)`` is one iteration and returns the loss at its start.
    The record (``state[first param]``) holds ``nit``, ``nfev``, ``njev``,
    ``nhev``, ``loss_history``, ``step_size`` and ``message``.

    Args:
        params: the parameters (one group).
        lr (float): the fixed step, or the first trial of a line search (default 1).
        line_search (str or None): see above (default ``"armijo"``).
        c1, c2 (float): the Armijo and curvature constants (1e-4, 0.9).
        tolerance_grad (float): no step once max|∇L| <= this (default 1e-7).
    """

    def __init__(self, params, lr=1.0, line_search="armijo", c1=1e-4, c2=0.9,
                 tolerance_grad=1e-7):
        check_choice("GD", "line_search", line_search, LINE_SEARCHES)
        check_number("lr", lr, 0.0, low_open=True, what="learning rate")
        defaults = dict(lr=lr, line_search=line_search, c1=c1, c2=c2,
                        tolerance_grad=tolerance_grad)
        super().__init__(params, defaults)

    def _iterate(self, closure, record):
        group = self.param_groups[0]
        xp = self._xp
        want_hvp = group["line_search"] == "exact"
        loss, grads, g = self._loss_and_grad(closure, create_graph=want_hvp)
        f0, gmax, gg = host_floats(xp, loss.data.reshape(()), xp.abs(g).max(), (g * g).sum())
        result = loss.detach()
        if self._begin_iteration(record, f0, g, gmax):
            return result
        d = -g
        search = group["line_search"]
        t = group["lr"]
        previous = record.get("step_size")
        if search in ("armijo", "strong_wolfe") and previous:
            t = min(t, 2.0 * previous)  # start near the last accepted step
        if search == "exact":
            t = self._exact_step(grads, g, gg, record)
            if t is None:
                search = "armijo"
                t = group["lr"]
        if search in ("armijo", "strong_wolfe"):
            t, ok = self._line_search(closure, search, self._gather(), d, t, f0, g, -gg, group)
            if not ok:
                self._finish(record, "stopped: the Armijo line search found no decrease",
                             converged=False)
                return result
        self._add(d, t)
        record["step_size"] = t
        return result

    def _exact_step(self, grads, g, gg, record):
        """t = gᵀg / gᵀHg by double backward (None if the curvature is not positive)."""
        with enable_grad():
            pairs = [(gi * Tensor.constant(v)).sum()
                     for gi, v in zip(grads, self._views(g)) if gi is not None]
            total = pairs[0]
            for p in pairs[1:]:
                total = total + p
            hg = grad([total], self._params, allow_unused=True) if total.requires_grad \
                else [None] * len(self._params)
        record["nhev"] += 1
        (curvature,) = host_floats(self._xp, (g * self._vector(hg)).sum())
        return gg / curvature if curvature > 0 else None
