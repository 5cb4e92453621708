"""Adamax: PyTorch's ``Adamax`` (Adam with the infinity norm, Kingma & Ba 2015 §7)."""

from ..backend import xp_of
from ..cuda_kernels import fusable
from . import _rules
from .adam import check_adam_group
from .optimizer import Optimizer, advance_step


class Adamax(Optimizer):
    r"""Adamax, as ``torch.optim.Adamax``.

    For every parameter θ with gradient g, at step t = 1, 2, ... (γ is ``lr``,
    β₁, β₂ are ``betas``, ε is ``eps``, λ is ``weight_decay``)::

        g ← -g                          if maximize
        g ← g + λ θ                     if λ ≠ 0
        m ← β₁ m + (1 - β₁) g           (exp_avg)
        u ← max(β₂ u, |g| + ε)          (exp_inf)
        θ ← θ - γ / (1 - β₁ᵗ) · m / u

    with m and u starting at zero.

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ (default 2e-3).
        betas (tuple): (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps (float): ε (default 1e-8).
        weight_decay (float): λ (default 0).
        maximize (bool): ascend instead of descend.

    Note:
        The paper's u ← max(β₂ u, |g|) has no ε; PyTorch adds it to |g| so
        that u never vanishes.
    """

    STATE_NAMES = frozenset(("step", "exp_avg", "exp_inf"))

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
                 maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        check_adam_group(group)

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        buffers = ("exp_avg", "exp_inf")
        params = self._params_with_grad(group)
        states = [self._lazy_state(p, buffers) for p in params]
        steps = [advance_step(state) for state in states]

        def update(param, grad, arrays, k):
            _adamax(param, grad, arrays["exp_avg"], arrays["exp_inf"],
                    step=steps[k], lr=group["lr"], beta1=beta1, beta2=beta2,
                    eps=group["eps"], weight_decay=group["weight_decay"],
                    maximize=group["maximize"])

        self._update_all(group, params, states, buffers, update)


@fusable("adamax")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _adamax(param, grad, exp_avg, exp_inf, *, step, lr, beta1, beta2, eps, weight_decay,
            maximize):
    """One Adamax step on arrays, in place on ``param``, ``exp_avg``, ``exp_inf``."""
    xp = xp_of((param,))
    g = _rules.l2_penalty(_rules.ascent(grad, maximize), param, weight_decay)
    _rules.lerp_(xp, exp_avg, g, 1 - beta1)         # m ← β₁m + (1-β₁)g
    exp_inf *= beta2                                # u ← max(β₂u, |g| + ε)
    norm = _rules.as_array(xp.abs(g))
    norm += eps
    xp.maximum(exp_inf, norm, out=exp_inf)
    clr = lr / _rules.bias_correction(beta1, step)  # θ ← θ - γ/(1-β₁ᵗ) · m/u
    _rules.add_scaled_ratio_(param, exp_avg, exp_inf, -clr)
