"""L-BFGS with PyTorch's arguments, defaults, closure contract and behaviour."""

from ..backend import xp_of
from ..function import enable_grad, no_grad
from ..tensor import Tensor
from ._second_order import host
from .line_search import _strong_wolfe
from .optimizer import Optimizer, check_number


class LBFGS(Optimizer):
    r"""Limited-memory BFGS, as ``torch.optim.LBFGS`` (Nocedal 1980; Liu & Nocedal 1989).

    L-BFGS keeps the last ``history_size`` pairs s = θ_{k+1} - θ_k and
    y = ∇f_{k+1} - ∇f_k and applies the BFGS inverse-Hessian approximation
    to the gradient by the two-loop recursion, starting from
    H₀ = (yᵀs / yᵀy) I: O(history·n) memory and time instead of BFGS's O(n²).

    PyTorch's contract, kept exactly: the ``closure`` re-evaluates the model,
    **zeroes the gradients, calls backward and returns the loss**; one
    ``step(closure)`` runs up to ``max_iter`` iterations (and at most
    ``max_eval`` closure calls), and returns the loss of the first closure
    call. All parameters form one group.

    Args:
        params: the parameters (one group).
        lr (float): step length (default 1); the first iteration uses
            min(1, 1/‖g‖₁)·lr.
        max_iter (int): iterations per ``step`` (default 20).
        max_eval (int): closure calls per ``step`` (default max_iter·5/4).
        tolerance_grad (float): stop when max|g| <= this (default 1e-7).
        tolerance_change (float): stop when the step, or the change of the
            loss, is below this (default 1e-9).
        history_size (int): pairs kept (default 100).
        line_search_fn (str or None): None (fixed step lr) or ``"strong_wolfe"``.

    State (``state[first param]``): PyTorch's ``func_evals``, ``n_iter``,
    ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``,
    ``prev_flat_grad``, ``prev_loss``, ``al``; plus the second-order record
    ``nit``, ``nfev``, ``njev``, ``loss_history`` (the loss at the start of
    every iteration), ``step_size`` and ``message``.

    Example:
        >>> opt = tg.optim.LBFGS([x], line_search_fn="strong_wolfe")
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = rosenbrock(x)
        ...     loss.backward()
        ...     return loss
        >>> opt.step(closure)
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if isinstance(lr, Tensor):
            if lr.numel() != 1:
                raise ValueError("Tensor lr must be 1-element")
            lr = float(lr.item())
        check_number("lr", lr, 0.0, what="learning rate")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{line_search_fn!r} (only 'strong_wolfe' is supported).")
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        self._numel_cache = None
        self._xp = xp_of((self._params[0].data,))

    # -- flat views (PyTorch's helpers) ----------------------------------------------

    def _numel(self):
        if self._numel_cache is None:
            self._numel_cache = sum(p.numel() for p in self._params)
        return self._numel_cache

    def _gather_flat_grad(self):
        xp = self._xp
        views = [xp.zeros(p.numel(), dtype=p.dtype) if p.grad is None
                 else p.grad.data.reshape(-1) for p in self._params]
        return xp.concatenate(views, 0) if len(views) > 1 else views[0].copy()

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params:
            numel = p.numel()
            p.data += (update[offset:offset + numel] * step_size).reshape(p.shape).astype(
                p.dtype, copy=False)
            offset += numel
        assert offset == self._numel()

    def _clone_param(self):
        return [p.data.copy() for p in self._params]

    def _set_param(self, params_data):
        for p, pdata in zip(self._params, params_data):
            p.data[...] = pdata

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        with enable_grad():
            loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # -- the step --------------------------------------------------------------------

    def step(self, closure):
        """Up to ``max_iter`` L-BFGS iterations; returns the first closure's loss.

        ``closure`` must zero the gradients, compute the loss, call
        ``loss.backward()`` and return the loss (PyTorch's contract).
        """
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that zeroes the gradients, "
                               "computes the loss, calls backward and returns the loss.")
        xp = self._xp
        group = self.param_groups[0]
        lr = group["lr"]
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        for key, value in (("nit", 0), ("nfev", 0), ("njev", 0), ("nhev", 0),
                           ("loss_history", []), ("step_size", None), ("lam", None),
                           ("converged", False), ("message", "")):
            state.setdefault(key, value)

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        state["nfev"] += 1
        state["njev"] += 1

        with no_grad():
            flat_grad = self._gather_flat_grad()
            opt_cond = host(xp, xp.abs(flat_grad).max())[0] <= tolerance_grad
            if opt_cond:
                state["converged"] = True
                state["message"] = "converged: max|g| <= tolerance_grad"
                return orig_loss

            # (load_state_dict hands arrays back as Tensors: unwrap them)
            d = _raw(state.get("d"))
            t = _raw(state.get("t"))
            old_dirs = _raw(state.get("old_dirs"))
            old_stps = _raw(state.get("old_stps"))
            ro = _raw(state.get("ro"))
            H_diag = _raw(state.get("H_diag"))
            prev_flat_grad = _raw(state.get("prev_flat_grad"))
            prev_loss = _raw(state.get("prev_loss"))
            if "al" in state:
                state["al"] = _raw(state["al"])

            n_iter = 0
            message = f"reached max_iter={max_iter} iterations in this step"
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                state["nit"] += 1
                state["loss_history"].append(loss)

                # -- direction ---------------------------------------------------------
                if state["n_iter"] == 1:
                    d = -flat_grad
                    old_dirs = []
                    old_stps = []
                    ro = []
                    H_diag = 1
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = (y * s).sum()
                    if host(xp, ys)[0] > 1e-10:
                        if len(old_dirs) == history_size:
                            old_dirs.pop(0)
                            old_stps.pop(0)
                            ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(1.0 / ys)
                        H_diag = ys / (y * y).sum()
                    num_old = len(old_dirs)
                    if "al" not in state:
                        state["al"] = [None] * history_size
                    al = state["al"]
                    q = -flat_grad
                    for i in range(num_old - 1, -1, -1):
                        al[i] = (old_stps[i] * q).sum() * ro[i]
                        q -= old_dirs[i] * al[i]
                    d = r = q * H_diag
                    for i in range(num_old):
                        be_i = (old_dirs[i] * r).sum() * ro[i]
                        r += old_stps[i] * (al[i] - be_i)

                if prev_flat_grad is None:
                    prev_flat_grad = flat_grad.copy()
                else:
                    prev_flat_grad[...] = flat_grad
                prev_loss = loss

                # -- step length -------------------------------------------------------
                if state["n_iter"] == 1:
                    t = min(1.0, 1.0 / host(xp, xp.abs(flat_grad).sum())[0]) * lr
                else:
                    t = lr
                gtd = host(xp, (flat_grad * d).sum())[0]
                if gtd > -tolerance_change:
                    message = "converged: the directional derivative is above -tolerance_change"
                    state["converged"] = True
                    break

                ls_func_evals = 0
                if line_search_fn is not None:
                    x_init = self._clone_param()

                    def obj(step, x_init=x_init, d=d):
                        f_new, g_new = self._directional_evaluate(closure, x_init, step, d)
                        return f_new, g_new, host(xp, (g_new * d).sum())[0]

                    d_norm = host(xp, xp.abs(d).max())[0]
                    loss, flat_grad, t, ls_func_evals, _ = _strong_wolfe(
                        obj, t, d_norm, loss, flat_grad, gtd, 1e-4, 0.9, tolerance_change, 25)
                    self._add_grad(t, d)
                    opt_cond = host(xp, xp.abs(flat_grad).max())[0] <= tolerance_grad
                else:
                    self._add_grad(t, d)
                    if n_iter != max_iter:
                        with enable_grad():
                            loss = float(closure())
                        flat_grad = self._gather_flat_grad()
                        opt_cond = host(xp, xp.abs(flat_grad).max())[0] <= tolerance_grad
                        ls_func_evals = 1

                current_evals += ls_func_evals
                state["func_evals"] += ls_func_evals
                state["nfev"] += ls_func_evals
                state["njev"] += ls_func_evals
                state["step_size"] = float(t)

                # -- stopping tests ----------------------------------------------------
                if n_iter == max_iter:
                    break
                if current_evals >= max_eval:
                    message = f"reached max_eval={max_eval} evaluations in this step"
                    break
                if opt_cond:
                    message = "converged: max|g| <= tolerance_grad"
                    state["converged"] = True
                    break
                if host(xp, xp.abs(d * t).max())[0] <= tolerance_change:
                    message = "converged: the step is below tolerance_change"
                    state["converged"] = True
                    break
                if abs(loss - prev_loss) < tolerance_change:
                    message = "converged: the loss changed by less than tolerance_change"
                    state["converged"] = True
                    break

            state["d"] = d
            state["t"] = t
            state["old_dirs"] = old_dirs
            state["old_stps"] = old_stps
            state["ro"] = ro
            state["H_diag"] = H_diag
            state["prev_flat_grad"] = prev_flat_grad
            state["prev_loss"] = prev_loss
            state["message"] = message
        return orig_loss


def _raw(value):
    """State values as the step keeps them: arrays, not Tensors (lists element-wise)."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, list):
        return [_raw(v) for v in value]
    return value
