"""Stochastic gradient descent with (Nesterov) momentum: PyTorch's ``SGD``."""

from ..backend import xp_of
from ..cuda_kernels import fusable
from . import _rules
from .optimizer import Optimizer, check_number

MOMENTUM_FORMS = ("pytorch", "lecture")


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum, as ``torch.optim.SGD``.

    For every parameter θ with gradient g = ∇θL, at step t (γ is ``lr``,
    μ is ``momentum``, τ is ``dampening``, λ is ``weight_decay``)::

        g ← -g                          if maximize
        g ← g + λ θ                     if λ ≠ 0          (L2 penalty, coupled)
        b ← g                           at t = 1           } if μ ≠ 0
        b ← μ b + (1 - τ) g             at t > 1           }
        g ← g + μ b   if nesterov, else   g ← b            }
        θ ← θ - γ g

    ``b`` is ``state[p]["momentum_buffer"]``. With μ = 0 this is plain
    gradient descent θ ← θ - γ g.

    Args:
        params: Tensors or parameter groups (dicts).
        lr (float): γ, the learning rate (default 1e-3, as PyTorch 2.x).
        momentum (float): μ (default 0).
        dampening (float): τ (default 0).
        weight_decay (float): λ (default 0).
        nesterov (bool): Nesterov momentum (needs μ > 0 and τ = 0).
        maximize (bool): ascend instead of descend.
        momentum_form (str): ``"pytorch"`` (default) or ``"lecture"``, see below.

    Note:
        The lecture writes momentum with the learning rate *inside* the
        velocity, v ← μ v - γ g, θ ← θ + v, and Nesterov momentum as
        v ← μ v - γ ∇L(θ + μ v), θ ← θ + v, which after the change of
        variables θ̃ = θ + μ v reads v ← μ v - γ g, θ ← θ + v + μ (v - v_prev)
        (Sutskever et al. 2013). ``momentum_form="lecture"`` runs exactly
        that (its buffer holds v, which includes γ; τ must be 0).
        With v = -γ b the two forms give the *same iterates while γ is
        constant*. They part when γ changes (a schedule): PyTorch's form
        multiplies the whole accumulated b by the new γ at once, the lecture's
        keeps past steps at the γ they were taken with. The lecture's other
        form, v ← ρ v + g, x ← x - α v, is PyTorch's.

    Example:
        >>> import tinygrad_opt as tg
        >>> x = tg.tensor([3.0], requires_grad=True)
        >>> opt = tg.optim.SGD([x], lr=0.1, momentum=0.9)
        >>> for _ in range(3):
        ...     opt.zero_grad(); loss = (x * x).sum(); loss.backward(); opt.step()
        >>> round(x.item(), 4)
        0.186
    """

    STATE_NAMES = frozenset(("momentum_buffer",))

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, momentum_form="pytorch"):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        momentum_form=momentum_form)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        check_number("lr", group["lr"], 0.0, what="learning rate")
        check_number("momentum", group["momentum"], 0.0, what="momentum value")
        check_number("dampening", group["dampening"], what="dampening value")
        check_number("weight_decay", group["weight_decay"], 0.0, what="weight_decay value")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}).")
        form = group["momentum_form"]
        if form not in MOMENTUM_FORMS:
            raise ValueError(f"Invalid momentum_form: {form!r} (use 'pytorch' or 'lecture').")
        if form == "lecture" and group["dampening"] != 0:
            raise ValueError("momentum_form='lecture' has no dampening; set dampening=0 or "
                             "use momentum_form='pytorch'.")

    def _step_group(self, group):
        momentum = group["momentum"]
        rule = _sgd_lecture if group["momentum_form"] == "lecture" else _sgd
        names = ("momentum_buffer",) if momentum != 0 else ()

        def update(param, grad, arrays, step):
            buf = rule(param, grad, arrays.get("momentum_buffer"),
                       lr=group["lr"], momentum=momentum, dampening=group["dampening"],
                       weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                       maximize=group["maximize"])
            if buf is not None:  # made at the first step (b ← g): it joins the state
                arrays.setdefault("momentum_buffer", buf)

        self._step_elementwise(group, names, update, self.state.__getitem__,
                               counts_steps=False)


@fusable("sgd")  # CuPy arrays take the fused kernel of cuda_kernels.py
def _sgd(param, grad, momentum_buffer, *, lr, momentum, dampening, weight_decay, nesterov,
         maximize):
    """One SGD step on arrays, in place on ``param`` (and ``momentum_buffer``).
    Returns the momentum buffer (a new array at the first step), or None."""
    g = _rules.l2_penalty(_rules.ascent(grad, maximize), param, weight_decay)
    if momentum != 0:
        buf = momentum_buffer
        if buf is None:
            buf = _rules.as_array(g).copy()     # b ← g at the first step
        else:
            buf *= momentum                     # b ← μ b + (1 - τ) g
            buf += g * (1 - dampening) if dampening != 0 else g
        if nesterov:
            g = g + buf * momentum              # g ← g + μ b
        else:
            g = buf
    else:
        buf = None
    param -= g * lr if lr != 1 else g           # θ ← θ - γ g
    return buf


def _sgd_lecture(param, grad, momentum_buffer, *, lr, momentum, dampening, weight_decay,
                 nesterov, maximize):
    """The lecture's momentum: v ← μ v - γ g, θ ← θ + v (Nesterov: θ ← θ + v + μ(v - v_prev)).
    ``momentum_buffer`` holds v. Returns it (a new array at the first step), or None."""
    g = _rules.l2_penalty(_rules.ascent(grad, maximize), param, weight_decay)
    if momentum == 0:
        param -= g * lr
        return None
    xp = xp_of((param,))
    v = xp.zeros_like(param) if momentum_buffer is None else momentum_buffer
    prev = v.copy() if nesterov else None
    v *= momentum                               # v ← μ v - γ g
    v -= g * lr
    if nesterov:
        step = _rules.as_array(v - prev)        # θ ← θ + v + μ (v - v_prev)
        step *= momentum
        step += v
        param += step
    else:
        param += v                              # θ ← θ + v
    return v
