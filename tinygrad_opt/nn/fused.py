"""Fused ops for the layers and losses that every training step runs.

Each is one graph node instead of five to ten: ``Linear`` (y = x Wᵀ + b),
``CrossEntropy`` (log-softmax and pick, with its reduction), ``BinaryCrossEntropy``
and ``BinaryCrossEntropyWithLogits`` (elementwise, stable at 0 and 1). As every op
of the engine, the forward works on arrays and the backward is written with Tensor
ops, so the gradient can itself be differentiated (gradgradcheck holds). When grad
mode is off during the backward -- an ordinary ``loss.backward()``, which records no
graph of the gradient -- the backward computes the very same formulas directly on the
arrays, which skips the bookkeeping of a dozen tiny ops per step.
"""

import numpy as np

from .. import op as op_module
from ..backend import xp_of
from ..op import Op
from ..ops.reduce import ScatterAlong
from ..tensor import Tensor


def _xp(array):
    return xp_of((array,))


class Linear(Op):
    """z = x Wᵀ + b  (x: (..., in), W: (out, in), b: (out,)).

    dz/dx = g W,   dz/dW = gᵀ x  (batch dimensions flattened),   dz/db = Σ_batch g.
    """

    hint = ("the input's last dimension must equal in_features (the weight is "
            "(out_features, in_features))")
    dtype_rule = "same"  # as torch.nn.functional.linear: no silent float32/float64 mixing

    @staticmethod
    def forward(xp, x, w, b=None):
        out = x @ w.T
        if b is not None:
            if out.dtype == b.dtype and out.ndim:
                out += b
            else:
                out = out + b
        return out

    @staticmethod
    def backward(ctx, g, out):
        x, w, _ = ctx.inputs
        needs = ctx.needs_input_grad
        n_out = w.shape[0]
        if not op_module.is_grad_enabled():  # no graph of the gradient: plain arrays
            gd, xd, wd = g.data, x.data, w.data
            gx = Tensor.constant(gd @ wd) if needs[0] else None
            g2 = gd.reshape(-1, n_out)
            gw = Tensor.constant(g2.T @ xd.reshape(-1, xd.shape[-1])) if needs[1] else None
            gb = Tensor.constant(g2.sum(axis=0)) if needs[2] else None
            return gx, gw, gb
        gx = g @ w if needs[0] else None
        g2 = g.reshape(-1, n_out)
        gw = g2.T @ x.reshape(-1, x.shape[-1]) if needs[1] else None
        gb = g2.sum(0) if needs[2] else None
        return gx, gw, gb


class CrossEntropy(Op):
    """z = reduce_i( w_i (logsumexp(x_i) - x_i[t_i]) )  for logits x (N, C), labels t (N,).

    ``weights`` (N,) are per-sample weights (class weight of the label, 0 where the
    label is ignored) or None for all ones; ``reduction`` is "mean" (divided by
    ``denom``, the sum of the weights), "sum" or "none". ``cache``, when given, is a
    dict in which the forward leaves exp(x - max) and its row sums for the backward.
    dz/dx_i = c_i (softmax(x_i) - e_{t_i}) with c_i = g w_i (/denom for the mean).
    """

    hint = "the logits must be (N, C) and the labels (N,) integers in [0, C)"

    @staticmethod
    def forward(xp, x, target, weights=None, reduction="mean", denom=1.0, cache=None):
        shifted = x - x.max(axis=1)[:, None]
        e = xp.exp(shifted)
        total = e.sum(axis=1)
        losses = xp.log(total) - shifted[xp.arange(x.shape[0]), target]
        if cache is not None:
            cache["e"], cache["total"] = e, total
        if weights is not None:
            losses = losses * weights
        if reduction == "none":
            return losses
        total = losses.sum()
        return total / denom if reduction == "mean" else total

    @staticmethod
    def backward(ctx, g, out):
        x, target = ctx.inputs
        attrs = ctx.attrs
        weights, reduction = attrs.get("weights"), attrs.get("reduction", "mean")
        scale = 1.0 / attrs.get("denom", 1.0) if reduction == "mean" else 1.0
        n = x.shape[0]
        if not op_module.is_grad_enabled():  # no graph of the gradient: plain arrays
            xd = x.data
            xp = _xp(xd)
            cache = attrs.get("cache")
            if cache and "e" in cache:
                e, total = cache.pop("e"), cache.pop("total")  # used once: free them
            else:
                e = xp.exp(xd - xd.max(axis=1)[:, None])
                total = e.sum(axis=1)
            gd = g.data
            if reduction == "none":
                coef = gd if weights is None else gd * weights
                e *= (coef / total)[:, None]
                e[xp.arange(n), target] -= coef
            else:
                coef = gd * scale
                if weights is None:
                    e *= (coef / total)[:, None]
                    e[xp.arange(n), target] -= coef
                else:
                    c = coef * weights
                    e *= (c / total)[:, None]
                    e[xp.arange(n), target] -= c
            return Tensor.constant(e.astype(xd.dtype, copy=False)), None
        coef = g * scale if reduction != "none" else g
        if weights is not None:
            coef = coef * Tensor.constant(weights)
        coef = coef.expand(n) if coef.ndim == 0 else coef
        grad = x.softmax(1) * coef.reshape(n, 1) \
            - ScatterAlong.apply(coef, target, dim=1, keepdim=False, shape=x.shape)
        return grad, None


def _clamped_logs(xp, x):
    """log(x) and log(1 - x), each clamped below at -100 as PyTorch does."""
    with np.errstate(divide="ignore"):
        return xp.maximum(xp.log(x), -100), xp.maximum(xp.log(1 - x), -100)


class BinaryCrossEntropy(Op):
    """z = -(y log x + (1 - y) log(1 - x)), each log clamped at -100 (PyTorch's rule).

    dz/dx = g (x - y) / max(x (1 - x), 1e-12)  (PyTorch's backward: finite at 0 and 1),
    dz/dy = g (log(1 - x) - log x).
    """

    hint = "input and target must have the same shape"
    EPS = float(np.float32(1e-12))  # PyTorch's EPSILON is a float32 constant

    @staticmethod
    def forward(xp, x, y):
        log_x, log_1mx = _clamped_logs(xp, x)
        return -(y * log_x + (1 - y) * log_1mx)

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        eps = BinaryCrossEntropy.EPS
        yt = y if isinstance(y, Tensor) else Tensor.constant(y)
        gx = gy = None
        if needs[0]:
            gx = g * (x - yt) / (x * (1 - x)).clamp(min=eps)
        if needs[1]:
            if op_module.is_grad_enabled():
                log_x = x.log().clamp(min=-100)
                log_1mx = (1 - x).log().clamp(min=-100)
            else:
                log_x, log_1mx = map(Tensor.constant, _clamped_logs(_xp(x.data), x.data))
            gy = g * (log_1mx - log_x)
        return gx, gy


class BinaryCrossEntropyWithLogits(Op):
    """z = (1 - y) x + l (log(1 + e^-|x|) + max(-x, 0)),  l = 1 + (p - 1) y,  p = pos_weight.

    That is l·softplus(-x) + (1 - y) x, computed without overflow for any x.
    dz/dx = g (l σ(x) - p y),   dz/dy = g ((p - 1) softplus(-x) - x).
    """

    hint = "input and target must have the same shape (pos_weight broadcasts over classes)"

    @staticmethod
    def forward(xp, x, y, pos_weight=None):
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        if pos_weight is None:
            return (1 - y) * x + softplus_neg
        return (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        pw = ctx.attrs.get("pos_weight")
        needs = ctx.needs_input_grad
        yt = y if isinstance(y, Tensor) else Tensor.constant(y)
        gx = gy = None
        if needs[0]:
            if pw is None:
                gx = g * (x.sigmoid() - yt)
            else:
                pwt = Tensor.constant(pw)
                gx = g * ((1 + (pwt - 1) * yt) * x.sigmoid() - pwt * yt)
        if needs[1]:
            if pw is None:
                gy = -g * x
            else:
                softplus_neg = (-x).relu() + ((-x.abs()).exp() + 1).log()
                gy = g * ((Tensor.constant(pw) - 1) * softplus_neg - x)
        return gx, gy
