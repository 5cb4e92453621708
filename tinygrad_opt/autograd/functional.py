"""Higher-level derivatives built from ``grad``, with PyTorch's conventions
(``torch.autograd.functional``): vjp, jvp, jacobian, hessian, hvp, vhp.

``func`` takes Tensors and returns a Tensor (or a tuple of them); ``inputs`` is
a Tensor or a tuple of Tensors. Results mirror that structure.
"""

from ..functions import stack
from ..op import enable_grad
from ..tensor import Tensor
from . import batched
from .grad import grad


def _as_tuple(x):
    return ((x,), False) if isinstance(x, Tensor) else (tuple(x), True)


def _prepare(inputs, create_graph):
    """Inputs that require grad: the same tensors when building a graph on
    them, fresh detached leaves otherwise."""
    return tuple(t if (create_graph and t.requires_grad) else t.detach().requires_grad_()
                 for t in inputs)


def _zeros_if_none(grads, like):
    return tuple(g if g is not None else Tensor.constant(t.data * 0)
                 for g, t in zip(grads, like))


def _finish(values, create_graph):
    return tuple(v if create_graph else v.detach() for v in values)


def _unpack(values, was_tuple):
    return values if was_tuple else values[0]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), vᵀ J): one reverse pass."""
    inputs, in_tuple = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        outs, out_tuple = _as_tuple(out)
        vs = None if v is None else _as_tuple(v)[0]
        grads = grad(outs, xs, vs, create_graph=create_graph, allow_unused=True)
    grads = _zeros_if_none(grads, xs)
    return _unpack(_finish(outs, create_graph), out_tuple), \
        _unpack(_finish(grads, create_graph), in_tuple)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v) by the double-vjp trick: u ↦ Jᵀu is linear in u, and
    the vector-Jacobian product of that map with v is (vᵀ Jᵀ)ᵀ = J v."""
    inputs, _ = _as_tuple(inputs)
    vs = _as_tuple(v)[0] if v is not None else tuple(
        Tensor.constant(t.data * 0 + 1) for t in inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        outs, out_tuple = _as_tuple(out)
        us = tuple(Tensor.constant(o.data * 0).requires_grad_() for o in outs)
        jtu = grad(outs, xs, us, create_graph=True, allow_unused=True)
        jv = _vector_jacobian(jtu, vs, us, create_graph)
    jv = _zeros_if_none(jv, outs)
    return _unpack(_finish(outs, create_graph), out_tuple), \
        _unpack(_finish(jv, create_graph), out_tuple)


def _vector_jacobian(outputs, vectors, inputs, create_graph):
    """Σ_k vectors_kᵀ d outputs_k / d inputs, skipping outputs that are None or
    constant; None for inputs nothing depends on."""
    live = [(o, v) for o, v in zip(outputs, vectors) if o is not None and o.requires_grad]
    if not live:
        return (None,) * len(inputs)
    return grad([o for o, _ in live], inputs, [v for _, v in live],
                create_graph=create_graph, allow_unused=True)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False):
    """J[i][j] = d out_i / d input_j, of shape out_i.shape + input_j.shape.

    All rows of an output come from one batched backward pass (the cotangents
    e_1, e_2, ... travel together through the graph, in chunks that bound the
    memory; see ``tinygrad_opt.autograd.batched``). With ``create_graph=True``
    the result must itself be differentiable, so each row is one recorded
    backward pass instead. ``vectorize`` is accepted for PyTorch's signature:
    rows are batched whenever the result needs no graph.
    """
    inputs, in_tuple = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        outs, out_tuple = _as_tuple(out)
        if create_graph:
            rows = [_jacobian_rows(o, xs) for o in outs]
        else:
            rows = [_split(batched.jacobian_matrix(o, list(xs), strategy="rows"), o.shape, xs)
                    for o in outs]
    if not in_tuple:
        rows = [r[0] for r in rows]
    return tuple(tuple(r) if in_tuple else r for r in rows) if out_tuple else rows[0]


def _split(matrix, out_shape, xs):
    """Cut an (m, n) Jacobian into one block per input, shaped out_shape + x.shape."""
    blocks, start = [], 0
    for x in xs:
        n = x.numel()
        block = matrix[:, start:start + n].reshape(tuple(out_shape) + tuple(x.shape))
        blocks.append(Tensor.constant(block))
        start += n
    return blocks


def _jacobian_rows(out, xs):
    """The Jacobian blocks of one output, one differentiable backward per row."""
    n = out.numel()
    per_input = [[] for _ in xs]
    flat = out.reshape(-1)
    zeros = out.data.reshape(-1) * 0
    for i in range(n):
        seed = zeros.copy()
        seed[i] = 1
        grads = grad([flat], xs, [Tensor.constant(seed)], retain_graph=True,
                     create_graph=True, allow_unused=True) \
            if out.requires_grad else (None,) * len(xs)
        for k, (g, x) in enumerate(zip(grads, xs)):
            per_input[k].append(g if g is not None else Tensor.constant(x.data * 0))
    blocks = []
    for rows_k, x in zip(per_input, xs):
        block = stack(rows_k) if rows_k else Tensor.constant(x.data.reshape(0, *x.shape))
        blocks.append(block.reshape(*out.shape, *x.shape))
    return blocks


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False):
    """H[i][j] = d² func / d input_i d input_j for a scalar ``func``: the
    Jacobian of the gradient, by double backward.

    The gradient is built once with ``create_graph=True``; all rows of its
    Jacobian then come from one batched backward pass (or, with
    ``create_graph=True``, one recorded backward per row).
    """
    inputs, in_tuple = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError(f"hessian: func must return a single-element tensor, it "
                               f"returned shape {tuple(out.shape)}.")
        if create_graph:
            gs = grad([out.reshape(())], xs, create_graph=True, allow_unused=True)
            gs = tuple(g if g is not None else x * 0 for g, x in zip(gs, xs))
            rows = [_jacobian_rows(g, xs) for g in gs]
        else:
            H = batched.hessian_matrix(out, list(xs))
            rows, start = [], 0
            for x in xs:
                n = x.numel()
                rows.append(_split(H[start:start + n], x.shape, xs))
                start += n
    if not in_tuple:
        return rows[0][0]
    return tuple(tuple(r) for r in rows)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar ``func``, by double backward (Pearlmutter):
    H v = d/dx <∇f(x), v>, computed as the vector-Jacobian product of ∇f with v."""
    return _hessian_product(func, inputs, v, create_graph)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), vᵀ H). Equal to hvp because H is symmetric; kept for PyTorch's API."""
    return _hessian_product(func, inputs, v, create_graph)


def _hessian_product(func, inputs, v, create_graph):
    inputs, in_tuple = _as_tuple(inputs)
    if v is None:
        if sum(t.numel() for t in inputs) != 1:
            raise RuntimeError("hvp: v is required unless the input has a single element.")
        v = tuple(Tensor.constant(t.data * 0 + 1) for t in inputs)
    vs = _as_tuple(v)[0]
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError(f"hvp: func must return a single-element tensor, it returned "
                               f"shape {tuple(out.shape)}.")
        gs = grad([out.reshape(())], xs, create_graph=True, allow_unused=True)
        # The vector-Jacobian product of the gradient map with v is vᵀH = (Hv)ᵀ: one
        # backward seeded with v, no inner product <g, v> to build and differentiate.
        hv = _vector_jacobian(gs, vs, xs, create_graph)
    hv = _zeros_if_none(hv, xs)
    return _finish((out,), create_graph)[0], _unpack(_finish(hv, create_graph), in_tuple)
