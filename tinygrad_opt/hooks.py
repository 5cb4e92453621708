"""Hooks: user functions the engine calls with a gradient (or a module with its
inputs and outputs), and the handles that remove them -- PyTorch's
``register_hook`` / ``retain_grad`` / ``RemovableHandle``.
"""

import itertools
import weakref

from . import capture
from . import op as op_module

_ids = itertools.count()
# id(tensor) -> its TensorHooks, for the few tensors that have hooks. A table on
# the side rather than a slot: no cost for the millions of tensors without
# hooks, and the engine skips the lookup entirely while the table is empty.
TENSOR_HOOKS = {}


def tensor_hooks(tensor):
    """The hooks of ``tensor``, made on first use (and dropped when it dies)."""
    key = id(tensor)
    table = TENSOR_HOOKS.get(key)
    if table is None:
        table = TENSOR_HOOKS[key] = TensorHooks()
        weakref.finalize(tensor, TENSOR_HOOKS.pop, key, None)
    return table


def run_tensor_hooks(tensor, grad):
    """``grad`` after ``tensor``'s hooks (itself when it has none)."""
    table = TENSOR_HOOKS.get(id(tensor))
    if table is None:
        return grad
    capture.refuse("a tensor hook (register_hook, retain_grad)",
                   "a replay would not run it again; remove the hook or run the step "
                   "without tg.jit.")
    return table.run(tensor, grad)


class RemovableHandle:
    """What every ``register_*hook`` returns: ``handle.remove()`` unregisters
    the hook (also on leaving ``with handle:``)."""

    def __init__(self, table):
        self._table = table
        self.id = next(_ids)

    def remove(self):
        self._table.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def add_hook(table, hook):
    """Put ``hook`` last in ``table`` (a dict: id -> hook); returns its handle."""
    if not callable(hook):
        raise TypeError(f"register hook: expected a function, got {type(hook).__name__}.")
    handle = RemovableHandle(table)
    table[handle.id] = hook
    return handle


class TensorHooks:
    """A tensor's gradient hooks (run in registration order, each may return a
    replacement gradient) and whether it keeps its gradient in ``.grad``
    (``retain_grad``, applied after the hooks, as in PyTorch)."""

    __slots__ = ("hooks", "retain")

    def __init__(self):
        self.hooks = {}
        self.retain = False

    def run(self, tensor, grad):
        """The gradient of ``tensor`` once every hook has seen (and maybe replaced) it."""
        for hook in list(self.hooks.values()):
            result = hook(grad)
            if result is None:
                continue
            if not isinstance(result, op_module.Tensor) or result.shape != grad.shape:
                got = (f"shape {tuple(result.shape)}" if isinstance(result, op_module.Tensor)
                       else type(result).__name__)
                raise RuntimeError(f"tensor hook {getattr(hook, '__name__', hook)!r} returned "
                                   f"{got} for a gradient of shape {tuple(grad.shape)}; return "
                                   "a tensor of the gradient's shape, or None to keep it.")
            grad = result
        if self.retain:
            kept = own_copy(grad)
            tensor.grad = kept if tensor.grad is None else tensor.grad + kept
        return grad


def own_copy(grad):
    """``grad`` with memory of its own (differentiable when it has a graph)."""
    if grad._node is not None:
        return grad.clone()
    return op_module.Tensor.constant(grad.data.copy())
