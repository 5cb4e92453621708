"""The one walk of the backward graph: which tensors, in which order.

Backward must hand a tensor's gradient on only once it is complete, that is,
after every tensor that consumed it has handed its share back. So the tensors
are visited consumers first: the reverse of a depth-first post-order (each
tensor after its inputs), made with an explicit stack -- no recursion, so a
graph a million ops deep works.

Only edges that need a gradient (``node.needs_input_grad``) are followed, and
with ``wanted`` (the tensors of ``tg.grad(out, wanted)`` or
``backward(inputs=wanted)``) the order keeps only the tensors from which a
wanted one is reached: a branch that leads to no wanted tensor runs no
backward function (as in PyTorch). Without ``wanted`` (``backward()``, every
leaf) nothing needs pruning: every edge that needs a gradient leads to a leaf
that requires one.

The engine (``engine.py``), the batched pass (``batched.py``) and the
pictures (``draw.py``) all take their order from :func:`backward_order`.
"""

from .. import versions


class FreedGraphError(RuntimeError):
    pass


def freed(node):
    """The error for a walk that reaches a node an earlier backward freed."""
    return FreedGraphError(
        f"backward through the graph a second time: the {node.name} node's saved "
        "inputs were freed by the first backward; pass retain_graph=True to the "
        "first backward (or recompute the forward) to backpropagate again.")


def old_values(node):
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
                raise freed(made_by)
            inp = made_by.inputs[0]
            made_by = inp._node
        inputs[i] = inp
    node.inputs = tuple(inputs)
    return node.inputs


_FINISH = object()  # on the stack: "the tensor below me (and below it, its inputs) is done"


def backward_order(roots, wanted=None, inputs_of=None, before_rewiring=None):
    """The tensors reachable from ``roots`` along edges that need a gradient,
    each before every one of its inputs (so after all its consumers); with
    ``wanted`` (a set), only those from which a wanted tensor is reached.
    Roots and leaves are in the list too.

    A live node's inputs are read as its backward will see them: a freed node
    refuses (:func:`freed`), and an input changed in place since the node used
    it is replaced by its old value (:func:`old_values`), after
    ``before_rewiring(node, tensor)`` when given (a check that must see the
    node as recorded). ``inputs_of(tensor)``, when given, reads the inputs of
    the node that made a tensor instead (the pictures read a freed node's trace).
    """
    now = versions._now
    post_order, expanded = [], set()
    keep = set(wanted) if wanted is not None else None  # the wanted, and what leads to them
    stack = list(roots)
    if len(stack) > 1:
        stack.reverse()  # the first root is expanded first
    while stack:
        tensor = stack.pop()
        if tensor is _FINISH:  # below it: a tensor whose inputs are all ordered, and they
            tensor = stack.pop()
            inputs = stack.pop()
            if keep is None:
                post_order.append(tensor)
            elif tensor in keep or any(
                    needed and inp in keep
                    for inp, needed in zip(inputs, tensor._node.needs_input_grad)):
                keep.add(tensor)
                post_order.append(tensor)
            continue
        if tensor in expanded:
            continue
        expanded.add(tensor)
        node = tensor._node
        if node is None:  # a leaf root
            if keep is None or tensor in keep:
                post_order.append(tensor)
            continue
        if inputs_of is not None:
            inputs = inputs_of(tensor)
        else:
            inputs = node.inputs
            if inputs is None:
                raise freed(node)
            if node.stamp != now:  # something changed in place since it was recorded
                if before_rewiring is not None:
                    before_rewiring(node, tensor)
                inputs = old_values(node)
        stack.append(inputs)
        stack.append(tensor)
        stack.append(_FINISH)
        for inp, needed in zip(inputs, node.needs_input_grad):
            if needed and inp not in expanded:
                if inp._node is not None:
                    stack.append(inp)
                else:  # a leaf: nothing below it, so it is ordered at once
                    expanded.add(inp)
                    if keep is None or inp in keep:
                        post_order.append(inp)
    post_order.reverse()
    return post_order
