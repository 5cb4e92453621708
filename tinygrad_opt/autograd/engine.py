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
"""

import numpy as np

from .. import function


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
    while stack:
        node = stack.pop()._node
        inputs = node.inputs
        if inputs is None:
            raise FreedGraphError(
                f"backward through the graph a second time: the {node.name} node's saved "
                "inputs were freed by the first backward; pass retain_graph=True to the "
                "first backward (or recompute the forward) to backpropagate again.")
        for inp, needed in zip(inputs, node.needs_input_grad):
            if needed:
                if inp in counts:
                    counts[inp] += 1
                else:
                    counts[inp] = 1
                    if inp._node is not None and inp not in roots:
                        stack.append(inp)
    return counts


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
        foreign.add(id(_owner(g.data)))
        grads[root] = grads[root] + g if root in grads else g
    ready = [r for r in grads if r not in counts]
    captured = {} if capture is not None else None
    previous = function.set_grad_enabled(create_graph)
    try:
        if create_graph:
            nodes = [t._node for t in list(counts) + list(roots) if t._node is not None]
            with function.backward_depth(max((n.order for n in nodes), default=0)):
                _walk(ready, grads, counts, retain_graph, capture, captured, foreign)
        else:
            _walk(ready, grads, counts, retain_graph, capture, captured, foreign)
    finally:
        function.set_grad_enabled(previous)
    return captured


def _walk(ready, grads, counts, retain_graph, capture, captured, foreign):
    """Kahn's algorithm: pop a tensor whose consumers have all reported, hand its
    gradient to its node's backward, pass the results on to the node's inputs."""
    while ready:
        tensor = ready.pop()
        g = grads.pop(tensor)
        if capture is not None and tensor in capture:
            captured[tensor] = g
        node = tensor._node
        if node is None:
            if capture is None:
                _accumulate_leaf(tensor, g, foreign)
            continue
        inputs = node.inputs
        input_grads = node.op.vjp(node, g, tensor)
        if not retain_graph:
            node.free()
        for inp, needed, gi in zip(inputs, node.needs_input_grad, input_grads):
            if not needed:
                continue
            if gi is not None:
                if gi.data.shape != inp.data.shape:  # undo broadcasting, once, here
                    gi = gi.sum_to(inp.data.shape)
                if inp in grads:
                    grads[inp] = grads[inp] + gi
                else:
                    grads[inp] = gi
            left = counts[inp] - 1
            counts[inp] = left
            if left == 0:
                if inp not in grads:
                    _skip(inp, counts, ready, grads, retain_graph)
                elif inp._node is None and capture is None:  # a leaf: done at once
                    _accumulate_leaf(inp, grads.pop(inp), foreign)
                else:
                    ready.append(inp)


def _skip(tensor, counts, ready, grads, retain_graph):
    """A tensor whose gradient turned out to be absent (every consumer returned
    None): release its inputs' counts so the walk still finishes."""
    stack = [tensor]
    while stack:
        node = stack.pop()._node
        if node is None:
            continue
        inputs = node.inputs
        if not retain_graph:
            node.free()
        for inp, needed in zip(inputs, node.needs_input_grad):
            if needed:
                counts[inp] -= 1
                if counts[inp] == 0:
                    (ready.append(inp) if inp in grads else stack.append(inp))


def _owner(array):
    """The array that owns ``array``'s memory (itself unless it is a view)."""
    base = array.base
    return array if base is None else base


def _accumulate_leaf(leaf, g, foreign):
    data = g.data
    if data.dtype is not leaf.data.dtype and data.dtype != leaf.data.dtype:
        g = g.to(dtype=leaf.data.dtype)
        data = g.data
    if leaf.grad is not None:
        leaf.grad = leaf.grad + g  # a new array: the old .grad may be shared
        return
    base = data.base
    owner = id(data if base is None else base)
    if owner in foreign or (type(data) is np.ndarray and not data.flags.writeable):
        # The caller's own gradient, or one already given to another leaf
        # (x + y hands the same g to both), or a read-only broadcast: copy.
        # (A gradient with a graph, from create_graph=True, is a new Tensor.)
        g = g.clone() if g._node is not None else type(g)._make(data.copy(), False, None)
        owner = id(g.data)
    foreign.add(owner)
    leaf.grad = g
