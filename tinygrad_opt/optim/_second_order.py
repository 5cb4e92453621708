"""What the second-order optimizers share: one flat parameter vector, the
closure contract, and the OptimizeResult-like record in the state.

Newton, Newton-CG, BFGS, Gauss-Newton and Levenberg-Marquardt see all their
parameters as one vector θ (the concatenation of every parameter, flattened,
in order). They call ``closure()`` themselves -- it returns the loss (or, for
Gauss-Newton and LM, the residual vector) as a Tensor *with its graph* -- and
differentiate it: the gradient, Hessian-vector products and Jacobians come
from the same graph. One ``step(closure)`` is one iteration and returns the
loss at its start.

Every one of them keeps a record in ``optimizer.state[first parameter]``
with scipy's OptimizeResult names: ``nit``, ``nfev``, ``njev``, ``nhev``,
``loss_history`` (the loss at the start of each iteration), ``step_size``
(the last step length), ``lam`` (the last damping λ, where there is one),
``converged`` and ``message`` (why it stopped, once it has).

Arrays stay in the parameters' namespace (NumPy or CuPy). Decisions need
host numbers: each iteration moves its loss and a few scalars to the host in
one transfer per test.
"""

import contextlib

import numpy as np

from .. import versions
from ..autograd import grad
from ..backend import host_floats, to_host, xp_of
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from .line_search import armijo_on_phi, strong_wolfe_on_phi
from .optimizer import Optimizer

RECORD_KEYS = ("nit", "nfev", "njev", "nhev", "loss_history", "step_size", "lam", "converged",
               "message")


class ClosureError(RuntimeError):
    pass


def check_choice(owner, name, value, choices):
    """One-sentence ValueError unless ``value`` is one of ``choices`` (an option that
    names a method: ``line_search``, ``solver``, ...)."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {choices}, got {value!r}.")


def evaluate(closure, who):
    """Run the closure under grad mode and check that its result has a graph."""
    with enable_grad():
        out = closure()
    if not isinstance(out, Tensor):
        raise ClosureError(f"{who}: the closure must return a Tensor (the loss, or the residual "
                           f"vector for least squares), got {type(out).__name__}.")
    node = out._node
    if not out.requires_grad:
        raise ClosureError(f"{who}: the closure returned a value without a graph; the "
                           "parameters must require grad and the closure must not run under "
                           "no_grad.")
    if node is not None and node.freed:  # (a freed node that saved nothing keeps inputs)
        raise ClosureError(f"{who}: the closure's graph was already freed -- do not call "
                           "backward() in the closure: this optimizer differentiates the "
                           "returned loss itself (only LBFGS uses PyTorch's closure that calls "
                           "backward).")
    return out


class SecondOrderOptimizer(Optimizer):
    """Base of Newton, NewtonCG, BFGS, GaussNewton, LevenbergMarquardt, GD and LBFGS.

    All parameters form one group and one flat vector; subclasses implement
    ``_iterate(closure, record)`` (one iteration, returning the loss Tensor at
    its start). LBFGS shares the flat vectors and the record but keeps
    PyTorch's closure contract (the closure calls backward) and its own ``step``.
    """

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        name = type(self).__name__
        if len(self.param_groups) != 1:
            raise ValueError(f"{name} doesn't support per-parameter options (parameter "
                             "groups); pass one list of parameters.")
        self._params = self.param_groups[0]["params"]
        for p in self._params:
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: parameters must be floating point, got {p.dtype}.")
        self._xp = xp_of((self._params[0].data,))
        self._sizes = [p.numel() for p in self._params]
        self._numel = sum(self._sizes)
        self._dtype = self._params[0].dtype

    # -- the record -----------------------------------------------------------------

    @property
    def record(self):
        """The OptimizeResult-like record (``state`` of the first parameter)."""
        state = self.state[self._params[0]]
        if "nit" not in state:
            state.update(nit=0, nfev=0, njev=0, nhev=0, loss_history=[], step_size=None,
                         lam=None, converged=False, message="")
        return state

    # -- flat vectors -----------------------------------------------------------------

    def _flatten(self, arrays):
        """One flat array from per-parameter arrays (None counts as zeros)."""
        xp = self._xp
        parts = [xp.zeros(n, dtype=self._dtype) if a is None else a.reshape(-1)
                 for a, n in zip(arrays, self._sizes)]
        return parts[0].astype(self._dtype, copy=True) if len(parts) == 1 \
            else xp.concatenate(parts).astype(self._dtype, copy=False)

    def _gather(self):
        """θ as a flat array (a copy)."""
        return self._flatten([p.data for p in self._params])

    def _views(self, flat):
        out, start = [], 0
        for p, n in zip(self._params, self._sizes):
            out.append(flat[start:start + n].reshape(p.shape))
            start += n
        return out

    def _assign(self, flat):
        """θ ← flat, in place."""
        for p, v in zip(self._params, self._views(flat)):
            p.data[...] = v
        versions.mark_written(*(p.data for p in self._params))

    @contextlib.contextmanager
    def _evaluated_at(self, flat):
        """Inside the block θ reads as ``flat``, without θ being written in place:
        the graphs recorded at θ (products with J or H still to come) keep their
        values, and the version counters have nothing to object to."""
        originals = [p.data for p in self._params]
        for p, v in zip(self._params, self._views(flat)):
            p.data = v.astype(p.dtype, copy=False)
        try:
            yield
        finally:
            for p, original in zip(self._params, originals):
                p.data = original

    def _add(self, step, alpha=1.0):
        """θ ← θ + α·step, in place."""
        for p, v in zip(self._params, self._views(step)):
            if alpha == 1.0:
                p.data += v.astype(p.dtype, copy=False)
            else:
                p.data += (v * alpha).astype(p.dtype, copy=False)
        versions.mark_written(*(p.data for p in self._params))

    def _set_grads(self, flat):
        """Fill each parameter's ``.grad`` with the gradient just computed (a
        convenience: the step itself never reads ``.grad``)."""
        for p, v in zip(self._params, self._views(flat)):
            p.grad = Tensor.constant(v.copy())

    def _vector(self, tensors):
        return self._flatten([None if t is None else t.data for t in tensors])

    # -- evaluations ----------------------------------------------------------------------

    def _loss_and_grad(self, closure, create_graph=False):
        """(loss Tensor, per-parameter gradient Tensors, flat gradient array)."""
        loss = evaluate(closure, type(self).__name__)
        if loss.numel() != 1:
            raise ClosureError(f"{type(self).__name__}: the closure must return a scalar loss, "
                               f"got shape {tuple(loss.shape)}.")
        with enable_grad():
            grads = grad([loss.reshape(())], self._params, create_graph=create_graph,
                         retain_graph=create_graph, allow_unused=True)
        record = self.record
        record["nfev"] += 1
        record["njev"] += 1
        return loss, grads, self._vector(grads)

    def _loss_value(self, closure):
        """The loss as a Python float (one evaluation, no gradient). A trial
        point may overflow: that is a failed trial, not a warning."""
        with no_grad(), np.errstate(over="ignore", invalid="ignore"):
            out = closure()
        self.record["nfev"] += 1
        return float(out.item()) if isinstance(out, Tensor) else float(out)

    def _phi(self, closure, x0, d):
        """φ(t) = loss(θ0 + t d) with its gradient, for line searches:
        returns (φ(t) as float, ∇loss as a flat array, φ'(t) as float) and
        leaves θ at θ0 + t d."""
        xp = self._xp

        def phi(t):
            self._assign(x0 + t * d)
            with np.errstate(over="ignore", invalid="ignore"):
                loss, _, g = self._loss_and_grad(closure)
                f, gtd = host_floats(xp, loss.data.reshape(()), (g * d).sum())
            return f, g, gtd

        return phi

    def _phi_value(self, closure, x0, d):
        """φ(t) = loss(θ0 + t d) as a float, without a gradient."""

        def phi(t):
            self._assign(x0 + t * d)
            return self._loss_value(closure)

        return phi

    def _line_search(self, closure, search, x0, d, t, f0, g, gtd, group):
        """The step length along d from θ0 = x0, starting the search at t: backtracking
        to the Armijo condition f(θ0 + t d) <= f0 + c1 t gᵀd when ``search`` is "armijo",
        otherwise the strong Wolfe search (c1, c2 from ``group``). θ is left at x0.
        Returns (t, ok); ok is False when Armijo found no decrease (always True for Wolfe)."""
        if search == "armijo":
            t, _, _, ok = armijo_on_phi(self._phi_value(closure, x0, d), f0, gtd, t, group["c1"])
        else:
            (d_norm,) = host_floats(self._xp, self._xp.abs(d).max())
            _, _, t, _, _ = strong_wolfe_on_phi(self._phi(closure, x0, d), t, d_norm, f0, g, gtd,
                                                group["c1"], group["c2"])
            ok = True
        self._assign(x0)
        return t, ok

    # -- the step ---------------------------------------------------------------------

    def step(self, closure=None):
        """One iteration; returns the loss at its start (a detached Tensor)."""
        if closure is None:
            raise RuntimeError(f"{type(self).__name__}.step needs a closure that returns the "
                               "loss (with its graph), e.g. "
                               "opt.step(lambda: loss_fn(model(X), y)).")
        record = self.record
        loss = self._iterate(closure, record)
        return loss

    def _iterate(self, closure, record):
        raise NotImplementedError

    def load_state_dict(self, state_dict):
        """As :meth:`Optimizer.load_state_dict`; the state then goes back to the
        form the steps keep it in: arrays (not Tensors), scalars as floats."""
        super().load_state_dict(state_dict)
        for values in self.state.values():
            for key, value in list(values.items()):
                values[key] = _unwrap(value)

    def _finish(self, record, message, converged=True):
        record["converged"] = converged
        record["message"] = message

    def _begin_iteration(self, record, f0, g, gmax):
        """Count the iteration, record its starting loss ``f0`` and hand the gradient ``g``
        to ``.grad``; True (and the record says converged) when max|g| is already within
        ``tolerance_grad``: no step to take."""
        record["nit"] += 1
        record["loss_history"].append(f0)
        self._set_grads(g)
        if gmax <= self.param_groups[0]["tolerance_grad"]:
            self._finish(record, "converged: max|g| <= tolerance_grad")
            return True
        return False


def max_abs(xp, v):
    return xp.abs(v).max()


def _unwrap(value):
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if hasattr(value, "shape") and getattr(value, "ndim", 1) == 0:
        return float(to_host(value))
    return value
