"""Line searches: how far to go along a descent direction d.

The lecture's side note: the "optimal learning rate" is argmin_α L(θ - α∇L),
found by a line search. Three are here, usable on their own and by the
optimizers (``GD``, ``Newton``, ``NewtonCG``, ``BFGS``, ``LBFGS``):

* :func:`armijo` -- backtracking until the *sufficient decrease* (Armijo)
  condition holds:  f(x + t d) <= f(x) + c1 t ∇f(x)ᵀd;
* :func:`strong_wolfe` -- PyTorch's ``_strong_wolfe`` (a port of Torch7's
  ``lswolfe.lua``: bracketing, then zoom with safeguarded cubic
  interpolation) until sufficient decrease and the *strong curvature*
  condition |∇f(x + t d)ᵀd| <= c2 |∇f(x)ᵀd| hold;
* :func:`exact` -- the exact minimiser along d of the quadratic model,
  t = -∇fᵀd / dᵀ∇²f d, with dᵀ∇²f d from one Hessian-vector product (double
  backward); it *is* argmin_t f(x + t d) when f is quadratic (least squares,
  linear regression), and :func:`quadratic_step` is the same for an explicit
  ½xᵀAx - bᵀx.

Each public function takes ``fn`` (a Tensor x ↦ scalar Tensor with graph),
the point ``x`` and the direction ``d`` (Tensors or arrays of one shape),
differentiates ``fn`` itself, and returns a :class:`LineSearchResult`.

The searches decide on host numbers: every trial point moves f and
∇fᵀd to the host in one transfer, and nothing else leaves the device.
The cores (:func:`armijo_on_phi`, :func:`strong_wolfe_on_phi`) work on φ(t) and serve
the optimizers, which evaluate their closure at θ0 + t d.
"""

import math
from dataclasses import dataclass

from ..autograd import grad as _grad
from ..backend import host_floats, xp_of
from ..op import enable_grad
from ..tensor import Tensor

__all__ = ["LineSearchResult", "armijo", "armijo_on_phi", "exact", "quadratic_step", "strong_wolfe",
           "strong_wolfe_on_phi"]


@dataclass(repr=False, eq=False)  # arrays inside: compared by identity, as before
class LineSearchResult:
    """What a line search returns.

    Attributes:
        step (float): t.
        loss (float): f(x + t d).
        grad: ∇f(x + t d) (a Tensor shaped like x), or None when not computed.
        dirderiv (float or None): ∇f(x + t d)ᵀd.
        nfev (int): function evaluations used.
        success (bool): the conditions hold at ``step``.
        message (str): what happened.
    """

    step: float
    loss: float
    grad: object
    dirderiv: object
    nfev: int
    success: bool
    message: str

    def __repr__(self):
        return (f"LineSearchResult(step={self.step:.6g}, loss={self.loss:.6g}, "
                f"nfev={self.nfev}, success={self.success}, message={self.message!r})")


# ---------------------------------------------------------------------------
# Cores on φ(t)
# ---------------------------------------------------------------------------

def armijo_on_phi(phi_value, f0, gtd0, t=1.0, c1=1e-4, shrink=0.5, max_evals=40):
    """Backtracking on φ(t) = f(x + t d) from t until φ(t) <= f0 + c1 t φ'(0).

    Each failed trial takes the minimiser of the quadratic through φ(0),
    φ'(0) and φ(t), kept within [0.1 t, shrink·t] (Nocedal & Wright, §3.5).
    Returns (t, φ(t), evaluations, success).
    """
    f = float("inf")
    for k in range(1, max_evals + 1):
        f = phi_value(t)
        if f <= f0 + c1 * t * gtd0:
            return t, f, k, True
        if math.isfinite(f):
            denom = 2.0 * (f - f0 - gtd0 * t)
            t_new = -gtd0 * t * t / denom if denom > 0 else shrink * t
            t = min(max(t_new, 0.1 * t), shrink * t)
        else:  # overflow or NaN: step back hard
            t = 0.1 * t
    return t, f, max_evals, False


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to
    ``bounds`` (PyTorch's ``_cubic_interpolate``, from Torch7's polyinterp)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square ** 0.5
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe_on_phi(obj, t, d_norm, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                        max_ls=25):
    """PyTorch's ``_strong_wolfe``, step for step.

    ``obj(t)`` returns (f(x + t d), ∇f(x + t d), ∇f(x + t d)ᵀd) with f and the
    directional derivative as floats; ``d_norm`` is max|d|. Returns
    (f_new, g_new, t, evaluations, success).
    """
    f_new, g_new, gtd_new = obj(t)
    ls_func_evals = 1
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # extrapolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new
        gtd_prev = gtd_new
        f_new, g_new, gtd_new = obj(t)
        ls_func_evals += 1
        ls_iter += 1

    if ls_iter == max_ls:  # reached the cap while extrapolating
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # zoom: refine the bracket until a point satisfies the conditions
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # Too close to an end of the bracket (or outside): move 10% inside,
        # unless the previous trial was already close (then accept once).
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new, gtd_new = obj(t)
        ls_func_evals += 1
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new
            bracket_gtd[low_pos] = gtd_new

    t = bracket[low_pos]
    f_new = bracket_f[low_pos]
    g_new = bracket_g[low_pos]
    return f_new, g_new, t, ls_func_evals, done


# ---------------------------------------------------------------------------
# Public line searches on a function of a Tensor
# ---------------------------------------------------------------------------

def _arrays(x, d):
    xd = x.data if isinstance(x, Tensor) else x
    dd = d.data if isinstance(d, Tensor) else d
    if xd.shape != dd.shape:
        raise ValueError(f"line search: x has shape {tuple(xd.shape)} but d has "
                         f"{tuple(dd.shape)}; they must match.")
    return xd, dd


def _value_and_grad(fn, xd):
    x = Tensor._make(xd.copy(), True, None)
    with enable_grad():
        f = fn(x)
        if not isinstance(f, Tensor) or f.numel() != 1:
            raise ValueError("line search: fn must return a scalar Tensor (the loss).")
        (g,) = _grad([f.reshape(())], [x], allow_unused=True) if f.requires_grad else (None,)
    g = g.data if g is not None else xd * 0
    return f.data.reshape(()), g


def _start(fn, x, d, loss, grad):
    """(xd, dd, xp, f0, g0, gtd0): the arrays of x and d, their namespace, f(x), ∇f(x)
    (``loss`` and ``grad`` when given, else one evaluation) and the slope ∇f(x)ᵀd."""
    xd, dd = _arrays(x, d)
    xp = xp_of((xd,))
    if loss is None or grad is None:
        f0, g0 = _value_and_grad(fn, xd)
    else:
        f0 = loss.data if isinstance(loss, Tensor) else xp.asarray(loss)
        g0 = grad.data if isinstance(grad, Tensor) else grad
    f0, gtd0 = host_floats(xp, f0, (g0 * dd).sum())
    return xd, dd, xp, f0, g0, gtd0


def _not_descending(f0, gtd0):
    """The result of a search along a d that does not descend: no step."""
    return LineSearchResult(0.0, f0, None, gtd0, 0, False,
                            f"d is not a descent direction (∇fᵀd = {gtd0:.3e} >= 0)")


def armijo(fn, x, d, *, loss=None, grad=None, lr=1.0, c1=1e-4, shrink=0.5, max_evals=40):
    """Backtracking line search with the Armijo condition.

    Tries t = ``lr`` and shrinks it (quadratic interpolation kept within
    [0.1 t, shrink·t]) until f(x + t d) <= f(x) + c1 t ∇f(x)ᵀd.

    Args:
        fn: x ↦ scalar Tensor.
        x, d: the point and a descent direction (∇f(x)ᵀd < 0).
        loss, grad: f(x) and ∇f(x) when already known (saves an evaluation).
        lr: the first trial step. c1: sufficient-decrease constant.
        shrink: the largest factor a failed trial keeps. max_evals: cap.
    """
    xd, dd, xp, f0, _, gtd0 = _start(fn, x, d, loss, grad)
    if not gtd0 < 0:
        return _not_descending(f0, gtd0)

    def phi_value(t):
        return host_floats(xp, fn(Tensor.constant(xd + t * dd)).data.reshape(()))[0]

    t, f, nfev, ok = armijo_on_phi(phi_value, f0, gtd0, lr, c1, shrink, max_evals)
    return LineSearchResult(t, f, None, None, nfev, ok,
                            "sufficient decrease" if ok else f"no sufficient decrease in "
                            f"{max_evals} evaluations")


def strong_wolfe(fn, x, d, *, loss=None, grad=None, lr=1.0, c1=1e-4, c2=0.9,
                 tolerance_change=1e-9, max_ls=25):
    """Line search for the strong Wolfe conditions (PyTorch's, used by LBFGS).

    Returns a step t with f(x + t d) <= f(x) + c1 t ∇f(x)ᵀd and
    |∇f(x + t d)ᵀd| <= c2 |∇f(x)ᵀd| when ``success``; otherwise the best point
    the bracket held when it became narrower than ``tolerance_change`` or
    ``max_ls`` evaluations were spent.
    """
    xd, dd, xp, f0, g0, gtd0 = _start(fn, x, d, loss, grad)
    if not gtd0 < 0:
        return _not_descending(f0, gtd0)

    def obj(t):
        f, g = _value_and_grad(fn, xd + t * dd)
        f, gtd = host_floats(xp, f, (g * dd).sum())
        return f, g, gtd

    (d_norm,) = host_floats(xp, xp.abs(dd).max())
    f, g, t, nfev, ok = strong_wolfe_on_phi(obj, lr, d_norm, f0, g0, gtd0, c1, c2,
                                            tolerance_change, max_ls)
    gtd = host_floats(xp, (g * dd).sum())[0]
    return LineSearchResult(t, f, Tensor.constant(g), gtd, nfev, ok,
                            "strong Wolfe conditions hold" if ok else
                            "stopped before the strong Wolfe conditions held (bracket too "
                            "small or max_ls reached)")


def exact(fn, x, d, *, grad=None):
    """The exact step of the quadratic model along d:

        t = -∇f(x)ᵀd / dᵀ∇²f(x)d,

    with dᵀ∇²f(x)d from one Hessian-vector product (double backward). For a
    quadratic f this is argmin_t f(x + t d) -- the lecture's optimal learning
    rate -- and gradient descent with it is steepest descent. ``success`` is
    False (and ``step`` 0) when the curvature along d is not positive.
    """
    xd, dd = _arrays(x, d)
    xp = xp_of((xd,))
    xt = Tensor._make(xd.copy(), True, None)
    with enable_grad():
        f = fn(xt)
        (g,) = _grad([f.reshape(())], [xt], create_graph=True)
        gd = (g * Tensor.constant(dd)).sum()
        (hd,) = _grad([gd], [xt], allow_unused=True) if gd.requires_grad else (None,)
    hd = hd.data if hd is not None else dd * 0
    f0, gtd, curvature = host_floats(xp, f.data.reshape(()), gd.data, (dd * hd).sum())
    if not curvature > 0:
        return LineSearchResult(0.0, f0, Tensor.constant(g.data), gtd, 1, False,
                                f"the curvature along d is not positive (dᵀHd = "
                                f"{curvature:.3e})")
    return LineSearchResult(-gtd / curvature, float("nan"), None, None, 1, True,
                            "exact step of the quadratic model")


def quadratic_step(A, g, d):
    """argmin_t q(x + t d) for q(x) = ½xᵀAx - bᵀx with gradient g = Ax - b at
    x: t = -gᵀd / dᵀAd (A a matrix or a function v ↦ Av; arrays or Tensors)."""
    gd = g.data if isinstance(g, Tensor) else g
    dd = d.data if isinstance(d, Tensor) else d
    if callable(A) and not hasattr(A, "shape"):
        Ad = A(d)
        Ad = Ad.data if isinstance(Ad, Tensor) else Ad
    else:
        Ad = (A.data if isinstance(A, Tensor) else A) @ dd
    xp = xp_of((gd,))
    num, den = host_floats(xp, (gd * dd).sum(), (dd * Ad).sum())
    if not den > 0:
        raise ValueError(f"quadratic_step: dᵀAd = {den:.3e} is not positive; the quadratic "
                         "has no minimum along d.")
    return -num / den
