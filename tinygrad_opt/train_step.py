"""One training step for any optimizer: the closure each kind of optimizer wants.

``fit`` trains with every optimizer of ``optim``, and they do not all want to be driven
the same way. :func:`closure_contract` names the five ways:

* ``"none"`` -- the first-order optimizers (SGD, Adam, ..., K-FAC): forward, ``backward()``,
  then ``optimizer.step()`` reads ``.grad``;
* ``"backward"`` -- L-BFGS, PyTorch's closure: it zeroes the gradients, computes the loss,
  calls ``backward()`` and returns the loss; the optimizer calls it as often as its line
  search needs;
* ``"graph"`` -- Newton, Newton-CG, BFGS, GD with a line search: the closure returns the loss
  *with its graph*, and the optimizer differentiates it itself (Hessian-vector products,
  Hessians);
* ``"residual"`` -- Gauss-Newton and Levenberg-Marquardt minimise ½‖r‖²: the closure returns
  the residual vector r. A loss has such a form only when it is a sum of squares: for the
  mean squared error, ``mean((out - y)²) = ½‖r‖²`` with ``r = (out - y)·√(2/N)``
  (:func:`residual_form`); cross entropy has none;
* ``"forward"`` -- Hessian-free: ``step(forward, loss_of_outputs)``, because its curvature
  (Gauss-Newton-vector products) needs the outputs and the loss separately.

Whatever the contract, the loss on the batch is measured at the *first* evaluation --
before the optimizer has changed a weight -- and handed to ``on_loss``, which may raise
(``fit`` raises :class:`~tinygrad_opt.train.DivergenceError` on a NaN loss there, so nothing
is ever stepped with it). Second-order methods see one mini-batch per step, or the whole
training set with ``fit(batch_size=None)``: they are built for a fixed, deterministic
function, which a mini-batch is not.
"""

import math

from . import capture
from .jit import jit as capture_step
from .nn import MSELoss
from .nn import functional as F
from .nn.utils import clip_grad_norm_
from .op import no_grad
from .optim import LBFGS, GaussNewton, HessianFree, LevenbergMarquardt
from .optim._second_order import SecondOrderOptimizer

__all__ = ["TrainStep", "closure_contract", "residual_form"]


def closure_contract(optimizer):
    """How ``optimizer.step`` wants to be called: "none", "backward", "graph", "residual" or
    "forward" (see the module)."""
    if isinstance(optimizer, LBFGS):
        return "backward"
    if isinstance(optimizer, (GaussNewton, LevenbergMarquardt)):
        return "residual"
    if isinstance(optimizer, SecondOrderOptimizer):
        return "graph"
    if isinstance(optimizer, HessianFree):
        return "forward"
    return "none"


def residual_form(loss_fn):
    """``r(outputs, targets)`` with ½‖r‖² equal to ``loss_fn(outputs, targets)``, for the mean
    squared error (``F.mse_loss`` or ``nn.MSELoss`` with reduction "mean" or "sum"); None
    for a loss that is not a sum of squares."""
    if loss_fn is F.mse_loss:
        reduction = "mean"
    elif isinstance(loss_fn, MSELoss):
        reduction = loss_fn.reduction
    else:
        return None
    if reduction not in ("mean", "sum"):
        return None

    def residual(outputs, targets):
        diff = (outputs - targets).reshape(-1)
        # ½‖c·d‖² = reduce(d²) needs c = √2 for a sum and √(2/N) for a mean over N entries
        return diff * math.sqrt(2.0 / diff.numel() if reduction == "mean" else 2.0)

    return residual


def _loss_name(loss_fn):
    return getattr(loss_fn, "__name__", None) or type(loss_fn).__name__


class TrainStep:
    """``step(X, y, on_loss)``: one optimizer step on the batch ``(X, y)``; returns the
    outputs and the loss (a float) at the start of the step.

    Args:
        model, loss_fn, optimizer: as ``fit``'s.
        clip_grad_norm: clip the global gradient norm before each step; only for the
            optimizers that read ``.grad`` (contracts "none" and "backward").
        jit: run the step of a first-order optimizer (contract "none") through
            :func:`tinygrad_opt.jit`: recorded on its first calls, then replayed, with the
            same results bit for bit. The other contracts re-evaluate the model inside the
            optimizer's step and run as usual.

    Raises ValueError (one sentence) for Gauss-Newton or Levenberg-Marquardt with a loss
    that has no residual form, and for gradient clipping with an optimizer that
    differentiates the loss itself.
    """

    def __init__(self, model, loss_fn, optimizer, clip_grad_norm=None, jit=False):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.contract = closure_contract(optimizer)
        name = type(optimizer).__name__
        self.residual = None
        if self.contract == "residual":
            self.residual = residual_form(loss_fn)
            if self.residual is None:
                raise ValueError(f"fit: {name} minimises a sum of squares ½‖r‖² and "
                                 f"{_loss_name(loss_fn)} has no residual form; use mse_loss "
                                 "(regression), or for classification an optimizer that takes "
                                 "any loss (lbfgs, bfgs, newton-cg, adam, ...).")
        self.clip = None
        if clip_grad_norm is not None:
            if self.contract not in ("none", "backward"):
                raise ValueError(f"fit: clip_grad_norm clips .grad, which {name} never reads "
                                 "(it differentiates the loss itself); leave clip_grad_norm "
                                 "unset for it.")

            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            self.clip = lambda: clip_grad_norm_(parameters, clip_grad_norm)
        self.first_order = self._first_order
        if jit and self.contract == "none":
            self.first_order = capture_step(self._first_order)
        self.on_loss, self.value = None, None

    def __call__(self, X, y, on_loss):
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        if self.contract == "none":
            self.on_loss = on_loss
            outputs = self.first_order(X, y)
            return outputs, self.value


        first = []  # (outputs, loss) of the first evaluation: the batch before the step

        def forward():
            outputs = model(X)
            if not first:
                with no_grad():
                    value = loss_fn(outputs.detach(), y).item()
                on_loss(value)
                first.append((outputs, value))
            return outputs

        if self.contract == "forward":
            optimizer.step(forward, lambda outputs: loss_fn(outputs, y))
        elif self.contract == "residual":
            optimizer.step(lambda: self.residual(forward(), y))
        elif self.contract == "graph":
            optimizer.step(lambda: loss_fn(forward(), y))
        else:
            optimizer.step(self._backward_closure(forward, y))
            optimizer.zero_grad()
        return first[0]

    def _first_order(self, X, y):
        """Forward, the loss (reported before anything is stepped with it), backward,
        clipping, the optimizer's step and zero_grad; returns the outputs."""
        outputs = self.model(X)
        loss = self.loss_fn(outputs, y)
        self._report(loss)
        loss.backward()
        if self.clip is not None:
            self.clip()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return outputs

    @capture.host_call  # under jit, the loss of every call is read and checked again
    def _report(self, loss):
        self.value = loss.item()
        self.on_loss(self.value)

    def _backward_closure(self, forward, y):
        def closure():
            self.optimizer.zero_grad()
            loss = self.loss_fn(forward(), y)
            loss.backward()
            if self.clip is not None:
                self.clip()
            return loss

        return closure
