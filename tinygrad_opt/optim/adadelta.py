"""Adadelta: PyTorch's ``Adadelta`` (Zeiler 2012)."""

from ..backend import xp_of
from ..cuda_kernels import fusable
from . import _rules
from .optimizer import Optimizer, check_number


class Adadelta(Optimizer):
    r"""Adadelta, as ``torch.optim.Adadelta``.

    For every parameter θ with gradient g (γ is ``lr``, ρ is ``rho``, ε is
    ``eps``, λ is ``weight_decay``)::

        g ← -g                              if maximize
        g ← g + λ θ                         if λ ≠ 0
        v ← ρ v + (1 - ρ) g ⊙ g             (square_avg)
        Δ = √(u + ε) / √(v + ε) ⊙ g
        u ← ρ u + (1 - ρ) Δ ⊙ Δ             (acc_delta)
        θ ← θ - γ Δ

    with v and u starting at zero.

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ (default 1.0), a factor Zeiler's rule does not have.
        rho (float): ρ in [0, 1] (default 0.9).
        eps (float): ε (default 1e-6).
        weight_decay (float): λ (default 0).
        maximize (bool): ascend instead of descend.
    """

    STATE_NAMES = frozenset(("step", "square_avg", "acc_delta"))

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        check_number("lr", group["lr"], 0.0, what="learning rate")
        check_number("rho", group["rho"], 0.0, 1.0, what="rho value")
        check_number("eps", group["eps"], 0.0, what="epsilon value")
        check_number("weight_decay", group["weight_decay"], 0.0, what="weight_decay value")

    def _step_group(self, group):
        buffers = ("square_avg", "acc_delta")

        def update(param, grad, arrays, step):
            _adadelta(param, grad, arrays["square_avg"], arrays["acc_delta"],
                      lr=group["lr"], rho=group["rho"], eps=group["eps"],
                      weight_decay=group["weight_decay"], maximize=group["maximize"])

        self._step_elementwise(group, buffers, update)


@fusable("adadelta")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _adadelta(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step on arrays, in place on ``param``, ``square_avg``, ``acc_delta``."""
    xp = xp_of((param,))
    g = _rules.l2_penalty(_rules.ascent(grad, maximize), param, weight_decay)
    _rules.ema_square_(square_avg, g, rho)      # v ← ρv + (1-ρ)g²
    std = _rules.as_array(square_avg + eps)     # √(v + ε)
    xp.sqrt(std, out=std)
    delta = _rules.as_array(acc_delta + eps)    # Δ = √(u + ε)/√(v + ε) ⊙ g
    xp.sqrt(delta, out=delta)
    delta /= std
    delta *= g
    _rules.ema_square_(acc_delta, delta, rho)   # u ← ρu + (1-ρ)Δ²
    if lr != 1:
        delta *= lr
    param -= delta                              # θ ← θ - γΔ
