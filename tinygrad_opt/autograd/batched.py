"""Many vector-Jacobian products in one backward pass (a small ``vmap``).

A Jacobian by reverse rows needs one backward pass per output element, a
Hessian one per parameter: for a 105-parameter MLP that is 105 walks through
the graph of the gradient, each paying Python's per-op overhead. Here the
cotangents travel together instead: every gradient in the walk carries a
leading batch axis B, and each op's backward is applied once to the whole
batch. The result is Sᵀ J for a block S of B cotangents -- with S = I, the
whole Jacobian -- in one pass.

Each op says how (see ``Op``): most backward formulas are elementwise
products that broadcast over a leading axis as they are (``g * y``), so they
run unchanged (``backward_batches``); the ops whose backward depends on the
gradient's layout (reshape, permute, reductions, indexing and item assignment,
matmul, softmax) have a ``batched_backward`` beside their ``backward`` --
matmul's stacks the batch into the rows of one matrix product. Any other op
-- one added later, or a user's ``Function`` -- falls back to a loop over the
batch, which is always correct, only slower. The walk records no graph
(first-order products of a graph that may itself be a gradient:
``hessian_matrix`` walks the graph of ∇f), and it follows the engine's rules
for in-place changes (``x[i] = v`` after a use of ``x``).
"""

from ..backend import xp_of
from ..op import enable_grad, no_grad
from ..ops.batching import batched_sum_to
from ..tensor import Tensor
from .engine import _check_saved
from .grad import grad
from .walk import backward_order

__all__ = ["batched_vjp", "hessian_matrix", "jacobian_matrix"]

# Largest number of array elements one batched intermediate may hold before the
# batch is split into chunks (2**24 float64 values = 128 MiB).
CHUNK_ELEMENTS = 1 << 24


def _apply_rule(node, G, out):
    """The op's gradients for the B cotangents ``G``: its backward as written
    when it broadcasts over the batch axis, its ``batched_backward`` when it has
    one that takes this call, else its backward once per sample (see Op)."""
    op = node.op
    if op.backward_batches:
        grads = op.vjp(node, Tensor.constant(G), out)
        return tuple(None if g is None else g.data for g in grads)
    if op.batched_backward is not None:
        grads = op.batched_backward(node, G, out)
        if grads is not None:
            return grads
    return _fallback(node, G, out)


def _fallback(node, G, out):
    """Any op: its own backward once per batch element, stacked."""
    per_sample = [node.op.vjp(node, Tensor.constant(G[b]), out) for b in range(G.shape[0])]
    xp = xp_of((G,))
    grads = []
    for k in range(len(node.inputs)):
        column = [g[k] for g in per_sample]
        if all(c is None for c in column):
            grads.append(None)
            continue
        shape = next(c for c in column if c is not None).shape
        grads.append(xp.stack([c.data if c is not None else xp.zeros(shape, G.dtype)
                               for c in column]))
    return tuple(grads)


# -- the pass: the engine's walk, batched cotangents --------------------------------------

def _order_of(roots, wanted):
    """The engine's walk (``walk.py``), restricted to paths to ``wanted``; as
    PyTorch, it refuses a node whose saved values were changed in place."""
    return backward_order(roots, wanted, before_rewiring=_check_saved)


def batched_vjp(outputs, inputs, seeds, _order=None):
    """Sᵀ J for a batch of cotangents, in one backward pass.

    Args:
        outputs: a Tensor or a list of Tensors (with their graph).
        inputs: a Tensor or a list of Tensors the outputs depend on.
        seeds: for each output, an array or Tensor of shape (B,) + output.shape
            (the B cotangents); the same B for all.

    Returns:
        a list with, for each input, an array of shape (B,) + input.shape
        (zeros for an input the outputs do not depend on). No graph is
        recorded and no ``.grad`` is touched; the graph is kept.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    seeds = [seeds] if not isinstance(seeds, (list, tuple)) else list(seeds)
    seeds = [s.data if isinstance(s, Tensor) else s for s in seeds]
    B = seeds[0].shape[0]
    xp = xp_of(seeds)
    grads = {}
    live = []
    for out, s in zip(outputs, seeds):
        if s.shape[1:] != out.shape:
            raise ValueError(f"batched_vjp: a seed has shape {tuple(s.shape)}, expected "
                             f"(B,) + {tuple(out.shape)}.")
        if not out.requires_grad:
            continue
        grads[out] = grads[out] + s if out in grads else s
        live.append(out)
    wanted = set(inputs)
    result = {}
    with no_grad():
        order = _order_of(live, wanted) if _order is None else _order
        keep = set(order)
        for tensor in order:
            G = grads.pop(tensor, None)
            if G is None:
                continue
            if tensor in wanted:
                result[tensor] = G
            node = tensor._node
            if node is None:
                continue
            for inp, needed, gi in zip(node.inputs, node.needs_input_grad,
                                       _apply_rule(node, G, tensor)):
                if not needed or gi is None or inp not in keep:
                    continue
                gi = batched_sum_to(gi, inp.shape)
                grads[inp] = grads[inp] + gi if inp in grads else gi
    return [result[t].astype(t.dtype, copy=False) if t in result
            else xp.zeros((B,) + t.shape, dtype=t.dtype) for t in inputs]


def _chunks(n, per_row):
    size = max(1, CHUNK_ELEMENTS // max(per_row, 1))
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def _largest(order):
    return max((t.data.size for t in order), default=1)


def _live_roots(gs, inputs):
    """The gradients in ``gs`` that depend on the inputs again (built with
    create_graph=True, not None), and for each the offset of its input's slice
    in the flattened, concatenated inputs."""
    roots, offsets, start = [], [], 0
    for g, t in zip(gs, inputs):
        if g is not None and g.requires_grad:
            roots.append(g)
            offsets.append(start)
        start += t.data.size
    return roots, offsets


def _unit_seeds(xp, roots, offsets, lo, hi, dtype):
    """Rows lo..hi-1 of the n x n identity, cut into one seed per root: row i of
    root k's seed is e_{lo+i} restricted to k's slice [offset_k, offset_k + size_k),
    shaped (hi - lo,) + root shape."""
    seeds = []
    for g, off in zip(roots, offsets):
        s = xp.zeros((hi - lo, g.data.size), dtype=dtype)
        idx = xp.arange(max(lo, off), min(hi, off + g.data.size))
        if idx.size:
            s[idx - lo, idx - off] = 1
        seeds.append(s.reshape((hi - lo,) + g.shape))
    return seeds


def jacobian_matrix(output, inputs, strategy="auto"):
    """The Jacobian of ``output`` (flattened, m entries) with respect to all
    ``inputs`` (flattened and concatenated, n entries), as an (m, n) array.

    ``strategy``:

    * ``"rows"`` -- reverse mode, the m rows eᵢᵀJ batched into one backward
      pass over the graph (B = m);
    * ``"columns"`` -- the double-vjp trick: one backward with
      ``create_graph=True`` gives u ↦ Jᵀu as a graph linear in a dummy u,
      and one batched backward of that graph gives the n columns J eⱼ (B = n);
    * ``"auto"`` (default) -- rows when m <= max(128, n), columns otherwise
      (a batched op costs about B times the size of its arrays; below 128
      rows the single pass without the create_graph backward wins).

    Large batches are split into chunks so that no intermediate exceeds
    ``CHUNK_ELEMENTS`` values. The graph of ``output`` is kept.
    """

    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    xp = xp_of((output.data,))
    m = output.data.size
    n = sum(t.data.size for t in inputs)
    J = xp.zeros((m, n), dtype=output.dtype)
    if not output.requires_grad or m == 0 or n == 0:
        return J
    if strategy == "auto":
        strategy = "rows" if m <= max(128, n) else "columns"
    if strategy == "rows":
        order = _order_of([output], set(inputs))
        for lo, hi in _chunks(m, _largest(order)):
            seeds = xp.zeros((hi - lo, m), dtype=output.dtype)
            seeds[xp.arange(hi - lo), xp.arange(lo, hi)] = 1
            blocks = batched_vjp([output], inputs, [seeds.reshape((hi - lo,) + output.shape)],
                                 _order=order)
            J[lo:hi] = xp.concatenate([b.reshape(hi - lo, -1) for b in blocks], axis=1)
        return J
    if strategy != "columns":
        raise ValueError(f"jacobian_matrix: unknown strategy {strategy!r}; use 'auto', 'rows' "
                         "or 'columns'.")

    with enable_grad():
        u = Tensor._make(xp.zeros(output.shape, dtype=output.dtype), True, None)
        gx = grad([output], inputs, [u], retain_graph=True, create_graph=True,
                  allow_unused=True)
    roots, offsets = _live_roots(gx, inputs)
    if not roots:
        return J
    order = _order_of(roots, {u})
    for lo, hi in _chunks(n, _largest(order)):
        seeds = _unit_seeds(xp, roots, offsets, lo, hi, output.dtype)
        (block,) = batched_vjp(roots, [u], seeds, _order=order)
        J[:, lo:hi] = block.reshape(hi - lo, m).T
    return J


def hessian_matrix(loss, inputs):
    """The Hessian of a scalar ``loss`` with respect to all ``inputs``
    (flattened and concatenated) as an (n, n) array: the gradient is built
    with ``create_graph=True`` and its Jacobian taken by one batched pass."""

    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    xp = xp_of((loss.data,))
    n = sum(t.data.size for t in inputs)
    gs = grad([loss.reshape(())], inputs, create_graph=True, allow_unused=True)
    return hessian_from_gradient(gs, inputs, xp, n)


def hessian_from_gradient(gs, inputs, xp=None, n=None):
    """The Jacobian of gradients ``gs`` (built with create_graph=True) with
    respect to ``inputs``: the (n, n) Hessian, symmetrised."""
    xp = xp if xp is not None else xp_of((inputs[0].data,))
    n = n if n is not None else sum(t.data.size for t in inputs)
    dtype = inputs[0].dtype
    H = xp.zeros((n, n), dtype=dtype)
    roots, offsets = _live_roots(gs, inputs)
    if not roots:
        return H
    order = _order_of(roots, set(inputs))
    for lo, hi in _chunks(n, _largest(order)):
        seeds = _unit_seeds(xp, roots, offsets, lo, hi, dtype)
        blocks = batched_vjp(roots, inputs, seeds, _order=order)
        H[lo:hi] = xp.concatenate([b.reshape(hi - lo, -1) for b in blocks], axis=1)
    return (H + H.T) * 0.5
