"""In-place changes of tensors: ``x[index] = v``, ``x.add_(y)``, ``x += y``, ...

PyTorch's rules, which every in-place method follows through :func:`modify`:

* while grad mode is on, a leaf that requires grad refuses (its value is what
  the gradient is about; optimizers update under ``no_grad``);
* the new values are written into the tensor's memory, so its views and
  detached aliases see them, and the write is recorded on the version clock
  (``tinygrad_opt.versions``): a backward that needs the old values refuses;
* when the graph is involved (grad mode on and the tensor or the operand
  requires grad) the tensor also takes the change into its history: it
  becomes ``op(old value, operand)``, so gradients reach the operand and the
  part of the old value that survived (``x[i] = v`` is PyTorch's CopySlices).
  Ops recorded earlier that used the tensor keep using its old value: the
  engine sends their gradients to the old value (see ``Node.stamp``).
"""

import numpy as np

from . import op as op_module
from . import versions
from .grad_mode import is_grad_enabled
from .op import Op
from .ops.batching import batched_index
from .ops.movement import GetItem


class CopySlices(Op):
    """z = a copy of x with z[index] = v: the record of ``x[index] = v``.

    dz/dx = g with zeros at index; dz/dv = g[index] (the engine sums it to v's
    shape when v was broadcast). Only shapes are read: nothing is saved.
    """

    saves_inputs = saves_output = False
    dtype_rule = None  # the result keeps x's dtype, as an assignment does

    @staticmethod
    def forward(xp, x, v, index=Ellipsis):
        out = x.copy()
        out[index] = v
        return out

    @classmethod
    def explain(cls, inputs, attrs, error):
        shapes = [tuple(getattr(t, "shape", ())) for t in inputs]
        return (f"cannot assign a value of shape {shapes[1]} to index {attrs['index']!r} of a "
                f"tensor of shape {shapes[0]}: the value must broadcast to the indexed part "
                f"(numpy: {error})")

    @staticmethod
    def backward(ctx, g, out):
        index = ctx.attrs["index"]
        needs = ctx.needs_input_grad
        gx = CopySlices.apply(g, 0, index=index) if needs[0] else None
        gv = GetItem.apply(g, index=index) if needs[1] else None
        return gx, gv

    @staticmethod
    def batched_backward(node, G, out):
        index = batched_index(node.attrs["index"])
        if index is None:
            return None
        needs = node.needs_input_grad
        gx = gv = None
        if needs[0]:
            gx = G.copy()
            gx[index] = 0
        if needs[1]:
            gv = G[index]
        return gx, gv


def modify(tensor, what, op, *args, write=None, **attrs):
    """Change ``tensor`` in place into ``op(tensor, *args, **attrs)``; returns it.

    ``write(array)``, when given, does the same change directly in memory: used
    when no graph is involved (cheaper than computing a new array and copying).
    """
    Tensor = op_module.Tensor
    graph = is_grad_enabled() and (
        tensor.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args))
    if graph and tensor.requires_grad and tensor._node is None:
        raise RuntimeError(
            f"{what}: a leaf tensor that requires grad (shape {tuple(tensor.shape)}) is being "
            "used in an in-place operation; do the update under `with tg.no_grad():` (as "
            "optimizers do) or use the out-of-place form.")
    data = tensor.data
    if isinstance(data, np.generic):  # a NumPy scalar assigned to .data by hand
        tensor.data = data = np.asarray(data)
    if not graph and write is not None:
        write(data)
        versions.mark_written(data)
        return tensor
    time = versions.tick()  # before recording: the new node is not older than the write
    old = Tensor._make(data.copy(), tensor.requires_grad, tensor._node) if graph else tensor
    result = op.apply(old, *args, **attrs)
    new = result.data
    if new.shape != data.shape:
        raise RuntimeError(f"{what}: the result has shape {tuple(new.shape)} but the tensor has "
                           f"shape {tuple(data.shape)}; an in-place operation cannot change "
                           "the shape (use the out-of-place form).")
    if new.dtype != data.dtype and not np.can_cast(new.dtype, data.dtype, "same_kind"):
        raise RuntimeError(f"{what}: the result type {new.dtype} can't be cast to the tensor's "
                           f"dtype {data.dtype} in place; use the out-of-place form or convert "
                           "the tensor first.")
    data[...] = new
    versions.mark_written(data, time=time)
    if graph:
        tensor._node = result._node
        tensor.requires_grad = True
    return tensor
