"""Proximal Backpropagation (Frerix, Möllenhoff, Moeller, Cremers, ICLR 2018).

ProxProp keeps BackProp's explicit steps through the nonlinearities but replaces
the explicit (gradient) step on a linear layer's parameters by an implicit,
proximal one. For a layer z = a Wᵀ + b on a batch of N inputs a (N, d_in), write

    A = [a, 1]            (N, d_in+1)   the inputs with a column of ones,
    θ = [Wᵀ; bᵀ]          (d_in+1, d_out) the parameters,
    δ = ∂L/∂z             (N, d_out)    what backprop delivers to the layer,
    g = Aᵀ δ = [∂L/∂Wᵀ; ∂L/∂bᵀ]         the ordinary backprop gradient.

The reference code (``tfrerix/proxprop``, ``ProxProp.py``) takes the explicit
step z⁺ = z − δ and then the proximal step

    θ⁺ = argmin_X ½‖A X − z⁺‖² + 1/(2τ)‖X − θ‖²
       ⇔ (AᵀA + I/τ) X = Aᵀ z⁺ + θ/τ,

and reports θ − θ⁺ as the layer's "gradient". Since A θ = z, that direction is

    d = θ − θ⁺ = (AᵀA + I/τ)⁻¹ g,

a Levenberg-damped, input-side Gauss-Newton preconditioning of g. Modes:

* ``"prox_exact"``: solve the (d_in+1)² system directly (Cholesky,
  :func:`tinygrad_opt.linalg.solvers.solve`);
* ``"prox_cgN"`` (``"prox_cg1"``, ``"prox_cg3"``, ...): N iterations of block
  CG (:func:`tinygrad_opt.linalg.solvers.cg`, one step length per output
  column), warm-started at θ⁺ = θ, i.e. at d = 0 -- ``prox_cg1`` is one
  exact-line-search gradient step on each column's quadratic;
* ``"gradient"``: d = g, plain backprop through the same code (the baseline).

The input's gradient is BackProp's δ W with the *old* W (the explicit step on
a). The direction is written into ``.grad``, so any first-order optimizer
consumes it; with SGD at lr 1 and no momentum one step *is* the proximal step.
The paper keeps the final classifier a plain :class:`~tinygrad_opt.nn.Linear`;
:class:`ProxPropMLP` does the same.

The backward works on arrays: a ProxLinear's gradient cannot itself be
differentiated (no double backward through it).
"""

import re

from ..backend import xp_of
from ..linalg import solvers
from ..op import Op
from ..tensor import Tensor
from .linear import Linear
from .mlp import MLP

__all__ = ["ProxLinear", "ProxPropMLP", "set_proxprop", "proximal_direction", "parse_mode"]

_MODE = re.compile(r"^(prox_exact|gradient|prox_cg(\d+))$")


def parse_mode(mode):
    """``"prox_exact"`` -> ("exact", None), ``"prox_cg3"`` -> ("cg", 3),
    ``"gradient"`` -> ("gradient", None)."""
    match = _MODE.match(str(mode))
    if match is None or (match.group(2) is not None and int(match.group(2)) < 1):
        raise ValueError(f"ProxLinear: unknown optimization mode {mode!r}; use 'prox_exact', "
                         "'prox_cgN' with N >= 1 (e.g. 'prox_cg1') or 'gradient'.")
    if match.group(2) is not None:
        return "cg", int(match.group(2))
    return ("exact", None) if mode == "prox_exact" else ("gradient", None)


def proximal_direction(A, g, tau, mode):
    """d = (AᵀA + I/τ)⁻¹ g (exact or by N CG steps from 0), or g for ``"gradient"``.

    ``A`` (N, n) and ``g`` (n, k) are arrays; the result is an (n, k) array.
    """
    kind, iters = parse_mode(mode)
    if kind == "gradient":
        return g
    xp = xp_of((A,))
    n = A.shape[1]
    if kind == "exact":
        M = A.T @ A
        M[xp.diag_indices(n)] += 1.0 / tau
        return solvers.solve(M, g)
    # CG on X ↦ Aᵀ(A X) + X/τ, never forming AᵀA (warm start θ⁺ = θ is d = 0).
    result = solvers.cg(lambda X: A.T @ (A @ X) + X / tau, g, tol=0.0, atol=0.0, maxiter=iters)
    return result.x


class _ProxLinearOp(Op):
    """z = x Wᵀ + b forward; backward: gx = δ W, (gW, gb) from the proximal direction."""

    hint = ("the input's last dimension must equal in_features (the weight is "
            "(out_features, in_features))")

    @staticmethod
    def forward(xp, x, w, b=None, tau=1.0, mode="prox_cg1"):
        out = x @ w.T
        return out + b if b is not None else out

    @staticmethod
    def backward(ctx, g, out):
        x, w, b = ctx.inputs
        tau, mode = ctx.attrs["tau"], ctx.attrs["mode"]
        needs = ctx.needs_input_grad
        gd, xd, wd = g.data, x.data, w.data
        n_out, n_in = wd.shape
        gx = Tensor.constant(gd @ wd) if needs[0] else None
        if not (needs[1] or (b is not None and needs[2])):
            return gx, None, None
        g2 = gd.reshape(-1, n_out)
        a2 = xd.reshape(-1, n_in)
        xp = xp_of((a2,))
        if b is not None:
            A = xp.concatenate([a2, xp.ones((a2.shape[0], 1), dtype=a2.dtype)], axis=1)
        else:
            A = a2
        direction = proximal_direction(A, A.T @ g2, tau, mode).astype(wd.dtype, copy=False)
        gw = Tensor.constant(xp.ascontiguousarray(direction[:n_in].T))
        gb = Tensor.constant(direction[n_in]) if b is not None else None
        return gx, (gw if needs[1] else None), (gb if b is not None and needs[2] else None)


class ProxLinear(Linear):
    """A Linear layer whose parameter gradient is the ProxProp direction.

    Args:
        in_features, out_features, bias, device, dtype: as :class:`Linear`.
        tau_prox: the proximal step size τ (default 1.0, the reference code's).
        optimization_mode: ``"prox_cgN"`` (default ``"prox_cg1"``),
            ``"prox_exact"`` or ``"gradient"``.

    The forward is Linear's (z = x Wᵀ + b); after ``backward`` the weight's and
    bias's ``.grad`` hold (AᵀA + I/τ)⁻¹ [∂L/∂Wᵀ; ∂L/∂bᵀ] (transposed back), see
    the module docstring.
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None,
                 tau_prox=1.0, optimization_mode="prox_cg1"):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.set_mode(optimization_mode, tau_prox)

    def set_mode(self, optimization_mode=None, tau_prox=None):
        """Change the mode and/or τ in place (the parameters stay)."""
        if optimization_mode is not None:
            parse_mode(optimization_mode)
            self.optimization_mode = optimization_mode
        if tau_prox is not None:
            if not tau_prox > 0:
                raise ValueError(f"ProxLinear: tau_prox must be positive, got {tau_prox!r}.")
            self.tau_prox = float(tau_prox)

    @classmethod
    def from_linear(cls, linear, tau_prox=1.0, optimization_mode="prox_cg1"):
        """A ProxLinear that shares ``linear``'s weight and bias Parameters."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    device=linear.weight.device, dtype=linear.weight.dtype, tau_prox=tau_prox,
                    optimization_mode=optimization_mode)
        layer.weight = linear.weight
        if linear.bias is not None:
            layer.bias = linear.bias
        return layer

    def forward(self, input):
        params = self._parameters
        if not isinstance(input, Tensor):
            input = Tensor(input, dtype=params["weight"].dtype, device=params["weight"].device)
        return _ProxLinearOp.apply(input, params["weight"], params["bias"], tau=self.tau_prox,
                                   mode=self.optimization_mode)

    def extra_repr(self):
        return (super().extra_repr() + f", tau_prox={self.tau_prox}, "
                f"optimization_mode={self.optimization_mode!r}")


def set_proxprop(model, optimization_mode="prox_cg1", tau_prox=1.0):
    """The switch: turn every Linear of ``model`` except the last one into a
    ProxLinear sharing its Parameters (or update the mode/τ of existing ones).
    Returns ``model``. The last Linear (the classifier) stays plain, as in the paper."""
    parse_mode(optimization_mode)
    slots = [(parent, name, child) for parent in model.modules()
             for name, child in parent._modules.items() if isinstance(child, Linear)]
    if not slots:
        raise ValueError(f"set_proxprop: {type(model).__name__} has no Linear layer to switch; "
                         "build the model from nn.Linear layers.")
    for parent, name, child in slots[:-1]:
        if isinstance(child, ProxLinear):
            child.set_mode(optimization_mode, tau_prox)
        else:
            parent._modules[name] = ProxLinear.from_linear(child, tau_prox, optimization_mode)
    return model


class ProxPropMLP(MLP):
    """:class:`MLP` whose hidden Linear layers are ProxLinear; the classifier is a plain Linear.

    ``ProxPropMLP([64, 256, 256, 10], optimization_mode="prox_exact", tau_prox=1.0)``;
    the other arguments are MLP's. Same parameter names as the MLP.
    """

    def __init__(self, sizes, activation="relu", optimization_mode="prox_cg1", tau_prox=1.0,
                 **kwargs):
        super().__init__(sizes, activation=activation, **kwargs)
        set_proxprop(self, optimization_mode, tau_prox)
