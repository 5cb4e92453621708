"""Reverse-mode automatic differentiation: the backward pass.

The graph is a DAG of Tensors; a non-leaf Tensor's ``_node`` names the op
that made it and that op's inputs. Backward visits the non-leaf tensors in
reverse topological order -- a tensor is processed only once every tensor
that consumed it has handed its gradient back -- so each gradient is complete
before it flows further. The walk uses explicit stacks (Kahn's algorithm with
consumer counts): no recursion, so a graph a million ops deep works.

Gradients of intermediates live in a local table; only leaves get ``.grad``.
The op backwards run with grad mode set to ``create_graph``: with False they
build nothing, with True the very same code records the graph of the
gradient, which can be differentiated again.
"""

from .. import function


class FreedGraphError(RuntimeError):
    pass


def _consumer_counts(roots):
    """For each tensor reachable from ``roots`` that needs a gradient: how many
    graph edges lead into it (its consumers), found by an iterative walk."""
    counts = {}
    stack = [t for t in roots if t._node is not None]
    seen = set(stack)
    while stack:
        tensor = stack.pop()
        node = tensor._node
        if node.inputs is None:
            raise FreedGraphError(
                f"backward through the graph a second time: the {node.name} node's saved "
                "inputs were freed by the first backward; pass retain_graph=True to the "
                "first backward (or recompute the forward) to backpropagate again.")
        for inp, needed in zip(node.inputs, node.needs_input_grad):
            if not needed:
                continue
            counts[inp] = counts.get(inp, 0) + 1
            if inp._node is not None and inp not in seen:
                seen.add(inp)
                stack.append(inp)
    return counts


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """Backpropagate ``root_grads`` from ``roots``.

    With ``capture`` (a set of tensors) the gradients of those tensors are
    returned in a dict and no ``.grad`` is touched (``tg.grad``); otherwise
    every reachable leaf that requires grad accumulates into ``.grad``.
    """
    counts = _consumer_counts(roots)
    grads = {}
    for root, g in zip(roots, root_grads):
        grads[root] = grads[root] + g if root in grads else g
    ready = [r for r in dict.fromkeys(roots) if counts.get(r, 0) == 0]
    captured = {}
    previous = function.set_grad_enabled(create_graph)
    try:
        if create_graph:
            with function.backward_depth():
                _walk(ready, grads, counts, retain_graph, capture, captured)
        else:
            _walk(ready, grads, counts, retain_graph, capture, captured)
    finally:
        function.set_grad_enabled(previous)
    return captured


def _walk(ready, grads, counts, retain_graph, capture, captured):
    handed_out = set()  # ids of gradient arrays already given to a leaf's .grad
    while ready:
        tensor = ready.pop()
        g = grads.pop(tensor)
        if capture is not None and tensor in capture:
            captured[tensor] = g
        node = tensor._node
        if node is None:
            if capture is None:
                _accumulate_leaf(tensor, g, handed_out)
            continue
        inputs = node.inputs
        input_grads = node.op.vjp(node, g, tensor)
        if not retain_graph:
            node.inputs = None  # free what the node kept alive
        for inp, needed, gi in zip(inputs, node.needs_input_grad, input_grads):
            if not needed:
                continue
            if gi is not None:
                if gi.shape != inp.shape:  # undo broadcasting, once, here
                    gi = gi.sum_to(inp.shape)
                grads[inp] = grads[inp] + gi if inp in grads else gi
            counts[inp] -= 1
            if counts[inp] == 0:
                if inp in grads:
                    ready.append(inp)
                else:
                    _skip(inp, counts, ready, grads, retain_graph)


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
            node.inputs = None
        for inp, needed in zip(inputs, node.needs_input_grad):
            if needed:
                counts[inp] -= 1
                if counts[inp] == 0:
                    (ready.append(inp) if inp in grads else stack.append(inp))


def _accumulate_leaf(leaf, g, handed_out):
    if g.dtype != leaf.dtype:
        g = g.to(dtype=leaf.dtype)
    if leaf.grad is None:
        # Two leaves may receive the very same gradient array (x + y hands g
        # to both); copy the second so that no two .grad share memory.
        if id(g.data) in handed_out and g._node is None:
            g = type(g)._make(g.data.copy(), False, None)
        handed_out.add(id(g.data))
        leaf.grad = g
    else:
        leaf.grad = leaf.grad + g
