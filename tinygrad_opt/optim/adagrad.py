"""Adagrad: PyTorch's ``Adagrad`` (Duchi, Hazan & Singer 2011)."""

from ..backend import xp_of
from ..cuda_kernels import fusable
from ..tensor import Tensor
from . import _rules
from .optimizer import Optimizer, check_number, step_tensor


class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad``: per-coordinate steps shrinking with
    the sum of all squared gradients seen so far.

    For every parameter θ with gradient g, at step t = 1, 2, ... (γ is ``lr``,
    η is ``lr_decay``, λ is ``weight_decay``, ε is ``eps``, s₀ is
    ``initial_accumulator_value``)::

        g ← -g                          if maximize
        g ← g + λ θ                     if λ ≠ 0
        γ̃ = γ / (1 + (t - 1) η)
        s ← s + g ⊙ g                   (state "sum", starting at s₀)
        θ ← θ - γ̃ g / (√s + ε)

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ (default 1e-2).
        lr_decay (float): η (default 0): the lecture's 1/(1 + decay·t) schedule
            built in, counted in steps.
        weight_decay (float): λ (default 0).
        initial_accumulator_value (float): s₀ (default 0).
        eps (float): ε (default 1e-10).
        maximize (bool): ascend instead of descend.

    Note:
        The lecture's AdaGrad is this rule with ε = 1e-7 outside the square
        root, η = 0 and λ = 0: pass ``eps=1e-7`` to reproduce it exactly.
    """

    STATE_NAMES = frozenset(("step", "sum"))

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        # PyTorch creates Adagrad's state eagerly (groups added later: at their first step).
        for group in self.param_groups:
            self._init_state(group)

    def _init_state(self, group):
        init = group["initial_accumulator_value"]
        for p in group["params"]:
            state = self.state[p]
            if len(state) == 0:
                xp = xp_of((p.data,))
                state["step"] = step_tensor()
                state["sum"] = Tensor.constant(xp.full_like(p.data, init))

    def _validate_group(self, group):
        check_number("lr", group["lr"], 0.0, what="learning rate")
        check_number("lr_decay", group["lr_decay"], 0.0, what="lr_decay value")
        check_number("weight_decay", group["weight_decay"], 0.0, what="weight_decay value")
        check_number("initial_accumulator_value", group["initial_accumulator_value"], 0.0,
                     what="initial_accumulator_value value")
        check_number("eps", group["eps"], 0.0, what="epsilon value")

    def _step_group(self, group):
        def new_state(p):  # a group added later, or a state dict without p
            if len(self.state[p]) == 0:
                self._init_state({**group, "params": [p]})
            return self.state[p]

        def update(param, grad, arrays, step):
            _adagrad(param, grad, arrays["sum"], step=step,
                     lr=group["lr"], lr_decay=group["lr_decay"],
                     weight_decay=group["weight_decay"], eps=group["eps"],
                     maximize=group["maximize"])

        self._step_elementwise(group, ("sum",), update, new_state)


@fusable("adagrad")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _adagrad(param, grad, state_sum, *, step, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step on arrays, in place on ``param`` and ``state_sum``."""
    xp = xp_of((param,))
    g = _rules.l2_penalty(_rules.ascent(grad, maximize), param, weight_decay)
    clr = lr / (1 + (step - 1) * lr_decay)      # γ̃ = γ / (1 + (t-1)η)
    sq = _rules.as_array(g * g)                 # s ← s + g²
    state_sum += sq
    std = xp.sqrt(state_sum, out=sq)            # √s + ε
    std += eps
    _rules.add_scaled_ratio_(param, g, std, -clr)  # θ ← θ - γ̃ g / (√s + ε)
