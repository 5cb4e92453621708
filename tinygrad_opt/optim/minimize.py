"""scipy.optimize-style conveniences for full-batch problems.

    res = optim.minimize(fn, x0, method="bfgs")          # fn: x ↦ scalar Tensor
    res = optim.least_squares(residual_fn, x0, method="lm")   # residual_fn: x ↦ r

Both build a parameter Tensor from ``x0``, run the optimizer of the chosen
method step by step until its record says it has converged (or a budget is
spent), and return an :class:`OptimizeResult` -- a dict with attribute access
and scipy's names (``x``, ``fun``, ``jac``, ``nit``, ``nfev``, ``njev``,
``nhev``, ``success``, ``status``, ``message``) plus ``loss_history``.
"""

from ..autograd import grad
from ..autograd.batched import jacobian_matrix
from ..backend import host_floats, to_host, xp_of
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from .bfgs import BFGS
from .gauss_newton import GaussNewton, LevenbergMarquardt
from .gd import GD
from .lbfgs import LBFGS
from .newton import Newton
from .newton_cg import NewtonCG

__all__ = ["LEAST_SQUARES_METHODS", "METHODS", "OptimizeResult", "least_squares", "minimize"]


class OptimizeResult(dict):
    """scipy's OptimizeResult: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __repr__(self):
        keys = ("message", "success", "status", "fun", "cost", "x", "nit", "nfev", "njev",
                "nhev")
        width = max(len(k) for k in keys)
        lines = []
        for k in keys:
            if k in self:
                v = self[k]
                if isinstance(v, Tensor):
                    v = v.numpy()
                lines.append(f"{k.rjust(width)}: {v}")
        return "\n".join(lines)


def _methods():
    return {"gd": GD, "newton": Newton, "newton-cg": NewtonCG, "newtoncg": NewtonCG,
            "bfgs": BFGS, "l-bfgs": LBFGS, "lbfgs": LBFGS}


METHODS = ("gd", "newton", "newton-cg", "bfgs", "l-bfgs")
LEAST_SQUARES_METHODS = ("lm", "gn")


def _parameter(x0):
    was_tensor = isinstance(x0, Tensor)
    data = x0.data.copy() if was_tensor else None
    if data is None:
        t = Tensor(x0)
        data = t.data.copy() if t.dtype.kind == "f" else t.data.astype("float64")
    if data.dtype.kind != "f":
        data = data.astype("float64")
    return Tensor._make(data, True, None), was_tensor


def _output(x, was_tensor):
    data = x.data.copy()
    return Tensor.constant(data) if was_tensor else to_host(data)


def _ended(x, record, callback):
    """After one optimizer step: call ``callback(x)``, then the status if the run is over
    (0 converged, 2 stopped) or None to go on."""
    if callback is not None:
        callback(x.detach())
    if record["converged"]:
        return 0
    if record["message"].startswith("stopped"):
        return 2
    return None


def minimize(fn, x0, method="bfgs", *, tol=None, maxiter=None, callback=None, options=None):
    """Minimise a scalar function of one Tensor, scipy-style.

    Args:
        fn: x ↦ scalar Tensor (built from x with Tensor ops, so that it can be
            differentiated; Newton methods differentiate it twice).
        x0: the start (a Tensor, array or list; integers become float64).
        method: ``"bfgs"`` (default), ``"l-bfgs"`` (PyTorch's LBFGS with the
            strong Wolfe search, all iterations in one ``step``, and
            ``tolerance_change`` 1e-14 unless ``options`` says otherwise),
            ``"newton"``, ``"newton-cg"``, ``"gd"``.
        tol: gradient tolerance (max|∇f| <= tol stops; default 1e-7, as the
            optimizers).
        maxiter: iteration cap (default 200·len(x0), at least 1000 for GD).
        callback: ``callback(x)`` after every iteration (x a detached Tensor).
        options: keyword arguments for the optimizer's constructor.

    Returns:
        OptimizeResult with ``x`` (the kind of ``x0``: Tensor or array),
        ``fun``, ``jac``, ``nit``, ``nfev``, ``njev``, ``nhev``, ``success``,
        ``status`` (0 converged, 1 iteration cap, 2 stopped), ``message``,
        ``loss_history``.
    """
    key = method.lower()
    table = _methods()
    if key not in table:
        raise ValueError(f"minimize: unknown method {method!r}; use one of {METHODS}.")
    x, was_tensor = _parameter(x0)
    n = x.numel()
    options = dict(options or {})
    if tol is not None:
        options.setdefault("tolerance_grad", tol)
    if maxiter is None:
        maxiter = max(200 * n, 1000 if key == "gd" else 200)
    cls = table[key]
    if cls.__name__ == "LBFGS":
        options.setdefault("line_search_fn", "strong_wolfe")
        options.setdefault("tolerance_change", 1e-14)
        options.setdefault("max_iter", maxiter)
        options.setdefault("max_eval", maxiter * 5 // 4)
        opt = cls([x], **options)

        def closure():
            opt.zero_grad()
            loss = fn(x)
            loss.backward()
            return loss

        opt.step(closure)
        record = opt.state[x]
        status = 0 if record["converged"] else 1
    else:
        opt = cls([x], **options)
        record = opt.record
        status = 1
        previous = None
        for _ in range(maxiter):
            opt.step(lambda: fn(x))
            ended = _ended(x, record, callback)
            if ended is not None:
                status = ended
                break
            current = record["loss_history"][-1]
            if previous is not None and current == previous and record.get("step_size") == 0:
                status = 2
                record["message"] = "stopped: no progress"
                break
            previous = current
        if status == 1:
            record["message"] = f"reached maxiter={maxiter}"
    with enable_grad():
        xe = x.detach().requires_grad_()
        f = fn(xe)

        (g,) = grad([f.reshape(())], [xe], allow_unused=True)
    fun = float(f.item())
    return OptimizeResult(
        x=_output(x, was_tensor), fun=fun,
        jac=_output(g if g is not None else x * 0, was_tensor),
        nit=record["nit"], nfev=record["nfev"], njev=record["njev"],
        nhev=record.get("nhev", 0), success=status == 0, status=status,
        message=record["message"], loss_history=list(record["loss_history"]), method=key)


def _xp(t):
    return xp_of((t.data,))


def least_squares(residual_fn, x0, method="lm", *, ftol=1e-8, xtol=1e-8, gtol=1e-8,
                  max_nfev=None, callback=None, **options):
    """Minimise ½‖r(x)‖², scipy's ``least_squares`` in spirit.

    Args:
        residual_fn: x ↦ residual Tensor r (any shape), built with Tensor ops.
        x0: the start.
        method: ``"lm"`` (:class:`LevenbergMarquardt`, default) or ``"gn"``
            (:class:`GaussNewton`).
        ftol, xtol, gtol: the stopping tolerances (scipy's meaning; 0 turns a
            test off). For Gauss-Newton they are checked here: relative
            change of the cost, relative step, and max|Jᵀr| / ‖r‖.
        max_nfev: residual evaluations allowed (default 100·len(x0), scipy's
            default for 'lm'; at least 100).

    For reference-quality fits (NIST StRD: all 54 runs to 10+ digits) use
    ``ftol=0, xtol=1e-15, gtol=1e-15``: the test on the decrease of ‖r‖²
    cannot resolve θ beyond about √eps, the step and gradient tests can.
        callback: ``callback(x)`` after every iteration.
        **options: passed to the optimizer (``damping``, ``lambda_update``,
            ``geodesic``, ``solver``, ``line_search``, ...).

    Returns:
        OptimizeResult with ``x``, ``cost`` (½‖r‖²), ``fun`` (the residuals),
        ``jac`` (J at x), ``grad`` (Jᵀr), ``nit``, ``nfev``, ``njev``,
        ``status`` (0 converged, 1 evaluation budget spent, 2 stopped),
        ``success``, ``message``, ``loss_history`` and, for LM,
        ``lam_history``.
    """
    key = method.lower()
    if key not in LEAST_SQUARES_METHODS:
        raise ValueError(f"least_squares: unknown method {method!r}; use 'lm' or 'gn'.")
    x, was_tensor = _parameter(x0)
    n = x.numel()
    max_nfev = max(100 * n, 100) if max_nfev is None else int(max_nfev)
    xp = _xp(x)
    if key == "lm":
        opt = LevenbergMarquardt([x], ftol=ftol, xtol=xtol, gtol=gtol, **options)
    else:
        opt = GaussNewton([x], **options)
    record = opt.record
    status = 1
    while record["nfev"] < max_nfev:
        x_before = x.data.copy()
        opt.step(lambda: residual_fn(x))
        ended = _ended(x, record, callback)
        if ended is not None:
            status = ended
            break
        if key == "gn" and _gn_converged(xp, record, x_before, x, ftol, xtol):
            status = 0
            break
    if status == 1:
        record["message"] = f"reached max_nfev={max_nfev} residual evaluations"
    with enable_grad():
        xe = x.detach().requires_grad_()
        r = residual_fn(xe)
        J = jacobian_matrix(r, [xe]) if r.requires_grad else xp.zeros((r.numel(), n))
    rd = r.data.reshape(-1)
    with no_grad():
        cost = 0.5 * host_floats(xp, (rd * rd).sum())[0]
    g = J.T @ rd
    return OptimizeResult(
        x=_output(x, was_tensor), cost=cost, fun=to_host(rd.copy()), jac=to_host(J),
        grad=to_host(g), nit=record["nit"], nfev=record["nfev"], njev=record["njev"],
        success=status == 0, status=status, message=record["message"],
        loss_history=list(record["loss_history"]),
        lam_history=list(record.get("lam_history", [])), method=key)


def _gn_converged(xp, record, x_before, x, ftol, xtol):
    history = record["loss_history"]
    step, xnorm = host_floats(xp, xp.sqrt(((x.data - x_before) ** 2).sum()),
                       xp.sqrt((x_before ** 2).sum()))
    if xtol > 0 and step <= xtol * (xnorm + xtol):
        record["converged"] = True
        record["message"] = "converged: xtol (the relative step is below xtol)"
        return True
    if ftol > 0 and len(history) >= 2 and abs(history[-2] - history[-1]) <= ftol * history[-2]:
        record["converged"] = True
        record["message"] = "converged: ftol (the relative change of the cost is below ftol)"
        return True
    return False
