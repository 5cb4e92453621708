"""Forgetting gradients: what ``Module.zero_grad`` and ``Optimizer.zero_grad`` both do.

It sits below ``nn`` and ``optim`` so that neither has to import the other for it;
``tinygrad_opt.nn.utils.zero_grads`` (where users find it) names this function.
"""

from .. import capture
from ..backend import xp_of
from ..tensor import Tensor


@capture.host_call  # tg.jit runs it again at every replay: it changes Python state
def zero_grads(parameters, set_to_none=True):
    """Forget every parameter's gradient: ``grad = None`` by default, or a fresh zero
    array with ``set_to_none=False`` (never written in place: a gradient array may be
    shared). ``parameters`` is one Tensor or an iterable of them."""
    for param in [parameters] if isinstance(parameters, Tensor) else parameters:
        if param.grad is None:
            continue
        if set_to_none:
            param.grad = None
        else:
            g = param.grad.data
            param.grad = Tensor.constant(xp_of((g,)).zeros_like(g))


# tg.jit: a gradient set after this ran needs no check that the old one was None
zero_grads.__wrapped__.clears_grads = True
