"""Many vector-Jacobian products in one backward pass (a small ``vmap``).

A Jacobian by reverse rows needs one backward pass per output element, a
Hessian one per parameter: for a 105-parameter MLP that is 105 walks through
the graph of the gradient, each paying Python's per-op overhead. Here the
cotangents travel together instead: every gradient in the walk carries a
leading batch axis B, and each op's backward is applied once to the whole
batch. The result is Sᵀ J for a block S of B cotangents -- with S = I, the
whole Jacobian -- in one pass.

Most backward formulas are elementwise products that broadcast over a
leading axis as they are (``g * y``), so they run unchanged; the ops whose
backward depends on the gradient's layout (reshape, permute, reductions,
indexing and item assignment, matmul, softmax) have a batched rule below --
matmul's stacks the batch into the rows of one matrix product. Any other op
-- one added later, or a user's ``Function`` -- falls back to a loop over the
batch, which is always correct, only slower. The walk records no graph
(first-order products of a graph that may itself be a gradient:
``hessian_matrix`` walks the graph of ∇f), and it follows the engine's rules
for in-place changes (``x[i] = v`` after a use of ``x``).
"""

from ..backend import xp_of
from ..function import no_grad
from ..inplace import CopySlices
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import movement as M
from ..ops import reduce as R
from ..tensor import Tensor
from .engine import _check_saved
from .walk import backward_order

__all__ = ["batched_vjp", "hessian_matrix", "jacobian_matrix"]

# Largest number of array elements one batched intermediate may hold before the
# batch is split into chunks (2**24 float64 values = 128 MiB).
CHUNK_ELEMENTS = 1 << 24


def _t(array):
    return Tensor._make(array, False, None)


# Ops whose backward broadcasts over a leading batch axis unchanged: each
# gradient is the incoming g times something of the output's shape.
_ELEMENTWISE = {getattr(E, name, None) for name in (
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "Exp", "Log", "Sqrt", "Sin", "Cos", "Tanh",
    "Arctan", "Sigmoid", "Relu", "LeakyRelu", "Abs", "Clamp", "Maximum", "Minimum", "Where",
    "Cast")} | {getattr(M, "Copy", None)}
_ELEMENTWISE.discard(None)


def _batched_sum_to(xp, a, shape):
    """Sum a (B, ...) gradient down to (B,) + shape (undo broadcasting per sample)."""
    target = (a.shape[0],) + tuple(shape)
    if a.shape == target:
        return a
    lead = a.ndim - len(target)
    if lead < 0:
        a = a.reshape(a.shape[:1] + (1,) * (-lead) + a.shape[1:])
        lead = 0
    axes = tuple(range(1, 1 + lead)) + tuple(
        1 + lead + i for i, n in enumerate(shape) if n == 1 and a.shape[1 + lead + i] != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    if a.shape[1 + lead:] != tuple(shape):
        a = xp.broadcast_to(a, a.shape[:1 + lead] + tuple(shape))
    return xp.ascontiguousarray(a.reshape(target))


def _broadcast_copy(xp, a, shape):
    out = xp.empty(shape, dtype=a.dtype)
    out[...] = a
    return out


# -- batched rules: (node, G array (B, *out.shape), out Tensor) -> tuple of arrays/None ----

def _stacked_rows_times(rows, w):
    """rows @ w for a batch of row vectors (B, ..., p) and one w (..., p, q):
    the B rows stacked into ONE matrix product (B, p) @ (p, q) per matrix of w.
    A stacked matmul of (B, ..., 1, p) would make B vector-matrix products, one
    BLAS call each -- what made the Hessian of a matrix-vector product slow."""
    xp = xp_of((rows,))
    return xp.moveaxis(xp.moveaxis(rows, 0, -2) @ w, -2, 0)


def _product(a, b):
    """a @ b, where an inner dimension of 1 makes it an outer product: a
    broadcast multiply then does it without one tiny BLAS call per matrix."""
    return a * b if a.shape[-1] == 1 else a @ b


def _matmul(node, G, out):
    """dz/dx = g @ yᵀ and dz/dy = xᵀ @ g, with a vector x read as the row
    (1, k) and a vector y as the column (k, 1), as in the forward. Where each
    sample's product would be matrix-vector (g a row for dz/dx, a column for
    dz/dy), the batch is stacked into one matrix product (_stacked_rows_times;
    dz/dy as (gᵀ @ x)ᵀ); otherwise each sample's is a proper matrix product."""
    x, y = node.inputs
    needs = node.needs_input_grad
    xd, yd = x.data, y.data
    x2 = xd[None, :] if xd.ndim == 1 else xd              # (..., m, k)
    y2 = yd[:, None] if yd.ndim == 1 else yd              # (..., k, n)
    G2 = G[..., None] if yd.ndim == 1 else G
    G2 = G2[..., None, :] if xd.ndim == 1 else G2         # (B, ..., m, n)
    gx = gy = None
    if needs[0] and G2.shape[-2] == 1:                    # g a row: (B, ..., k), then (1, k)
        gx = _stacked_rows_times(G2[..., 0, :], y2.swapaxes(-1, -2))
        gx = gx if xd.ndim == 1 else gx[..., None, :]
    elif needs[0]:                                        # (x is a matrix here)
        gx = _product(G2, y2.swapaxes(-1, -2))
    if needs[1] and G2.shape[-1] == 1:                    # g a column: (B, ..., k), then (k, 1)
        gy = _stacked_rows_times(G2[..., 0], x2)
        gy = gy if yd.ndim == 1 else gy[..., None]
    elif needs[1]:                                        # (y is a matrix here)
        gy = _product(x2.swapaxes(-1, -2), G2)
    return gx, gy


def _reshape(node, G, out):
    return (G.reshape(G.shape[:1] + node.inputs[0].shape),)


def _permute(node, G, out):
    dims = node.attrs["dims"]
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d] = i
    return (G.transpose((0,) + tuple(i + 1 for i in inverse)),)


def _expand(node, G, out):
    return (_batched_sum_to(xp_of((G,)), G, node.inputs[0].shape),)


def _sum_to(node, G, out):
    shape = node.inputs[0].shape
    small = G.reshape(G.shape[:1] + (1,) * (len(shape) - (G.ndim - 1)) + G.shape[1:])
    return (_broadcast_copy(xp_of((G,)), small, G.shape[:1] + shape),)


def _batched_index(index):
    """``index`` with a leading full slice for the batch axis, or None when the
    batch axis would move (advanced indices separated by a slice)."""
    parts = index if isinstance(index, tuple) else (index,)
    advanced = [i for i, p in enumerate(parts)
                if not (p is None or p is Ellipsis or isinstance(p, (int, slice)))]
    if advanced and advanced[-1] - advanced[0] + 1 != len(advanced):
        return None
    if any(isinstance(p, int) for p in parts) and advanced:
        return None  # an int among advanced indices also counts as advanced
    return (slice(None),) + parts


def _get_item(node, G, out):
    index = _batched_index(node.attrs["index"])
    if index is None:
        return _fallback(node, G, out)
    x = node.inputs[0]
    xp = xp_of((G,))
    full = xp.zeros(G.shape[:1] + x.shape, dtype=G.dtype)
    if M._is_basic(node.attrs["index"]):
        full[index] = G
    else:
        xp.add.at(full, index, G)
    return (full,)


def _copy_slices(node, G, out):
    """``x[index] = v``: x's gradient is G with the overwritten part zeroed, v's
    the overwritten part of G (summed to v's shape by the walk)."""
    index = _batched_index(node.attrs["index"])
    if index is None:
        return _fallback(node, G, out)
    needs = node.needs_input_grad
    gx = gv = None
    if needs[0]:
        gx = G.copy()
        gx[index] = 0
    if needs[1]:
        gv = G[index]
    return gx, gv


def _index_add(node, G, out):
    index = _batched_index(node.attrs["index"])
    if index is None:
        return _fallback(node, G, out)
    return (xp_of((G,)).ascontiguousarray(G[index]),)


def _cat(node, G, out):
    dim = node.attrs["dim"] % (G.ndim - 1)
    grads, start = [], 0
    for x, needed in zip(node.inputs, node.needs_input_grad):
        stop = start + x.shape[dim]
        index = (slice(None),) * (dim + 1) + (slice(start, stop),)
        grads.append(G[index] if needed else None)
        start = stop
    return tuple(grads)


def _broadcast_back(node, G):
    shape = node.inputs[0].shape
    if not node.attrs["keepdim"]:
        G = G.reshape(G.shape[:1] + R.kept_shape(shape, node.attrs["dims"]))
    return _broadcast_copy(xp_of((G,)), G, G.shape[:1] + shape)


def _sum(node, G, out):
    return (_broadcast_back(node, G),)


def _mean(node, G, out):
    shape = node.inputs[0].shape
    count = 1
    for d in node.attrs["dims"]:
        count *= shape[d]
    return (_broadcast_back(node, G * (1.0 / max(count, 1))),)


def _extremum(node, G, out):
    return (_broadcast_back(node, G) * R._extremum_share(node, out).data,)


def _softmax(node, G, out):
    d = node.attrs["dim"] % out.ndim + 1
    z = out.data
    return (z * (G - (G * z).sum(axis=d, keepdims=True)),)


def _log_softmax(node, G, out):
    d = node.attrs["dim"] % out.ndim + 1
    xp = xp_of((G,))
    return (G - xp.exp(out.data) * G.sum(axis=d, keepdims=True),)


def _select_along(node, G, out):
    x, index = node.inputs
    dim, keepdim = node.attrs["dim"], node.attrs["keepdim"]
    xp = xp_of((G,))
    full = xp.zeros(G.shape[:1] + x.shape, dtype=G.dtype)
    values = G if keepdim else xp.expand_dims(G, dim + 1)
    idx = xp.expand_dims(_data(index), dim)[None]
    idx = xp.broadcast_to(idx, values.shape)
    xp.put_along_axis(full, idx, values, axis=dim + 1)
    return full, None


def _scatter_along(node, G, out):
    index = node.inputs[1]
    dim, keepdim = node.attrs["dim"], node.attrs["keepdim"]
    xp = xp_of((G,))
    idx = xp.expand_dims(_data(index), dim)[None]
    idx = xp.broadcast_to(idx, G.shape[:1] + idx.shape[1:])
    picked = xp.take_along_axis(G, idx, axis=dim + 1)
    return (picked if keepdim else picked.squeeze(dim + 1)), None


def _data(v):
    return v.data if isinstance(v, Tensor) else v


def _fallback(node, G, out):
    """Any op: its own backward once per batch element, stacked."""
    per_sample = [node.op.vjp(node, _t(G[b]), out) for b in range(G.shape[0])]
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


_RULES = {}
for _op, _rule in ((getattr(L, "MatMul", None), _matmul), (getattr(M, "Reshape", None), _reshape),
                   (getattr(M, "Permute", None), _permute), (getattr(M, "Expand", None), _expand),
                   (getattr(M, "SumTo", None), _sum_to), (getattr(M, "GetItem", None), _get_item),
                   (getattr(M, "IndexAdd", None), _index_add), (getattr(M, "Cat", None), _cat),
                   (CopySlices, _copy_slices),
                   (getattr(R, "Sum", None), _sum), (getattr(R, "Mean", None), _mean),
                   (getattr(R, "Amax", None), _extremum), (getattr(R, "Amin", None), _extremum),
                   (getattr(R, "Max", None), _extremum), (getattr(R, "Min", None), _extremum),
                   (getattr(R, "Softmax", None), _softmax),
                   (getattr(R, "LogSoftmax", None), _log_softmax),
                   (getattr(R, "SelectAlong", None), _select_along),
                   (getattr(R, "ScatterAlong", None), _scatter_along)):
    if _op is not None:
        _RULES[_op] = _rule


def _apply_rule(node, G, out):
    op = node.op
    rule = _RULES.get(op)
    if rule is not None:
        return rule(node, G, out)
    if op in _ELEMENTWISE:
        grads = op.vjp(node, _t(G), out)
        return tuple(None if g is None else g.data for g in grads)
    return _fallback(node, G, out)


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
    seeds = [_data(s) for s in seeds]
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
                gi = _batched_sum_to(xp, gi, inp.shape)
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
    from .grad import grad

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
    from ..function import enable_grad

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
    from .grad import grad

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
