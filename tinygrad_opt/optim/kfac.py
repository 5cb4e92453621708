"""K-FAC for MLPs of Linear layers (Martens & Grosse, ICML 2015).

For a layer s = W̄ ā with ā = [a; 1] (the input with a 1 appended for the bias)
and W̄ = [W, b] (d_out × (d_in+1)), the Fisher block is approximated as

    F ≈ Ā ⊗ G,   Ā = E[ā āᵀ]  ((d_in+1)²),   G = E[g gᵀ]  (d_out²),

with g = ∂(per-sample loss)/∂s. Because (Ā ⊗ G)⁻¹ vec(V) = vec(G⁻¹ V Ā⁻¹), the
preconditioned gradient of the layer is

    Δ = (G + γI)⁻¹ [∇W, ∇b] (Ā + γI)⁻¹

(gpauloski/kfac-pytorch's damping: γ added to both factors). Ā and G are
exponential moving averages over steps, Ā ← ε Ā + (1−ε) āᵀā/N and likewise G
(ε = ``factor_decay``), and the damped inverses are refreshed every
``inv_update_steps`` steps. Δ replaces ``.grad`` and the step itself is
:class:`SGD`'s (momentum, Nesterov, weight decay...).

G is the *empirical* Fisher flavour (gradients of the training loss with the
true labels, as gpauloski's code), not the paper's sampled-target Fisher. With
a mean loss over N samples the captured ∂L/∂s is g/N, so it is multiplied by N.

The inputs and output gradients are captured by wrapping each Linear's
forward (an instance attribute; the class is untouched): the forward records ā
and passes s through an identity op whose backward records ∂L/∂s.

A layer is told by what it carries, as :class:`~tinygrad_opt.nn.Linear` does (see
``is_affine_layer``), not by importing ``nn``: the optimizers stand below the layers.
"""

from ..backend import xp_of
from ..linalg import solvers
from ..op import Function, enable_grad
from ..tensor import Tensor
from .sgd import SGD

__all__ = ["KFAC"]


class _Capture(Function):
    """Identity whose backward hands the incoming gradient to ``sink``."""

    @staticmethod
    def forward(ctx, s, sink):
        ctx.sink = sink
        return s

    @staticmethod
    def backward(ctx, grad):
        ctx.sink(grad.data)
        return grad, None


def is_affine_layer(module):
    """True for a layer s = x Wᵀ + b as ``nn.Linear`` and its subclasses build it: it has
    ``in_features``, ``out_features``, a ``bias`` (None or a Parameter) and a ``weight``
    of shape (out_features, in_features)."""
    weight = getattr(module, "weight", None)
    return (hasattr(module, "bias") and weight is not None
            and tuple(weight.shape) == (getattr(module, "out_features", None),
                                        getattr(module, "in_features", None)))


def _inverse(M, damping):
    xp = xp_of((M,))
    n = M.shape[0]
    return solvers.solve(M + damping * xp.eye(n, dtype=M.dtype), xp.eye(n, dtype=M.dtype))


class KFAC(SGD):
    """K-FAC-preconditioned SGD for the Linear layers of ``model``.

    Args:
        model: a Module; every :class:`~tinygrad_opt.nn.Linear` in it is
            preconditioned (other parameters get the plain gradient).
        lr, momentum, nesterov, weight_decay: SGD's (default lr 0.1, momentum 0.9).
        damping: γ added to each factor before inversion (default 0.1; gpauloski 1e-3, which diverged
            with momentum 0.9 on our small MLPs).
        factor_decay: ε of the moving averages (default 0.95).
        inv_update_steps: refresh the inverses every k steps (default 10).
        kl_clip: gpauloski's trust bound: every Δ is scaled by
            ν = min(1, √(kl_clip / |lr² Σ_layers ⟨Δ, ∇⟩|)) (default 1e-3; None: off).

    Use as any optimizer: forward, ``loss.backward()``, ``opt.step()``. Only
    forwards in training mode update the captured statistics.
    """

    def __init__(self, model, lr=0.1, momentum=0.9, nesterov=False, weight_decay=0,
                 damping=0.1, factor_decay=0.95, inv_update_steps=10, kl_clip=1e-3):
        super().__init__(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)
        if not damping > 0:
            raise ValueError(f"KFAC: damping must be positive, got {damping!r}.")
        if not 0 <= factor_decay < 1:
            raise ValueError(f"KFAC: factor_decay must be in [0, 1), got {factor_decay!r}.")
        self.damping, self.factor_decay = float(damping), float(factor_decay)
        self.inv_update_steps = int(inv_update_steps)
        self.kl_clip = kl_clip
        self.layers = [m for m in model.modules() if is_affine_layer(m)]
        if not self.layers:
            raise ValueError(f"KFAC: {type(model).__name__} has no Linear layer to precondition.")
        self.kfac_state = [{"A": None, "G": None, "A_inv": None, "G_inv": None, "a": None,
                            "g": None} for _ in self.layers]
        self.kfac_steps = 0
        for layer, st in zip(self.layers, self.kfac_state):
            self._wrap(layer, st)

    def _wrap(self, layer, st):
        original = type(layer).forward

        def forward(input, _layer=layer, _st=st):
            out = original(_layer, input)
            if not _layer.training:
                return out
            a = getattr(input, "data", input)
            xp = xp_of((a,))
            a = a.reshape(-1, a.shape[-1])
            if _layer.bias is not None:
                a = xp.concatenate([a, xp.ones((a.shape[0], 1), dtype=a.dtype)], axis=1)
            _st["a"] = a

            def sink(g, _st=_st, _n=a.shape[0]):
                _st["g"] = g.reshape(-1, g.shape[-1]) * _n

            return _Capture.apply(out, sink)

        object.__setattr__(layer, "forward", forward)

    def _update_factors(self):
        eps = self.factor_decay
        for st in self.kfac_state:
            a, g = st["a"], st["g"]
            if a is None or g is None:
                continue
            A, G = a.T @ a / a.shape[0], g.T @ g / g.shape[0]
            st["A"] = A if st["A"] is None else eps * st["A"] + (1 - eps) * A
            st["G"] = G if st["G"] is None else eps * st["G"] + (1 - eps) * G
            st["a"] = st["g"] = None

    def precondition(self):
        """Update the factors from the last forward/backward, refresh the inverses
        when due, and replace each Linear's ``.grad`` by ν G⁻¹ [∇W, ∇b] Ā⁻¹."""
        self._update_factors()
        refresh = self.kfac_steps % self.inv_update_steps == 0
        self.kfac_steps += 1
        pending, vdotd = [], 0.0
        for layer, st in zip(self.layers, self.kfac_state):
            if st["A"] is None or layer.weight.grad is None:
                continue
            if refresh or st["A_inv"] is None:
                st["A_inv"] = _inverse(st["A"], self.damping)
                st["G_inv"] = _inverse(st["G"], self.damping)
            xp = xp_of((st["A"],))
            gw = layer.weight.grad.data
            V = gw if layer.bias is None else xp.concatenate(
                [gw, layer.bias.grad.data[:, None]], axis=1)
            D = st["G_inv"] @ V @ st["A_inv"]
            vdotd += float((V * D).sum())
            pending.append((layer, D, gw.shape[1]))
        lr = self.param_groups[0]["lr"]
        nu = 1.0
        if self.kl_clip is not None and vdotd != 0:
            nu = min(1.0, (self.kl_clip / abs(lr * lr * vdotd)) ** 0.5)
        for layer, D, n_in in pending:
            D = D * nu
            xp = xp_of((D,))
            layer.weight.grad = Tensor.constant(xp.ascontiguousarray(D[:, :n_in]))
            if layer.bias is not None:
                layer.bias.grad = Tensor.constant(D[:, n_in].copy())

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self.precondition()
        super().step()
        return loss
