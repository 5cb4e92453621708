"""NAdam: PyTorch's ``NAdam`` (Dozat 2016, Adam with Nesterov momentum)."""

import numpy as np

from ..backend import xp_of
from ..cuda_kernels import fusable
from . import _rules
from .adam import check_adam_group
from .optimizer import Optimizer, advance_step, check_number


class NAdam(Optimizer):
    r"""NAdam, as ``torch.optim.NAdam``: Adam whose first moment looks one step ahead.

    For every parameter θ with gradient g, at step t = 1, 2, ... (γ is ``lr``,
    β₁, β₂ are ``betas``, ε is ``eps``, λ is ``weight_decay``, ψ is
    ``momentum_decay``)::

        g ← -g                              if maximize
        θ ← θ (1 - γ λ)                     if decoupled_weight_decay
        g ← g + λ θ                         otherwise, if λ ≠ 0
        μₜ = β₁ (1 - ½ · 0.96^(t ψ))        (momentum schedule)
        μₜ₊₁ = β₁ (1 - ½ · 0.96^((t+1) ψ))
        Πₜ = Π_{i ≤ t} μᵢ                   (state "mu_product", starting at 1)
        m ← β₁ m + (1 - β₁) g               (exp_avg)
        v ← β₂ v + (1 - β₂) g ⊙ g           (exp_avg_sq)
        d = √(v / (1 - β₂ᵗ)) + ε
        θ ← θ - γ (1 - μₜ) / (1 - Πₜ) · g / d - γ μₜ₊₁ / (1 - Πₜ μₜ₊₁) · m / d

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ (default 2e-3).
        betas (tuple): (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps (float): ε (default 1e-8).
        weight_decay (float): λ (default 0).
        momentum_decay (float): ψ (default 4e-3).
        decoupled_weight_decay (bool): decay θ directly, as AdamW (default False).
        maximize (bool): ascend instead of descend.

    Note:
        Πₜ is kept, as in PyTorch, as a host scalar of the default float dtype
        (float32 unless ``tg.set_default_dtype("float64")``), so its rounding
        matches PyTorch's in either precision.
    """

    STATE_NAMES = frozenset(("step", "mu_product", "exp_avg", "exp_avg_sq"))

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        check_adam_group(group)
        check_number("momentum_decay", group["momentum_decay"], 0.0,
                     what="momentum_decay value")

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        buffers = ("exp_avg", "exp_avg_sq")
        params = self._params_with_grad(group)
        states = [self._lazy_state(p, buffers, mu_product=1.0) for p in params]
        steps = [advance_step(state) for state in states]

        def update(param, grad, arrays, k):
            _nadam(param, grad, arrays["exp_avg"], arrays["exp_avg_sq"],
                   states[k]["mu_product"].data, step=steps[k], lr=group["lr"],
                   beta1=beta1, beta2=beta2, eps=group["eps"],
                   weight_decay=group["weight_decay"], momentum_decay=group["momentum_decay"],
                   decoupled_weight_decay=group["decoupled_weight_decay"],
                   maximize=group["maximize"])

        went_flat = self._update_all(group, params, states, buffers, update,
                                     scalars=("step", "mu_product"))
        for k in went_flat[1:]:  # the flat step advanced the first one's Πₜ for all
            states[k]["mu_product"].data[...] = states[went_flat[0]]["mu_product"].data


@fusable("nadam")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _nadam(param, grad, exp_avg, exp_avg_sq, mu_product, *, step, lr, beta1, beta2, eps,
           weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """One NAdam step on arrays, in place on ``param``, the moments and
    ``mu_product`` (a 0-d host array)."""
    xp = xp_of((param,))
    g = _rules.ascent(grad, maximize)
    bc2 = _rules.bias_correction(beta2, step)
    if weight_decay != 0:
        if decoupled_weight_decay:
            _rules.decoupled_decay_(param, lr, weight_decay)
        else:
            g = _rules.l2_penalty(g, param, weight_decay)
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    np.multiply(mu_product, mu, out=mu_product)     # Πₜ = Πₜ₋₁ μₜ (host scalar)
    prod = float(mu_product)
    prod_next = prod * mu_next
    _rules.lerp_(xp, exp_avg, g, 1 - beta1)         # m ← β₁m + (1-β₁)g
    _rules.ema_square_(exp_avg_sq, g, beta2)        # v ← β₂v + (1-β₂)g²
    denom = _rules.as_array(exp_avg_sq / bc2)       # d = √(v/(1-β₂ᵗ)) + ε
    xp.sqrt(denom, out=denom)
    denom += eps
    _rules.add_scaled_ratio_(param, g, denom, -lr * (1.0 - mu) / (1.0 - prod))
    _rules.add_scaled_ratio_(param, exp_avg, denom, (-lr * mu_next) / (1.0 - prod_next))
