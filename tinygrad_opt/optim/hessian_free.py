"""Hessian-free optimization (Martens, ICML 2010) on Gauss-Newton-vector products.

Each step minimizes, on one minibatch, the damped quadratic model

    q(d) = gᵀd + ½ dᵀ(G + λI) d,     G = Jᵀ H_L J,

with conjugate gradient (:func:`tinygrad_opt.linalg.solvers.cg`), touching G
only through products. J = ∂z/∂θ is the Jacobian of the network outputs z and
H_L = ∂²L/∂z² the Hessian of the loss in the outputs (for mean softmax cross
entropy (diag p − p pᵀ)/N per sample), so G is positive semi-definite when L is
convex in z and CG never meets negative curvature. One product G v costs

1. J v by the double-vjp trick: u ↦ Jᵀu is linear in the dummy cotangent u,
   and the vjp of that map with v is J v (a backward of the backward);
2. H_L (J v): a Hessian-vector product of L in z (double backward of L alone);
3. Jᵀ(H_L J v): one ordinary backward through the retained graph.

Around CG (Martens 2010; constants as in ``ltatzel/PyTorchHessianFree``):

* CG starts from ζ·d_prev (ζ = 0.95), the previous step's un-backtracked solution;
* CG iterates are saved on a geometric schedule (⌈1.3^j⌉) and the latest one
  whose actual loss stops improving when walking backward is kept (backtracking);
* Levenberg-Marquardt damping: ρ = (f(θ+d) − f(θ)) / q(d); λ ← 3/2·λ if ρ < 1/4,
  λ ← 2/3·λ if ρ > 3/4;
* an Armijo backtracking line search (c = 10⁻², shrink 0.8) on lr·d.

Deviation: CG stops on the relative residual (``cg_tol``) or ``max_cg_iter``,
not on Martens' relative-progress-of-q rule (the shared CG solver reports
iterates, not q).

Usage (one minibatch per step)::

    opt = optim.HessianFree(model.parameters())
    loss = opt.step(lambda: model(xb), lambda z: F.cross_entropy(z, yb))
"""

import math

from .. import versions
from ..autograd.grad import grad
from ..backend import xp_of
from ..linalg import solvers
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["HessianFree", "gauss_newton_vector_product"]


def _flat(xp, tensors):
    return xp.concatenate([t.data.reshape(-1) for t in tensors])


def _unflatten(vector, params):
    """The flat ``vector`` cut into arrays shaped like ``params``."""
    out, k = [], 0
    for p in params:
        n = p.data.size
        out.append(vector[k:k + n].reshape(p.shape).astype(p.dtype, copy=False))
        k += n
    return out


def _split(vector, params):
    return [Tensor.constant(v) for v in _unflatten(vector, params)]


def gauss_newton_vector_product(outputs, loss_fn, params):
    """The map v ↦ G v = Jᵀ H_L J v on flat arrays, for outputs z = f(params)
    (a Tensor with its graph) and the loss L = loss_fn(z).

    Returns (Gv, g): the product function and the flat gradient g = Jᵀ ∂L/∂z.
    The graphs are retained, so the function may be called many times.
    """
    params = list(params)
    xp = xp_of((params[0].data,))

    with enable_grad():
        u = Tensor.constant(outputs.data * 0).requires_grad_()
        jtu = grad(outputs, params, u, retain_graph=True, create_graph=True)
        z = outputs.detach().requires_grad_()
        loss = loss_fn(z)
        (gz,) = grad(loss, [z], create_graph=True)
    g = _flat(xp, grad(outputs, params, gz.detach(), retain_graph=True))

    def product(v):
        vs = _split(xp.asarray(v), params)
        with enable_grad():
            jv = grad(jtu, u, vs, retain_graph=True)
            hjv = grad(gz, z, jv, retain_graph=True)
        return _flat(xp, grad(outputs, params, hjv, retain_graph=True))

    return product, g


class HessianFree(Optimizer):
    """Martens' Hessian-free Newton-CG with a Gauss-Newton curvature.

    Args:
        params: the parameters.
        lr: multiplies the CG step before the line search (default 1).
        damping: initial λ (default 1, as in both reference codes).
        max_cg_iter: CG iterations per step (default 50; Martens 250).
        cg_tol: CG's relative residual tolerance (default 1e-4).
        warm_start_decay: ζ in d₀ = ζ d_prev (default 0.95).
        adapt_damping: apply the ρ rule (default True).
        line_search: Armijo backtracking on the chosen step (default True).

    ``step(forward, loss_fn)``: ``forward()`` returns the outputs z on the
    minibatch (rebuilt each call), ``loss_fn(z)`` the scalar loss; returns the
    loss before the step. ``state["damping"]`` and ``state["rho"]`` record λ, ρ.
    """

    def __init__(self, params, lr=1.0, damping=1.0, max_cg_iter=50, cg_tol=1e-4,
                 warm_start_decay=0.95, adapt_damping=True, line_search=True):
        defaults = dict(lr=lr, max_cg_iter=max_cg_iter, cg_tol=cg_tol,
                        warm_start_decay=warm_start_decay, adapt_damping=adapt_damping,
                        line_search=line_search)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("HessianFree: one parameter group only (the step is solved jointly "
                             "over all parameters); pass a flat list of parameters.")
        if not damping > 0:
            raise ValueError(f"HessianFree: damping must be positive, got {damping!r}.")
        self.hf_state = {"damping": float(damping), "rho": math.nan, "d_prev": None,
                         "cg_iters": 0}

    def _validate_group(self, group):
        if not group.get("lr", 1.0) > 0:
            raise ValueError(f"HessianFree: lr must be positive, got {group['lr']!r}.")

    def _loss_at(self, params, theta, d, alpha, forward, loss_fn):
        """The loss at θ + α·d. The parameters point at trial arrays only while
        the loss is evaluated: the graph of ``outputs`` still needs θ itself for
        the Gauss-Newton products that follow, so θ is never written in place here."""
        originals = [p.data for p in params]
        for p, trial in zip(params, _unflatten(theta + alpha * d, params)):
            p.data = trial
        try:
            with no_grad():
                return float(xp_of((theta,)).asarray(loss_fn(forward()).data))
        finally:
            for p, original in zip(params, originals):
                p.data = original

    def _move_to(self, params, new):
        """θ ← new, in place: the step's one write into the parameters."""
        for p, value in zip(params, _unflatten(new, params)):
            p.data[...] = value
        versions.mark_written(*(p.data for p in params))

    def step(self, forward, loss_fn):
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.requires_grad]
        state = self.hf_state
        lam = state["damping"]
        with enable_grad():
            outputs = forward()
        product, g = gauss_newton_vector_product(outputs, loss_fn, params)
        xp = xp_of((g,))
        theta = _flat(xp, params)
        with no_grad():
            f0 = float(loss_fn(outputs.detach()).data)

        saves, counter = {}, [0]
        schedule = {math.ceil(1.3 ** j) for j in range(60)}

        def remember(x):
            counter[0] += 1
            if counter[0] in schedule:
                saves[counter[0]] = xp.array(x, copy=True)

        x0 = None
        if state["d_prev"] is not None and group["warm_start_decay"] > 0:
            x0 = group["warm_start_decay"] * state["d_prev"]
        result = solvers.cg(lambda v: product(v) + lam * v, -g, x0, tol=group["cg_tol"],
                            maxiter=group["max_cg_iter"], callback=remember)
        d = result.x
        state["d_prev"] = d.copy()
        state["cg_iters"] = result.niter
        saves[max(result.niter, 0) + 10 ** 6] = d  # the final iterate, last in order

        # Backtrack over the saved CG iterates: keep the latest until an earlier one is worse.
        order = [saves[k] for k in sorted(saves)]
        best, best_f = order[-1], self._loss_at(params, theta, order[-1], 1.0, forward, loss_fn)
        for candidate in reversed(order[:-1]):
            f = self._loss_at(params, theta, candidate, 1.0, forward, loss_fn)
            if f < best_f:
                best, best_f = candidate, f
            else:
                break
        d = best
        Gd = product(d)
        q = float(g @ d + 0.5 * (d @ Gd + lam * (d @ d)))
        rho = (best_f - f0) / q if q < 0 else -math.inf
        if group["adapt_damping"]:
            if rho < 0.25:
                lam *= 1.5
            elif rho > 0.75:
                lam *= 2.0 / 3.0
        state["damping"], state["rho"] = lam, rho

        alpha, slope = group["lr"], float(g @ d)
        if group["line_search"]:
            for _ in range(30):
                f = self._loss_at(params, theta, d, alpha, forward, loss_fn)
                if f <= f0 + 1e-2 * alpha * slope:
                    break
                alpha *= 0.8
            else:
                alpha = 0.0
        self._move_to(params, theta + alpha * d)
        return f0
