"""Ops that move data without arithmetic: reshape, permute, expand, sum-to,
indexing, concatenation. Each backward moves the gradient back the other way.
"""

from ..backend import transfer, xp_of
from ..op import Op, list_shapes, shape_of
from .batching import batched_index, batched_sum_to, broadcast_copy


class Reshape(Op):
    """z = x.reshape(shape).  dz/dx = g.reshape(x.shape)."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, shape=()):
        return x.reshape(shape)

    @classmethod
    def explain(cls, inputs, attrs, error):
        shape = shape_of(inputs[0])
        return (f"cannot reshape a tensor of shape {shape} ({inputs[0].data.size} elements) into "
                f"shape {tuple(attrs['shape'])}; the new shape must have as many elements")

    @staticmethod
    def backward(ctx, g, out):
        return (g.reshape(ctx.inputs[0].shape),)

    @staticmethod
    def batched_backward(node, G, out):
        return (G.reshape(G.shape[:1] + node.inputs[0].shape),)


class Permute(Op):
    """z = x.transpose(dims).  dz/dx = g transposed by the inverse permutation."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, dims=()):
        return x.transpose(dims)

    @classmethod
    def explain(cls, inputs, attrs, error):
        shape = shape_of(inputs[0])
        return (f"dims {tuple(attrs['dims'])} are not a permutation of the {len(shape)} "
                f"dimensions of shape {shape}; give each dimension exactly once")

    @staticmethod
    def backward(ctx, g, out):
        return (g.permute(*_inverse(ctx.attrs["dims"])),)

    @staticmethod
    def batched_backward(node, G, out):
        return (G.transpose((0,) + tuple(i + 1 for i in _inverse(node.attrs["dims"]))),)


def _inverse(dims):
    """The permutation that undoes ``dims``."""
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d] = i
    return inverse


class Expand(Op):
    """z = x broadcast to ``shape``.  dz/dx = g summed back to x.shape.

    It is what the backward of every reduction returns. Small results are
    copied into a new array (``broadcast_to`` builds its view in Python, a fixed
    cost several times that of a small copy); large ones are read-only
    broadcast views (no memory, no copying). The engine copies a read-only
    gradient before it becomes a leaf's ``.grad``.
    """

    VIEW_ABOVE = 1 << 14  # elements

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, shape=()):
        size = 1
        for n in shape:
            size *= n
        if size > Expand.VIEW_ABOVE:
            return xp.broadcast_to(x, shape)
        out = xp.empty(shape, dtype=x.dtype)
        out[...] = x
        return out

    @classmethod
    def explain(cls, inputs, attrs, error):
        return (f"cannot expand shape {shape_of(inputs[0])} to {tuple(attrs['shape'])}: aligned "
                "from the right, only dimensions of size 1 can grow")

    @staticmethod
    def backward(ctx, g, out):
        return (SumTo.apply(g, shape=ctx.inputs[0].shape),)

    @staticmethod
    def batched_backward(node, G, out):
        return (batched_sum_to(G, node.inputs[0].shape),)


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

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, shape=()):
        return sum_to_shape(xp, x, shape)

    @staticmethod
    def backward(ctx, g, out):
        return (g.expand(ctx.inputs[0].shape),)

    @staticmethod
    def batched_backward(node, G, out):
        shape = node.inputs[0].shape
        small = G.reshape(G.shape[:1] + (1,) * (len(shape) - (G.ndim - 1)) + G.shape[1:])
        return (broadcast_copy(small, G.shape[:1] + shape),)


def _is_basic(index):
    """True for ints, slices, None and Ellipsis: positions that cannot repeat."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


class GetItem(Op):
    """z = x[index].  dz/dx = zeros with g added at index (repeats accumulate)."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, index=()):
        return x[index]

    @classmethod
    def explain(cls, inputs, attrs, error):
        # numpy says which index and axis ("index 5 is out of bounds for axis 0 with size 3")
        return f"{error} (indexing a tensor of shape {shape_of(inputs[0])})"

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0]
        return (IndexAdd.apply(g, index=ctx.attrs["index"], shape=x.shape),)

    @staticmethod
    def batched_backward(node, G, out):
        index = batched_index(node.attrs["index"])
        if index is None:
            return None
        x = node.inputs[0]
        xp = xp_of((G,))
        full = xp.zeros(G.shape[:1] + x.shape, dtype=G.dtype)
        if _is_basic(node.attrs["index"]):
            full[index] = G
        else:
            xp.add.at(full, index, G)
        return (full,)


class IndexAdd(Op):
    """z = zeros(shape); z[index] += g.  The adjoint of indexing: dz/dg = g2[index]."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

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

    @staticmethod
    def batched_backward(node, G, out):
        index = batched_index(node.attrs["index"])
        if index is None:
            return None
        return (xp_of((G,)).ascontiguousarray(G[index]),)


class Cat(Op):
    """z = cat(xs, dim).  dz/dx_i = the slice of g that x_i filled."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, *xs, dim=0):
        return xp.concatenate(xs, axis=dim)

    @classmethod
    def explain(cls, inputs, attrs, error):
        return (f"shapes {list_shapes(inputs)} cannot be joined along dim {attrs['dim']}: all "
                "tensors must have the same number of dimensions and the same sizes except "
                "along dim")

    @staticmethod
    def backward(ctx, g, out):
        return _slices_along(ctx, g, ctx.attrs["dim"] % g.ndim, batch_axes=0)

    @staticmethod
    def batched_backward(node, G, out):
        return _slices_along(node, G, node.attrs["dim"] % (G.ndim - 1), batch_axes=1)


def _slices_along(ctx, g, dim, batch_axes):
    """The slice of ``g`` along ``dim`` that each input of a cat filled (None
    for an input that needs no gradient); ``g`` has ``batch_axes`` leading axes
    (0, or 1 in a batched backward) before the output's own."""
    grads, start = [], 0
    for x, needed in zip(ctx.inputs, ctx.needs_input_grad):
        stop = start + x.shape[dim]
        index = (slice(None),) * (batch_axes + dim) + (slice(start, stop),)
        grads.append(g[index] if needed else None)
        start = stop
    return tuple(grads)


class Copy(Op):
    """z = a copy of x with its own memory.  dz/dx = g."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)
    backward_batches = True  # g as it is (see Op)

    @staticmethod
    def forward(xp, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g, out):
        return (g,)


class ToDevice(Op):
    """z = x moved to ``device``.  dz/dx = g moved back to x's device."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, device="cpu"):
        return transfer(x, device)

    @staticmethod
    def backward(ctx, g, out):
        return (g.to(ctx.inputs[0].device),)
