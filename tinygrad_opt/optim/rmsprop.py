"""RMSprop: PyTorch's ``RMSprop`` (Hinton's lecture 6.5), centered and with momentum."""

from ..backend import xp_of
from ..cuda_kernels import fusable
from . import _rules
from .optimizer import Optimizer, check_number


class RMSprop(Optimizer):
    r"""RMSprop, as ``torch.optim.RMSprop``.

    For every parameter θ with gradient g (γ is ``lr``, α is ``alpha``, ε is
    ``eps``, λ is ``weight_decay``, μ is ``momentum``)::

        g ← -g                          if maximize
        g ← g + λ θ                     if λ ≠ 0
        v ← α v + (1 - α) g ⊙ g         (square_avg)
        ḡ ← α ḡ + (1 - α) g             if centered (grad_avg)
        d = √(v - ḡ ⊙ ḡ) + ε            if centered, else  d = √v + ε
        b ← μ b + g / d;  θ ← θ - γ b   if μ > 0 (momentum_buffer)
        θ ← θ - γ g / d                 otherwise

    with v, ḡ, b starting at zero.

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ (default 1e-2).
        alpha (float): α, the smoothing constant (default 0.99).
        eps (float): ε (default 1e-8).
        weight_decay (float): λ (default 0).
        momentum (float): μ (default 0).
        centered (bool): divide by an estimate of the variance instead of the
            second moment (Graves 2013).
        maximize (bool): ascend instead of descend.
        eps_inside_sqrt (bool): the lecture's d = √(v + ε) (or √(v - ḡ⊙ḡ + ε)).

    Note:
        The lecture writes RMSProp both as PyTorch does, θ ← θ - α g / (√s + ε),
        and with ε inside the square root, θ ← θ - α g / √(s + ε)
        (``eps_inside_sqrt=True``). They differ where s is comparable to ε
        (the step is bounded by γ g/√ε inside, γ g/ε outside), and agree to
        many digits where s ≫ ε. The lecture's β is ``alpha`` here.
    """

    STATE_NAMES = frozenset(("step", "square_avg", "momentum_buffer", "grad_avg"))

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False, eps_inside_sqrt=False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize,
                        eps_inside_sqrt=eps_inside_sqrt)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        check_number("lr", group["lr"], 0.0, what="learning rate")
        check_number("eps", group["eps"], 0.0, what="epsilon value")
        check_number("momentum", group["momentum"], 0.0, what="momentum value")
        check_number("weight_decay", group["weight_decay"], 0.0, what="weight_decay value")
        check_number("alpha", group["alpha"], 0.0, what="alpha value")

    def _step_group(self, group):
        momentum, centered = group["momentum"], group["centered"]
        buffers = (("square_avg",) + (("momentum_buffer",) if momentum > 0 else ())
                   + (("grad_avg",) if centered else ()))

        def update(param, grad, arrays, step):
            _rmsprop(param, grad, arrays["square_avg"],
                     arrays["grad_avg"] if centered else None,
                     arrays["momentum_buffer"] if momentum > 0 else None,
                     lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                     weight_decay=group["weight_decay"], momentum=momentum,
                     centered=centered, maximize=group["maximize"],
                     eps_inside_sqrt=group["eps_inside_sqrt"])

        self._step_elementwise(group, buffers, update)


@fusable("rmsprop")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
             weight_decay, momentum, centered, maximize, eps_inside_sqrt=False):
    """One RMSprop step on arrays, in place on ``param`` and the state arrays."""
    xp = xp_of((param,))
    g = _rules.l2_penalty(_rules.ascent(grad, maximize), param, weight_decay)
    _rules.ema_square_(square_avg, g, alpha)            # v ← αv + (1-α)g²
    if centered:
        _rules.lerp_(xp, grad_avg, g, 1 - alpha)        # ḡ ← αḡ + (1-α)g
        d = _rules.as_array(grad_avg * grad_avg)        # d = √(v - ḡ²) + ε
        xp.subtract(square_avg, d, out=d)
        if eps_inside_sqrt:
            d += eps
        xp.sqrt(d, out=d)
    elif eps_inside_sqrt:
        d = _rules.as_array(square_avg + eps)           # d = √(v + ε)
        xp.sqrt(d, out=d)
    else:
        d = _rules.as_array(xp.sqrt(square_avg))        # d = √v + ε
    if not eps_inside_sqrt:
        d += eps
    if momentum > 0:
        buf = momentum_buffer                           # b ← μb + g/d
        buf *= momentum
        buf += xp.divide(g, d, out=d)
        param -= buf * lr if lr != 1 else buf           # θ ← θ - γb
    else:
        _rules.add_scaled_ratio_(param, g, d, -lr)      # θ ← θ - γ g/d
