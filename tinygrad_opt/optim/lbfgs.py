"""L-BFGS with PyTorch's arguments, defaults, closure contract and behaviour."""

from dataclasses import dataclass

from ..backend import host_floats
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from ._second_order import SecondOrderOptimizer
from .line_search import strong_wolfe_on_phi
from .optimizer import check_number

# PyTorch's constants: a pair (s, y) enters the history only when yᵀs exceeds this
CURVATURE_FLOOR = 1e-10
# ... and its strong Wolfe search uses c1, c2 and at most this many evaluations
WOLFE_C1, WOLFE_C2, WOLFE_MAX_EVALS = 1e-4, 0.9, 25


@dataclass
class CurvatureHistory:
    """The last ``history_size`` curvature pairs, oldest first: steps s = θ_{k+1} - θ_k
    (PyTorch's ``old_stps``), gradient changes y = ∇f_{k+1} - ∇f_k (``old_dirs``),
    ρ = 1/yᵀs (``ro``), and the scale γ = yᵀs/yᵀy of H₀ = γI (``H_diag``)."""

    dirs: list
    stps: list
    ro: list
    H_diag: object = 1

    def push(self, s, y, ys, size):
        """Add the pair (s, y) with yᵀs = ``ys`` (> 0), dropping the oldest beyond ``size``."""
        if len(self.dirs) == size:
            del self.dirs[0], self.stps[0], self.ro[0]
        self.dirs.append(y)
        self.stps.append(s)
        self.ro.append(1.0 / ys)
        self.H_diag = ys / (y * y).sum()


def two_loop_direction(grad, history):
    """d = -H g, H the L-BFGS inverse-Hessian approximation built from H₀ = γI and the
    pairs of ``history`` (Nocedal & Wright, Algorithm 7.4): the first loop runs
    newest to oldest, αᵢ = ρᵢ sᵢᵀq, q ← q - αᵢ yᵢ; then r = γ q, and the second loop
    runs oldest to newest, βᵢ = ρᵢ yᵢᵀr, r ← r + (αᵢ - βᵢ) sᵢ. Returns (d, [α₀, α₁, ...])."""
    alphas = [None] * len(history.dirs)
    q = -grad
    for i in range(len(history.dirs) - 1, -1, -1):
        alphas[i] = (history.stps[i] * q).sum() * history.ro[i]
        q -= history.dirs[i] * alphas[i]
    r = q * history.H_diag
    for i in range(len(history.dirs)):
        beta = (history.dirs[i] * r).sum() * history.ro[i]
        r += history.stps[i] * (alphas[i] - beta)
    return r, alphas


class LBFGS(SecondOrderOptimizer):
    r"""Limited-memory BFGS, as ``torch.optim.LBFGS`` (Nocedal 1980; Liu & Nocedal 1989).

    L-BFGS keeps the last ``history_size`` pairs s = θ_{k+1} - θ_k and
    y = ∇f_{k+1} - ∇f_k and applies the BFGS inverse-Hessian approximation
    to the gradient by the two-loop recursion (:func:`two_loop_direction`),
    starting from H₀ = (yᵀs / yᵀy) I: O(history·n) memory and time instead
    of BFGS's O(n²).

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

    # -- evaluations under PyTorch's closure contract (the closure calls backward) -----------

    def _evaluate(self, closure, state, count=1):
        """Run the closure (which fills ``.grad``); returns (its loss, the flat gradient)."""
        with enable_grad():
            loss = closure()
        state["func_evals"] += count
        state["nfev"] += count
        state["njev"] += count
        with no_grad():
            return loss, self._vector([p.grad for p in self._params])

    def _max_abs(self, v):
        return host_floats(self._xp, self._xp.abs(v).max())[0]

    def _move(self, closure, state, x0, d, t, loss, flat_grad, gtd):
        """θ ← θ0 + t d, with t from the strong Wolfe search when there is one.
        Returns (loss, flat gradient, t, closure calls); without a line search the
        closure is not called (the caller evaluates at the new θ when it needs to)."""
        group = self.param_groups[0]
        evals = 0
        if group["line_search_fn"] is not None:
            xp = self._xp

            def phi(step):  # (the caller counts the search's evaluations)
                self._assign(x0 + step * d)
                value, g = self._evaluate(closure, state, count=0)
                return float(value), g, host_floats(xp, (g * d).sum())[0]

            loss, flat_grad, t, evals, _ = strong_wolfe_on_phi(
                phi, t, self._max_abs(d), loss, flat_grad, gtd, WOLFE_C1, WOLFE_C2,
                group["tolerance_change"], WOLFE_MAX_EVALS)
            self._assign(x0)
        self._add(d, t)
        return loss, flat_grad, t, evals

    # -- the step --------------------------------------------------------------------

    def step(self, closure):
        """Up to ``max_iter`` L-BFGS iterations; returns the first closure's loss.

        ``closure`` must zero the gradients, compute the loss, call
        ``loss.backward()`` and return the loss (PyTorch's contract).
        """
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that zeroes the gradients, "
                               "computes the loss, calls backward and returns the loss.")
        group = self.param_groups[0]
        max_iter, tolerance_change = group["max_iter"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        record = self.record

        orig_loss, flat_grad = self._evaluate(closure, state)
        loss = float(orig_loss)
        current_evals = 1
        with no_grad():
            opt_cond = self._max_abs(flat_grad) <= group["tolerance_grad"]
            if opt_cond:
                self._finish(record, "converged: max|g| <= tolerance_grad")
                return orig_loss
            d, t = state.get("d"), state.get("t")
            prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
            history = CurvatureHistory(state.get("old_dirs"), state.get("old_stps"),
                                       state.get("ro"), state.get("H_diag"))

            n_iter = 0
            message = f"reached max_iter={max_iter} iterations in this step"
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                record["nit"] += 1
                record["loss_history"].append(loss)

                # -- direction and first trial step ------------------------------------
                if state["n_iter"] == 1:
                    d = -flat_grad
                    history = CurvatureHistory([], [], [])
                    t = min(1.0, 1.0 / host_floats(self._xp, self._xp.abs(flat_grad).sum())[0])
                    t *= group["lr"]
                else:
                    d = self._direction(state, history, flat_grad, prev_flat_grad, d * t)
                    t = group["lr"]
                if prev_flat_grad is None:
                    prev_flat_grad = flat_grad.copy()
                else:
                    prev_flat_grad[...] = flat_grad
                prev_loss = loss
                gtd = host_floats(self._xp, (flat_grad * d).sum())[0]
                if gtd > -tolerance_change:
                    message = "converged: the directional derivative is above -tolerance_change"
                    record["converged"] = True
                    break

                # -- the step --------------------------------------------------------------
                loss, flat_grad, t, evals = self._move(closure, state, self._gather(), d, t,
                                                       loss, flat_grad, gtd)
                if group["line_search_fn"] is None and n_iter != max_iter:
                    loss, flat_grad = self._evaluate(closure, state, count=0)
                    loss, evals = float(loss), 1
                if evals:
                    opt_cond = self._max_abs(flat_grad) <= group["tolerance_grad"]
                current_evals += evals
                for key in ("func_evals", "nfev", "njev"):
                    state[key] += evals
                record["step_size"] = float(t)

                # -- stopping tests ----------------------------------------------------
                if n_iter == max_iter:
                    break
                stop = self._stop_reason(current_evals, opt_cond, d * t, loss, prev_loss)
                if stop is not None:
                    message, converged = stop
                    record["converged"] = record["converged"] or converged
                    break

            state.update(d=d, t=t, old_dirs=history.dirs, old_stps=history.stps,
                         ro=history.ro, H_diag=history.H_diag, prev_flat_grad=prev_flat_grad,
                         prev_loss=prev_loss)
            record["message"] = message
        return orig_loss

    def _direction(self, state, history, flat_grad, prev_flat_grad, s):
        """The L-BFGS direction after the step s: the pair (s, y = g - g_prev) joins
        the history when yᵀs > CURVATURE_FLOOR, then the two-loop recursion gives
        d = -H g (PyTorch keeps the αᵢ in ``state["al"]``; so does this)."""
        y = flat_grad - prev_flat_grad
        ys = (y * s).sum()
        if host_floats(self._xp, ys)[0] > CURVATURE_FLOOR:
            history.push(s, y, ys, self.param_groups[0]["history_size"])
        d, alphas = two_loop_direction(flat_grad, history)
        al = state.setdefault("al", [None] * self.param_groups[0]["history_size"])
        al[:len(alphas)] = alphas
        return d

    def _stop_reason(self, current_evals, opt_cond, step, loss, prev_loss):
        """(message, converged) when an iteration ends the step, else None: the
        evaluation budget, a small gradient, a small step or a small change of the loss."""
        group = self.param_groups[0]
        if current_evals >= group["max_eval"]:
            return f"reached max_eval={group['max_eval']} evaluations in this step", False
        if opt_cond:
            return "converged: max|g| <= tolerance_grad", True
        if self._max_abs(step) <= group["tolerance_change"]:
            return "converged: the step is below tolerance_change", True
        if abs(loss - prev_loss) < group["tolerance_change"]:
            return "converged: the loss changed by less than tolerance_change", True
        return None
