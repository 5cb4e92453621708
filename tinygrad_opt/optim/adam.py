"""Adam and AdamW: PyTorch's ``Adam`` (with ``amsgrad``) and ``AdamW``."""

import math

from ..backend import xp_of
from ..cuda_kernels import fusable
from . import _rules
from .optimizer import Optimizer, check_number


def check_betas(betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"Invalid betas: {betas!r} (betas must be a pair (beta1, beta2)).") \
            from None
    check_number("betas[0]", b1, 0.0, 1.0, high_open=True, what="beta parameter at index 0")
    check_number("betas[1]", b2, 0.0, 1.0, high_open=True, what="beta parameter at index 1")


def check_adam_group(group):
    """The checks every Adam-family group needs: lr, eps, betas and weight_decay."""
    check_number("lr", group["lr"], 0.0, what="learning rate")
    check_number("eps", group["eps"], 0.0, what="epsilon value")
    check_betas(group["betas"])
    check_number("weight_decay", group["weight_decay"], 0.0, what="weight_decay value")


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015), optionally AMSGrad, as ``torch.optim.Adam``.

    For every parameter θ with gradient g, at step t = 1, 2, ... (γ is ``lr``,
    β₁, β₂ are ``betas``, ε is ``eps``, λ is ``weight_decay``)::

        g ← -g                              if maximize
        θ ← θ (1 - γ λ)                     if decoupled_weight_decay (AdamW)
        g ← g + λ θ                         otherwise, if λ ≠ 0   (L2 penalty)
        m ← β₁ m + (1 - β₁) g               (exp_avg)
        v ← β₂ v + (1 - β₂) g ⊙ g           (exp_avg_sq)
        v_max ← max(v_max, v)               if amsgrad (max_exp_avg_sq); then v := v_max
        m̂ = m / (1 - β₁ᵗ)                   (m̂ = m without bias_correction)
        v̂ = v / (1 - β₂ᵗ)                   (v̂ = v without bias_correction)
        θ ← θ - γ m̂ / (√v̂ + ε)

    with m, v (and v_max) starting at zero; t is ``state[p]["step"]``.

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ (default 1e-3).
        betas (tuple): (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps (float): ε (default 1e-8).
        weight_decay (float): λ (default 0).
        amsgrad (bool): use the running maximum of v (Reddi et al. 2018).
        maximize (bool): ascend instead of descend.
        decoupled_weight_decay (bool): decay θ directly, as AdamW (default False).
        eps_inside_sqrt (bool): the lecture's θ ← θ - γ m̂ / √(v̂ + ε) (default False).
        bias_correction (bool): divide m and v by 1 - βᵗ (default True). False is the
            lecture's "Adam (almost)", θ ← θ - γ m / (√v + ε): with a constant
            gradient and betas (0.9, 0.999) its first steps are 3.16γ, 4.25γ, 4.95γ
            (0.1/√0.001, 0.19/√0.001999, ...) where Adam's are all γ.

    Note:
        The lecture writes the final step both as PyTorch does and with ε
        *inside* the square root, θ ← θ - γ m̂ / √(v̂ + ε). The two differ
        where v̂ is comparable to ε (tiny or vanishing gradients: inside, the
        step is at most γ m̂/√ε = 10⁴ γ m̂; outside, up to 10⁸ γ m̂) and agree
        to many digits where v̂ ≫ ε. ``eps_inside_sqrt=True`` selects the
        lecture's form. PyTorch's ``weight_decay`` is an L2 penalty added to
        g (which Adam then rescales); decoupled decay is :class:`AdamW`.

    Example:
        >>> import tinygrad_opt as tg
        >>> x = tg.tensor([3.0], requires_grad=True)
        >>> opt = tg.optim.Adam([x], lr=0.1)
        >>> for _ in range(3):
        ...     opt.zero_grad(); loss = (x * x).sum(); loss.backward(); opt.step()
        >>> round(x.item(), 4)
        2.7004
    """

    STATE_NAMES = frozenset(("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"))

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False,
                 eps_inside_sqrt=False, bias_correction=True):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                        eps_inside_sqrt=eps_inside_sqrt, bias_correction=bias_correction)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        check_adam_group(group)

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        buffers = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
        # 1 - βᵗ is exactly 1 at t = ∞ (β < 1): without bias correction the same
        # rule, fused or not, then skips both corrections.
        corrected = group["bias_correction"]

        def update(param, grad, arrays, step):
            _adam(param, grad, arrays["exp_avg"], arrays["exp_avg_sq"],
                  arrays["max_exp_avg_sq"] if amsgrad else None,
                  step=step if corrected else math.inf, lr=group["lr"], beta1=beta1,
                  beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                  amsgrad=amsgrad, maximize=group["maximize"],
                  decoupled_weight_decay=group["decoupled_weight_decay"],
                  eps_inside_sqrt=group["eps_inside_sqrt"])

        self._step_elementwise(group, buffers, update)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``.

    The rule of :class:`Adam` with ``decoupled_weight_decay=True``: the decay
    acts on θ directly, scaled by the learning rate and *not* by Adam's
    per-coordinate step (γ is ``lr``, λ is ``weight_decay``)::

        θ ← θ (1 - γ λ)
        m ← β₁ m + (1 - β₁) g,   v ← β₂ v + (1 - β₂) g ⊙ g
        θ ← θ - γ m̂ / (√v̂ + ε)    (m̂, v̂ bias-corrected; amsgrad as in Adam)

    The default λ is 1e-2 (Adam's is 0). With λ = 0 AdamW is exactly Adam.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, eps_inside_sqrt=False,
                 bias_correction=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True,
                         eps_inside_sqrt=eps_inside_sqrt, bias_correction=bias_correction)


@fusable("adam")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
          weight_decay, amsgrad, maximize, decoupled_weight_decay=False,
          eps_inside_sqrt=False):
    """One Adam step on arrays, in place on ``param`` and the moment arrays.
    ``step`` is t after the increment (1 at the first step).

    The last line uses the paper's efficient form (Kingma & Ba, §2):
    γ m̂ / (√v̂ + ε) = γ √(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε √(1-β₂ᵗ)), the same number
    up to rounding, with one scratch array and no bias-corrected copies.
    """
    xp = xp_of((param,))
    g = _rules.ascent(grad, maximize)
    if weight_decay != 0:
        if decoupled_weight_decay:
            _rules.decoupled_decay_(param, lr, weight_decay)    # θ ← θ(1 - γλ)
        else:
            g = _rules.l2_penalty(g, param, weight_decay)       # g ← g + λθ
    tmp = _rules.as_array(xp.multiply(g, 1 - beta1))            # m ← β₁m + (1-β₁)g
    exp_avg *= beta1
    exp_avg += tmp
    xp.multiply(g, g, out=tmp)                                  # v ← β₂v + (1-β₂)g²
    tmp *= 1 - beta2
    exp_avg_sq *= beta2
    exp_avg_sq += tmp
    v = exp_avg_sq
    if amsgrad:                                                 # v_max ← max(v_max, v)
        v = xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    bc1 = _rules.bias_correction(beta1, step)                   # 1 - β₁ᵗ
    bc2 = _rules.bias_correction(beta2, step)                   # 1 - β₂ᵗ
    if eps_inside_sqrt:
        xp.divide(v, bc2, out=tmp)                              # √(v̂ + ε)
        tmp += eps
        xp.sqrt(tmp, out=tmp)
        scale = lr / bc1
    else:
        root = bc2 ** 0.5
        xp.sqrt(v, out=tmp)                                     # (√v̂ + ε)·√(1-β₂ᵗ)
        tmp += eps * root
        scale = lr / bc1 * root
    xp.divide(exp_avg, tmp, out=tmp)                            # θ ← θ - γ m̂ / (√v̂ + ε)
    tmp *= -scale
    param += tmp
