"""Ops that move data without arithmetic: reshape, permute, expand, sum-to,
indexing, concatenation. Each backward moves the gradient back the other way.
"""

from ..function import Op
from .reduce import normalize_dims


class Reshape(Op):
    """z = x.reshape(shape).  dz/dx = g.reshape(x.shape)."""

    hint = "the new shape must have as many elements as the old one"

    @staticmethod
    def forward(xp, x, shape=()):
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g, out):
        return (g.reshape(ctx.inputs[0].shape),)


class Permute(Op):
    """z = x.transpose(dims).  dz/dx = g transposed by the inverse permutation."""

    hint = "give each dimension exactly once"

    @staticmethod
    def forward(xp, x, dims=()):
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, g, out):
        dims = ctx.attrs["dims"]
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d] = i
        return (g.permute(*inverse),)


class Expand(Op):
    """z = x broadcast to ``shape``.  dz/dx = g summed back to x.shape."""

    hint = "only dimensions of size 1 can be expanded"

    @staticmethod
    def forward(xp, x, shape=()):
        return xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g, out):
        return (SumTo.apply(g, shape=ctx.inputs[0].shape),)


def sum_to_shape(xp, array, shape):
    """Sum ``array`` over the axes that broadcasting added to reach ``shape``."""
    lead = array.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and array.shape[lead + i] != 1)
    if axes:
        array = array.sum(axis=axes, keepdims=True)
    return array.reshape(shape)


class SumTo(Op):
    """z = x summed down to ``shape`` (undoes broadcasting).  dz/dx = g expanded."""

    @staticmethod
    def forward(xp, x, shape=()):
        return sum_to_shape(xp, x, shape)

    @staticmethod
    def backward(ctx, g, out):
        return (g.expand(ctx.inputs[0].shape),)


def _is_basic(index):
    """True for ints, slices, None and Ellipsis: positions that cannot repeat."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


class GetItem(Op):
    """z = x[index].  dz/dx = zeros with g added at index (repeats accumulate)."""

    hint = "the index must be within the tensor's shape"

    @staticmethod
    def forward(xp, x, index=()):
        return x[index]

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0]
        return (IndexAdd.apply(g, index=ctx.attrs["index"], shape=x.shape),)


class IndexAdd(Op):
    """z = zeros(shape); z[index] += g.  The adjoint of indexing: dz/dg = g2[index]."""

    @staticmethod
    def forward(xp, g, index=(), shape=()):
        out = xp.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g
        else:
            xp.add.at(out, index, g)  # integer arrays may repeat a position
        return out

    @staticmethod
    def backward(ctx, g, out):
        return (GetItem.apply(g, index=ctx.attrs["index"]),)


class Cat(Op):
    """z = cat(xs, dim).  dz/dx_i = the slice of g that x_i filled."""

    hint = "all tensors must have the same shape except along dim"

    @staticmethod
    def forward(xp, *xs, dim=0):
        return xp.concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, g, out):
        dim = normalize_dims(ctx.attrs["dim"], g.ndim)[0]
        grads, start = [], 0
        for x, needed in zip(ctx.inputs, ctx.needs_input_grad):
            stop = start + x.shape[dim]
            index = (slice(None),) * dim + (slice(start, stop),)
            grads.append(g[index] if needed else None)
            start = stop
        return tuple(grads)


class Copy(Op):
    """z = a copy of x with its own memory.  dz/dx = g."""

    @staticmethod
    def forward(xp, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g, out):
        return (g,)


class ToDevice(Op):
    """z = x moved to ``device``.  dz/dx = g moved back to x's device."""

    @staticmethod
    def forward(xp, x, device="cpu"):
        from ..backend import transfer

        return transfer(x, device)

    @staticmethod
    def backward(ctx, g, out):
        return (g.to(ctx.inputs[0].device),)
