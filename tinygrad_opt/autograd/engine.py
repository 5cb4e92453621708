"""Reverse-mode automatic differentiation: the backward pass.

The graph is a DAG of Tensors; a non-leaf Tensor's ``_node`` names the op
that made it and that op's inputs. Backward visits the tensors in reverse
topological order -- a tensor is processed only once every tensor that
consumed it has handed its gradient back -- so each gradient is complete
before it flows further. That order comes from ``walk.py`` (one iterative
walk, shared with the pictures and the batched pass), pruned to the tensors
on a path to those whose gradient is asked for: no recursion, so a graph a
million ops deep works, and no backward function runs for nothing.

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

from .. import capture as jit_capture  # (tg.jit's; `capture` below is tg.grad's inputs)
from .. import grad_mode, versions
from .. import op as op_module
from ..hooks import TENSOR_HOOKS, run_tensor_hooks
from .walk import FreedGraphError, backward_order  # noqa: F401  (FreedGraphError: re-exported)


def _saved_arrays(node, out):
    """The arrays whose values this node's backward reads."""
    if isinstance(node.attrs, op_module.FunctionCtx):  # what the Function saved
        return list(node.attrs._saved or ())
    op, saved = node.op, []
    if op.saves_inputs:
        saved += [t.data for t in node.inputs if isinstance(t, op_module.Tensor)]
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
    returned in a dict, no ``.grad`` is touched (``tg.grad``), and only the
    backward functions on a path to them run; otherwise every reachable leaf
    that requires grad accumulates into ``.grad``.
    """
    order = backward_order(roots, capture)
    grads = {}
    # Memory the caller can see (the gradients it passed in): a leaf's .grad
    # never shares it, nor does one leaf's .grad share another's.
    foreign = set()
    for root, g in zip(roots, root_grads):
        base = g.data.base
        foreign.add(id(g.data if base is None else base))
        grads[root] = grads[root] + g if root in grads else g
    captured = {} if capture is not None else None
    # The walk runs in grad mode `create_graph` (set on this thread's mode directly:
    # cheaper than a `with` block on this path, which every backward takes).
    mode = grad_mode.own_mode()
    previous = mode.order
    mode.order = mode.depth if create_graph else None
    try:
        if create_graph:
            depth = max((t._node.order for t in order if t._node is not None), default=0)
            with grad_mode.backward_depth(depth):
                _walk(order, grads, retain_graph, capture, captured, foreign)
        else:
            _walk(order, grads, retain_graph, capture, captured, foreign)
        if captured:  # (still in the backward's grad mode: a clone may be recorded)
            for t, g in captured.items():
                captured[t] = _private(g, foreign)
    finally:
        mode.order = previous
    return captured


def _walk(order, grads, retain_graph, capture, captured, foreign):
    """Visit the tensors consumers first (:func:`backward_order`): hand each
    one's complete gradient to its node's backward, and the results on to the
    node's inputs."""
    now = versions._now
    # A freed node keeps a trace (Node.free) unless the graph is huge; the trace is
    # built here, in the loop over the node's inputs that the walk makes anyway.
    # (Not while tg.jit records: the pictures would show the recording's tensors, and a
    # replay would copy values for traces nobody can draw.)
    trace = not retain_graph and len(order) <= op_module.TRACE_NODES \
        and jit_capture.RECORDING is None
    tiny, shape_only = op_module.TRACE_VALUES, op_module.SHAPE_ONLY
    # With capture, the walk was pruned: an input off every path to a captured
    # tensor is not in the order, and the gradient handed to it is dropped.
    kept = set(order) if capture is not None else None
    for tensor in order:
        g = grads.pop(tensor, None)
        node = tensor._node
        if g is None:  # every consumer handed back None: nothing flows through here
            if node is not None and not retain_graph:
                _free_unreached(node, tensor, trace)
            continue
        if node is None and capture is None:
            _accumulate_leaf(tensor, g, foreign)
            continue
        if TENSOR_HOOKS:
            g = run_tensor_hooks(tensor, g)
        if capture is not None and tensor in capture:
            captured[tensor] = g
            if node is not None and not any(i in kept for i in node.inputs):
                continue  # a captured intermediate with nothing asked for below it
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
                    kept_inputs.append(op_module.input_trace(inp))
                    kept_grads.append(None)
                continue
            if gi is not None and (kept is None or inp in kept):
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
        if trace:
            node.free(tensor, g, kept_inputs, kept_grads)
        elif not retain_graph:
            node.free()


def _free_unreached(node, tensor, trace):
    """Free the node of a tensor no gradient reached, keeping (when tracing) a
    trace that says nothing flowed."""
    if trace:
        inputs = node.inputs
        node.free(tensor, None, [op_module.input_trace(i) for i in inputs], [None] * len(inputs))
    else:
        node.free()


def _accumulate_leaf(leaf, g, foreign):
    """Add a leaf's complete gradient (after its hooks) into its ``.grad``."""
    if TENSOR_HOOKS:
        g = run_tensor_hooks(leaf, g)
    data = g.data
    dtype = leaf.data.dtype
    if data.dtype is not dtype and data.dtype != dtype:
        g = g.to(dtype=dtype)
    was_none = leaf.grad is None
    if was_none:
        leaf.grad = _private(g, foreign)
    else:
        leaf.grad = leaf.grad + g  # a new array: the old .grad may be shared
    if jit_capture.RECORDING is not None:  # tg.jit: the replay sets .grad again
        jit_capture.RECORDING.assigned_grad(leaf, was_none)


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
    if owner in foreign or (base is not None and isinstance(data, np.ndarray)
                            and not data.flags.writeable):
        g = g.clone() if g.requires_grad else type(g).constant(data.copy())
        owner = id(g.data)
    foreign.add(owner)
    return g
