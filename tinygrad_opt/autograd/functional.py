"""Higher-level derivatives built from ``grad``, with PyTorch's conventions
(``torch.autograd.functional``): vjp, jvp, jacobian, hessian, hvp, vhp.

``func`` takes Tensors and returns a Tensor (or a tuple of them); ``inputs`` is
a Tensor or a tuple of Tensors. Results mirror that structure.
"""

from ..tensor import Tensor
from ..function import enable_grad
from .grad import grad


def _as_tuple(x):
    return ((x,), False) if isinstance(x, Tensor) else (tuple(x), True)


def _prepare(inputs, create_graph):
    """Inputs that require grad: the same tensors when building a graph on
    them, fresh detached leaves otherwise."""
    return tuple(t if (create_graph and t.requires_grad) else t.detach().requires_grad_()
                 for t in inputs)


def _zeros_if_none(grads, like):
    return tuple(g if g is not None else Tensor._make(t.data * 0, False, None)
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
    """(func(inputs), J v) by the double-vjp trick: u ↦ Jᵀu is linear in u,
    so differentiating <Jᵀu, v> with respect to u gives J v."""
    inputs, in_tuple = _as_tuple(inputs)
    vs = _as_tuple(v)[0] if v is not None else tuple(
        Tensor._make(t.data * 0 + 1, False, None) for t in inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        outs, out_tuple = _as_tuple(out)
        us = tuple(Tensor._make(o.data * 0, False, None).requires_grad_() for o in outs)
        jtu = grad(outs, xs, us, create_graph=True, allow_unused=True)
        pairs = [(g * vi).sum() for g, vi in zip(jtu, vs) if g is not None]
        total = pairs[0]
        for p in pairs[1:]:
            total = total + p
        jv = grad([total], us, create_graph=create_graph, allow_unused=True)
    jv = _zeros_if_none(jv, outs)
    return _unpack(_finish(outs, create_graph), out_tuple), \
        _unpack(_finish(jv, create_graph), out_tuple)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False):
    """J[i][j] = d out_i / d input_j, of shape out_i.shape + input_j.shape,
    one reverse pass per output element."""
    inputs, in_tuple = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        outs, out_tuple = _as_tuple(out)
        rows = [_jacobian_of(o, xs, create_graph) for o in outs]
    if not in_tuple:
        rows = [r[0] for r in rows]
    return tuple(tuple(r) if in_tuple else r for r in rows) if out_tuple else rows[0]


def _jacobian_of(out, xs, create_graph):
    """The Jacobian blocks of one output with respect to each input."""
    from .. import stack

    n = out.numel()
    per_input = [[] for _ in xs]
    flat = out.reshape(-1)
    xp_ones = out.data.reshape(-1) * 0
    for i in range(n):
        seed = xp_ones.copy()
        seed[i] = 1
        grads = grad([flat], xs, [Tensor._make(seed, False, None)], retain_graph=True,
                     create_graph=create_graph, allow_unused=True) \
            if out.requires_grad else (None,) * len(xs)
        for k, (g, x) in enumerate(zip(grads, xs)):
            per_input[k].append(g if g is not None else Tensor._make(x.data * 0, False, None))
    blocks = []
    for rows_k, x in zip(per_input, xs):
        block = stack(rows_k) if rows_k else Tensor._make(x.data.reshape(0, *x.shape), False, None)
        block = block.reshape(*out.shape, *x.shape)
        blocks.append(block if create_graph else block.detach())
    return blocks


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False):
    """H[i][j] = d² func / d input_i d input_j for a scalar ``func``: the
    Jacobian of the gradient, by double backward."""
    inputs, in_tuple = _as_tuple(inputs)

    def gradient(*xs):
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError(f"hessian: func must return a single-element tensor, it "
                               f"returned shape {tuple(out.shape)}.")
        gs = grad([out.reshape(())], xs, create_graph=True, allow_unused=True)
        return tuple(g if g is not None else x * 0 for g, x in zip(gs, xs))

    result = jacobian(gradient, inputs, create_graph=create_graph)
    return result if in_tuple else result[0][0]


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar ``func``, by double backward (Pearlmutter):
    H v = d/dx <∇f(x), v>."""
    return _hessian_product(func, inputs, v, create_graph)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), vᵀ H). Equal to hvp because H is symmetric; kept for PyTorch's API."""
    return _hessian_product(func, inputs, v, create_graph)


def _hessian_product(func, inputs, v, create_graph):
    inputs, in_tuple = _as_tuple(inputs)
    if v is None:
        if sum(t.numel() for t in inputs) != 1:
            raise RuntimeError("hvp: v is required unless the input has a single element.")
        v = tuple(Tensor._make(t.data * 0 + 1, False, None) for t in inputs)
    vs = _as_tuple(v)[0]
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError(f"hvp: func must return a single-element tensor, it returned "
                               f"shape {tuple(out.shape)}.")
        gs = grad([out.reshape(())], xs, create_graph=True, allow_unused=True)
        pairs = [(g * vi).sum() for g, vi in zip(gs, vs) if g is not None]
        total = pairs[0]
        for p in pairs[1:]:
            total = total + p
        hv = grad([total], xs, create_graph=create_graph, allow_unused=True) \
            if total.requires_grad else (None,) * len(xs)
    hv = _zeros_if_none(hv, xs)
    return _finish((out,), create_graph)[0], _unpack(_finish(hv, create_graph), in_tuple)
