"""Reverse-mode automatic differentiation: the backward pass.

The graph is a DAG of Tensors; a non-leaf Tensor's ``_node`` names the op
that made it and that op's inputs. Backward visits the tensors in reverse
topological order -- a tensor is processed only once every tensor that
consumed it has handed its gradient back -- so each gradient is complete
before it flows further. The walk uses explicit stacks (Kahn's algorithm with
consumer counts): no recursion, so a graph a million ops deep works.

Gradients of intermediates live in a local table and are dropped as soon as
they have flowed on; only leaves get ``.grad``. The op backwards run with grad
mode set to ``create_graph``: with False they build nothing, with True the
very same code records the graph of the gradient, which can be
differentiated again.

Along the way, as in PyTorch: a tensor's hooks see (and may replace) its
gradient once it is complete; a node whose saved values were changed in place
since it was recorded refuses (``tinygrad_opt.versions``); and every gradient
handed to the user owns writeable memory (:func:`_private`).
"""

import numpy as np

from .. import function, grad_mode, versions
from ..hooks import TENSOR_HOOKS, run_tensor_hooks


class FreedGraphError(RuntimeError):
    pass


def _consumer_counts(roots):
    """For each tensor reachable from ``roots`` along edges that need a
    gradient: how many such edges lead into it (its consumers). An iterative
    depth-first walk; each node is expanded once."""
    counts = {}
    stack = [t for t in roots if t._node is not None]
    # A tensor is expanded when first counted; roots are expanded up front, so
    # a root that is also another root's input must not be pushed again.
    roots = ()
    if len(stack) > 1:
        stack = list(dict.fromkeys(stack))
        roots = set(stack)
    now = versions._now
    while stack:
        node = stack.pop()._node
        inputs = node.inputs
        if inputs is None:
            raise _freed(node)
        if node.stamp != now:  # something changed in place since it was recorded
            inputs = _old_values(node)
        for inp, needed in zip(inputs, node.needs_input_grad):
            if needed:
                if inp in counts:
                    counts[inp] += 1
                else:
                    counts[inp] = 1
                    if inp._node is not None and inp not in roots:
                        stack.append(inp)
    return counts


def _freed(node):
    return FreedGraphError(
        f"backward through the graph a second time: the {node.name} node's saved "
        "inputs were freed by the first backward; pass retain_graph=True to the "
        "first backward (or recompute the forward) to backpropagate again.")


def _old_values(node):
    """The node's inputs, where an input changed in place *after* the node used
    it (``x[i] = v``, ``x.add_(y)`` with a graph) replaced by its old value.

    Such a change gives the tensor a newer node whose first input is the old
    value; a node is never older than its inputs' nodes otherwise, so "my
    input's node is newer than me" means exactly that. The node is rewired once.
    """
    inputs = list(node.inputs)
    for i, inp in enumerate(inputs):
        made_by = getattr(inp, "_node", None)
        while made_by is not None and made_by.stamp > node.stamp:
            if made_by.inputs is None:
                raise _freed(made_by)
            inp = made_by.inputs[0]
            made_by = inp._node
        inputs[i] = inp
    node.inputs = tuple(inputs)
    return node.inputs


def _saved_arrays(node, out):
    """The arrays whose values this node's backward reads."""
    if isinstance(node.attrs, function.FunctionCtx):  # what the Function saved
        return list(node.attrs._saved or ())
    op, saved = node.op, []
    if op.saves_inputs:
        saved += [t.data for t in node.inputs if isinstance(t, function.Tensor)]
    if op.saves_output:
        saved.append(out.data)
    return saved


def _check_saved(node, out):
    """Refuse, as PyTorch does, when a value this node's backward reads was
    written in place after the node was recorded."""
    for array in _saved_arrays(node, out):
        if versions.written_since(array, node.stamp):
            shape = tuple(array.shape)
            raise RuntimeError(
                f"backward of {node.name}: one of the variables needed for gradient "
                f"computation has been modified by an inplace operation (a tensor of shape "
                f"{shape}, {array.dtype}, was changed in place after {node.name} used "
                "it); do the in-place change after backward, or change a copy (.clone()).")


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """Backpropagate ``root_grads`` (Tensors shaped like ``roots``) from ``roots``.

    With ``capture`` (a set of tensors) the gradients of those tensors are
    returned in a dict and no ``.grad`` is touched (``tg.grad``); otherwise
    every reachable leaf that requires grad accumulates into ``.grad``.
    """
    counts = _consumer_counts(roots)
    grads = {}
    # Memory the caller can see (the gradients it passed in): a leaf's .grad
    # never shares it, nor does one leaf's .grad share another's.
    foreign = set()
    for root, g in zip(roots, root_grads):
        base = g.data.base
        foreign.add(id(g.data if base is None else base))
        grads[root] = grads[root] + g if root in grads else g
    ready = [r for r in grads if r not in counts]
    captured = {} if capture is not None else None
    # The walk runs in grad mode `create_graph` (set on this thread's mode directly:
    # cheaper than a `with` block on this path, which every backward takes).
    mode = grad_mode.own_mode()
    previous = mode.order
    mode.order = mode.depth if create_graph else None
    try:
        if create_graph:
            nodes = [t._node for t in list(counts) + list(roots) if t._node is not None]
            with grad_mode.backward_depth(max((n.order for n in nodes), default=0)):
                _walk(ready, grads, counts, retain_graph, capture, captured, foreign)
        else:
            _walk(ready, grads, counts, retain_graph, capture, captured, foreign)
        if captured:  # (still in the backward's grad mode: a clone may be recorded)
            for t, g in captured.items():
                captured[t] = _private(g, foreign)
    finally:
        mode.order = previous
    return captured


def _walk(ready, grads, counts, retain_graph, capture, captured, foreign):
    """Kahn's algorithm: pop a tensor whose consumers have all reported, hand its
    gradient to its node's backward, pass the results on to the node's inputs."""
    now = versions._now
    # A freed node keeps a trace (Node.free) unless the graph is huge; the trace is
    # built here, in the loop over the node's inputs that the walk makes anyway.
    trace = not retain_graph and len(counts) <= function.TRACE_NODES
    tiny, shape_only = function.TRACE_VALUES, function.SHAPE_ONLY
    while ready:
        tensor = ready.pop()
        g = grads.pop(tensor)
        node = tensor._node
        if node is None and capture is None:
            _accumulate_leaf(tensor, g, foreign)
            continue
        if TENSOR_HOOKS:
            g = run_tensor_hooks(tensor, g)
        if capture is not None and tensor in capture:
            captured[tensor] = g
        if node is None:
            continue
        inputs = node.inputs
        if node.stamp != now:
            _check_saved(node, tensor)
        input_grads = node.op.vjp(node, g, tensor)
        if trace:  # each input as the trace keeps it, and what it was handed (tiny ones)
            kept_inputs, kept_grads = [], []
        for inp, needed, gi in zip(inputs, node.needs_input_grad, input_grads):
            if not needed:
                if trace:
                    kept_inputs.append(function.input_trace(inp))
                    kept_grads.append(None)
                continue
            if gi is not None:
                if gi.data.shape != inp.data.shape:  # undo broadcasting, once, here
                    gi = gi.sum_to(inp.data.shape)
                if inp in grads:
                    grads[inp] = grads[inp] + gi
                else:
                    grads[inp] = gi
            if trace:
                made_by = inp._node
                kept_inputs.append(made_by if made_by is not None else inp)
                if gi is None:
                    kept_grads.append(None)
                else:
                    array = gi.data
                    kept_grads.append(array.copy() if array.size <= tiny else shape_only)
            left = counts[inp] - 1
            counts[inp] = left
            if left == 0:
                if inp not in grads:
                    _skip(inp, counts, ready, grads, retain_graph)
                elif inp._node is None and capture is None:  # a leaf: done at once
                    _accumulate_leaf(inp, grads.pop(inp), foreign)
                else:
                    ready.append(inp)
        if trace:
            node.free(tensor, g, kept_inputs, kept_grads)
        elif not retain_graph:
            node.free()


def _skip(tensor, counts, ready, grads, retain_graph):
    """A tensor whose gradient turned out to be absent (every consumer returned
    None): release its inputs' counts so the walk still finishes."""
    stack = [tensor]
    while stack:
        t = stack.pop()
        node = t._node
        if node is None:
            continue
        inputs = node.inputs
        if not retain_graph:
            if len(counts) <= function.TRACE_NODES:
                node.free(t, None, [function.input_trace(i) for i in inputs], [None] * len(inputs))
            else:
                node.free()
        for inp, needed in zip(inputs, node.needs_input_grad):
            if needed:
                counts[inp] -= 1
                if counts[inp] == 0:
                    (ready.append(inp) if inp in grads else stack.append(inp))


def _accumulate_leaf(leaf, g, foreign):
    """Add a leaf's complete gradient (after its hooks) into its ``.grad``."""
    if TENSOR_HOOKS:
        g = run_tensor_hooks(leaf, g)
    data = g.data
    dtype = leaf.data.dtype
    if data.dtype is not dtype and data.dtype != dtype:
        g = g.to(dtype=dtype)
    if leaf.grad is not None:
        leaf.grad = leaf.grad + g  # a new array: the old .grad may be shared
        return
    leaf.grad = _private(g, foreign)


def _private(g, foreign):
    """``g`` as a gradient handed to the user: writeable memory of its own.

    ``foreign`` holds the ids of memory the user can already see: the gradients
    it passed in and those already handed out (x + y hands the same g to both).
    Such memory, or a read-only broadcast, is copied. (A gradient with a graph,
    from create_graph=True, gets a new Tensor through a differentiable copy.)
    """
    data = g.data
    base = data.base
    owner = id(data if base is None else base)
    # (only views can be read-only broadcasts: an array owning its memory skips
    # the check, which is costly as NumPy builds a flags object for it)
    if owner in foreign or (base is not None and type(data) is np.ndarray
                            and not data.flags.writeable):
        g = g.clone() if g.requires_grad else type(g)._make(data.copy(), False, None)
        owner = id(g.data)
    foreign.add(owner)
    return g
