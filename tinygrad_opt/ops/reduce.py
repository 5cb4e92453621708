"""Reductions: sum, mean, max, min over dimensions, and softmax / log-softmax.

``dim`` is None (all dimensions), an int or a tuple; ``keepdim`` keeps the
reduced dimensions with size 1. The backward of a reduction is a broadcast
back to the input's shape: the adjoint of summing is copying.
"""

import numpy as np

from .. import op as op_module
from ..backend import xp_of
from ..op import Op
from .batching import broadcast_copy
from .movement import Expand


def normalize_dims(dim, ndim):
    """dim as a sorted tuple of non-negative axes (None means all)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} "
                             f"dimensions; use a dim in [{-ndim}, {ndim - 1}].")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out)))


def kept_shape(shape, dims):
    """The shape a reduction over ``dims`` has with keepdim=True."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def reduced_shape(shape, dims):
    """The shape a reduction over ``dims`` has with keepdim=False."""
    return tuple(n for i, n in enumerate(shape) if i not in dims)


def _floating_only(name, x):
    """Mean, softmax and log-softmax are defined for floating tensors only: an integer
    or bool input is an error, as in PyTorch (not a silent float64 from NumPy)."""
    if x.dtype.kind != "f":
        raise RuntimeError(f"{name}: the input is {x.dtype}, and {name} is defined for "
                           "floating tensors only (as in PyTorch); convert it first with "
                           ".float() or .to('float64').")


def exp_shift(x, dims):
    """What softmax, log-softmax and logsumexp subtract from ``x`` before exp() so
    that nothing overflows: the max over ``dims`` (an int or a tuple), kept as
    size 1; 0 where a dim is empty, which has no max (the sum over it is 0 and
    its log -inf, as in PyTorch)."""
    if x.size == 0:  # then x has at least one dim
        axes = tuple(d % x.ndim for d in (dims if isinstance(dims, tuple) else (dims,)))
        if any(x.shape[d] == 0 for d in axes):
            return xp_of((x,)).zeros(kept_shape(x.shape, axes), dtype=x.dtype)
    return x.max(axis=dims, keepdims=True)


def _broadcast_back(g, ctx):
    """The reduced gradient ``g`` copied back over the reduced dims of the input."""
    shape = ctx.inputs[0].shape
    if g.ndim and not ctx.attrs["keepdim"]:  # a 0-d g broadcasts to any shape as it is
        g = g.reshape(kept_shape(shape, ctx.attrs["dims"]))
    return Expand.apply(g, shape=shape)


def _batched_broadcast_back(G, node):
    """_broadcast_back for B reduced gradients G (a batched backward, see Op)."""
    shape = node.inputs[0].shape
    if not node.attrs["keepdim"]:
        G = G.reshape(G.shape[:1] + kept_shape(shape, node.attrs["dims"]))
    return broadcast_copy(G, G.shape[:1] + shape)


def _mean_scale(node):
    """1 / (the number of elements each mean averages)."""
    shape = node.inputs[0].shape
    count = 1
    for d in node.attrs["dims"]:
        count *= shape[d]
    return 1.0 / max(count, 1)


class Sum(Op):
    """z = sum(x, dims).  dz/dx = g broadcast over the summed dims."""

    dtype_rule = None  # NumPy's is PyTorch's: integers and bools sum to int64

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, dims=(), keepdim=False):
        return x.sum(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g, out):
        return (_broadcast_back(g, ctx),)

    @staticmethod
    def batched_backward(node, G, out):
        return (_batched_broadcast_back(G, node),)


class Mean(Op):
    """z = mean(x, dims).  dz/dx = g/n broadcast over the averaged dims."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, dims=(), keepdim=False):
        _floating_only("mean", x)
        return x.mean(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g, out):
        return (_broadcast_back(g * _mean_scale(ctx), ctx),)

    @staticmethod
    def batched_backward(node, G, out):
        return (_batched_broadcast_back(G * _mean_scale(node), node),)


class Amax(Op):
    """z = max(x, dims).  The gradient goes to the maxima, split evenly among ties
    (where the maximum is NaN, nothing equals it: the gradient is NaN, as PyTorch's amax)."""

    nan_takes_gradient = False  # see Max

    @staticmethod
    def forward(xp, x, dims=(), keepdim=False):
        return x.max(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g, out):
        return (_broadcast_back(g, ctx) * _extremum_share(ctx, out),)

    @staticmethod
    def batched_backward(node, G, out):
        return (_batched_broadcast_back(G, node) * _extremum_share(node, out).data,)


class Amin(Amax):
    """z = min(x, dims).  The gradient goes to the minima, split evenly among ties."""

    @staticmethod
    def forward(xp, x, dims=(), keepdim=False):
        return x.min(axis=dims, keepdims=keepdim)


class Max(Amax):
    """z = max(x, dims) for ``Tensor.max()`` without an int dim. As amax, except that
    a NaN maximum gives its gradient to the NaNs, split evenly (PyTorch's rule)."""

    nan_takes_gradient = True


class Min(Amin):
    """z = min(x, dims) for ``Tensor.min()`` without an int dim (see Max)."""

    nan_takes_gradient = True


def _extremum_share(ctx, out):
    """A constant: 1/(number of ties) where x equals the extremum, else 0."""
    x = ctx.inputs[0].data
    dims = ctx.attrs["dims"]
    extremum = out.data.reshape(kept_shape(x.shape, dims))
    hit = x == extremum
    if ctx.op.nan_takes_gradient:
        xp = xp_of((x,))
        hit |= xp.isnan(x) & xp.isnan(extremum)
    with np.errstate(invalid="ignore"):  # 0/0: a NaN extremum nothing equals (amax's NaN)
        return op_module.Tensor.constant(hit / hit.sum(axis=dims, keepdims=True).astype(x.dtype))


class SelectAlong(Op):
    """z = x[..., index, ...] along ``dim`` (index from argmax/argmin or labels).

    dz/dx = g scattered to the selected positions. Used by max/min with a dim
    (PyTorch gives the gradient to the returned index only) and by nll_loss.
    """

    dtype_operands = slice(0, 1)  # the index never changes the dtype

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x, index, dim=0, keepdim=False):
        picked = xp.take_along_axis(x, xp.expand_dims(index, dim), axis=dim)
        return picked if keepdim else picked.squeeze(dim)

    @staticmethod
    def backward(ctx, g, out):
        x, index = ctx.inputs
        dim, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
        return ScatterAlong.apply(g, index, dim=dim, keepdim=keepdim, shape=x.shape), None

    @staticmethod
    def batched_backward(node, G, out):
        x, index = node.inputs
        dim, keepdim = node.attrs["dim"], node.attrs["keepdim"]
        xp = xp_of((G,))
        full = xp.zeros(G.shape[:1] + x.shape, dtype=G.dtype)
        values = G if keepdim else xp.expand_dims(G, dim + 1)
        xp.put_along_axis(full, _batched_index_array(xp, index, values.shape, dim), values,
                          axis=dim + 1)
        return full, None


class ScatterAlong(Op):
    """z = zeros(shape) with g put at ``index`` along ``dim``: the adjoint of SelectAlong."""

    dtype_operands = slice(0, 1)

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, g, index, dim=0, keepdim=False, shape=()):
        out = xp.zeros(shape, dtype=g.dtype)
        values = g if keepdim else xp.expand_dims(g, dim)
        xp.put_along_axis(out, xp.expand_dims(index, dim), values, axis=dim)
        return out

    @staticmethod
    def backward(ctx, g, out):
        index = ctx.inputs[1]
        dim, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
        return SelectAlong.apply(g, index, dim=dim, keepdim=keepdim), None

    @staticmethod
    def batched_backward(node, G, out):
        index = node.inputs[1]
        dim, keepdim = node.attrs["dim"], node.attrs["keepdim"]
        xp = xp_of((G,))
        idx = _batched_index_array(xp, index, G.shape[:1], dim)
        picked = xp.take_along_axis(G, idx, axis=dim + 1)
        return (picked if keepdim else picked.squeeze(dim + 1)), None


def _batched_index_array(xp, index, shape, dim):
    """SelectAlong's ``index`` (kept along ``dim``) with a leading batch axis,
    broadcast to ``shape`` (given in full, or as (B,) to keep the index's own)."""
    array = index.data if isinstance(index, op_module.Tensor) else index
    idx = xp.expand_dims(array, dim)[None]
    return xp.broadcast_to(idx, tuple(shape) + idx.shape[len(shape):])


class Softmax(Op):
    """z = exp(x - logsumexp(x)).  dz/dx = z * (g - sum(g*z, dim))."""

    saves_inputs = False  # its backward reads the output's values only (see Op)

    @staticmethod
    def forward(xp, x, dim=-1):
        _floating_only("softmax", x)
        e = xp.exp(x - exp_shift(x, dim))
        return e / e.sum(axis=dim, keepdims=True)

    @staticmethod
    def backward(ctx, g, out):
        dim = ctx.attrs["dim"]
        return (out * (g - (g * out).sum(dim, keepdim=True)),)

    @staticmethod
    def batched_backward(node, G, out):
        d = node.attrs["dim"] % out.ndim + 1
        z = out.data
        return (z * (G - (G * z).sum(axis=d, keepdims=True)),)


class LogSoftmax(Op):
    """z = x - logsumexp(x).  dz/dx = g - exp(z) * sum(g, dim)."""

    saves_inputs = False  # its backward reads the output's values only (see Op)

    @staticmethod
    def forward(xp, x, dim=-1):
        _floating_only("log_softmax", x)
        if x.size == 0:  # nothing to normalise (and the log of an empty sum would warn)
            return x.copy()
        shifted = x - exp_shift(x, dim)
        return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))

    @staticmethod
    def backward(ctx, g, out):
        dim = ctx.attrs["dim"]
        return (g - out.exp() * g.sum(dim, keepdim=True),)

    @staticmethod
    def batched_backward(node, G, out):
        d = node.attrs["dim"] % out.ndim + 1
        return (G - xp_of((G,)).exp(out.data) * G.sum(axis=d, keepdims=True),)
