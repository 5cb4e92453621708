"""Differential test against PyTorch: random expressions over the op table --
broadcasting, 0-d and empty shapes, mixed float dtypes, views, item assignment
and in-place changes under no_grad -- give the same values, dtypes, gradients
and Hessian-vector products as PyTorch (float64 where both are float64)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_opt as tg

torch = pytest.importorskip("torch")

# Shapes the leaves broadcast to (leaves drop leading dims or shrink dims to 1).
BASE_SHAPES = [(), (3,), (2, 3), (4, 1, 3), (0, 3), (2, 0)]


def _positive(x):
    return x.abs() + 0.5


# name -> function(x) applied identically to a tinygrad_opt and a torch tensor
UNARY = {
    "neg": lambda x: -x,
    "exp": lambda x: (x * 0.5).exp(),
    "log": lambda x: _positive(x).log(),
    "sqrt": lambda x: _positive(x).sqrt(),
    "sin": lambda x: x.sin(),
    "cos": lambda x: x.cos(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(),
    "square": lambda x: x.square(),
    "arctan": lambda x: x.arctan(),
    "pow const": lambda x: _positive(x) ** 1.5,
    "clamp": lambda x: x.clamp(-0.5, 0.7),
    "scalar ops": lambda x: (2.0 - x) * 3.0 / 4.0 + 1.0,
    "sum": lambda x: x.sum(),
    "mean": lambda x: x.mean() if x.numel() else x.sum(),
    "sum dim keepdim": lambda x: x.sum(-1, keepdim=True) if x.ndim else x,
    "amax dim": lambda x: x.amax(-1) if x.ndim and x.shape[-1] else x,
    # (over an empty dim too: an empty result, as PyTorch's)
    "softmax": lambda x: x.softmax(-1) if x.ndim else x,
    "log_softmax": lambda x: x.log_softmax(-1) if x.ndim else x,
    "logsumexp": lambda x: x.logsumexp(-1) if x.ndim and x.shape[-1] else x,
    "var": lambda x: x.var(-1) if x.ndim and x.shape[-1] > 1 else x,
    "reshape view": lambda x: x.reshape(-1),
    "transpose view": lambda x: x.transpose(0, -1) if x.ndim > 1 else x,
    "unsqueeze expand": lambda x: x.unsqueeze(0).expand(2, *x.shape),
    "slice view": lambda x: x[..., ::2] if x.ndim else x,
    "index": lambda x: x[0] if x.ndim and x.shape[0] else x,
    "flatten": lambda x: x.flatten(),
}

BINARY = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / _positive(y),
    "pow": lambda x, y: _positive(x) ** (y * 0.5),
    "maximum": lambda x, y: x.maximum(y),
    "minimum": lambda x, y: x.minimum(y),
}


def _setitem(lib):
    def assign(x, y):
        """A copy of x (at least 1-d) with row 0 set from y: CopySlices."""
        if x.ndim == 0 or x.shape[0] == 0:
            return x
        out = x * 1.0
        out[0] = y.sum() * 2
        return out
    return assign


def _inplace_no_grad(lib):
    def change(x, y):
        """An in-place change under no_grad of a value no backward reads."""
        out = x + 0.0  # add saves nothing: changing its result is allowed
        with lib.no_grad():
            out.mul_(1.5)
        return out * y
    return change


def _expression(lib, leaves, ops):
    pool = list(leaves)
    for kind, name, picks in ops:
        args = [pool[i % len(pool)] for i in picks]
        if kind == "unary":
            result = UNARY[name](args[0])
        elif kind == "binary":
            result = _broadcasting(BINARY[name], args)
        else:
            result = _broadcasting(({"setitem": _setitem, "inplace": _inplace_no_grad}
                                    [name])(lib), args)
        if result is not None:
            pool.append(result)
    return pool[len(leaves):] or pool


def _broadcasting(fn, args):
    try:
        np.broadcast_shapes(tuple(args[0].shape), tuple(args[1].shape))
    except ValueError:
        return None
    return fn(*args)


@st.composite
def programs(draw):
    base = draw(st.sampled_from(BASE_SHAPES))
    n_leaves = draw(st.integers(1, 3))
    leaves = []
    for _ in range(n_leaves):
        drop = draw(st.integers(0, len(base)))
        shape = tuple(n if draw(st.booleans()) else 1 for n in base[drop:])
        dtype = draw(st.sampled_from(["float64", "float64", "float32"]))
        leaves.append((shape, dtype))
    kinds = (["unary"] * 3 + ["binary"] * 2 + ["setitem", "inplace"])
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        name = draw(st.sampled_from(sorted(UNARY if kind == "unary" else BINARY
                                           if kind == "binary" else [kind])))
        ops.append((kind, name, (draw(st.integers(0, 9)), draw(st.integers(0, 9)))))
    seed = draw(st.integers(0, 2**16))
    return leaves, ops, seed


def _run(lib, leaves_spec, ops, values, weights, directions):
    dtypes = {"float32": lib.float32, "float64": lib.float64}
    leaves = [lib.tensor(v, dtype=dtypes[d], requires_grad=True)
              for v, (_, d) in zip(values, leaves_spec)]
    outs = _expression(lib, leaves, ops)
    loss = sum((o * lib.tensor(w, dtype=o.dtype)).sum() for o, w in zip(outs, weights(outs)))
    if lib is tg:
        grads = tg.grad(loss, leaves, create_graph=True, allow_unused=True)
    else:
        grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
    live = [(g, v) for g, v in zip(grads, directions) if g is not None and g.requires_grad]
    hvp = [None] * len(leaves)
    if live:
        dot = sum((g * lib.tensor(v, dtype=g.dtype)).sum() for g, v in live)
        if lib is tg:
            hvp = tg.grad(dot, leaves, allow_unused=True)
        else:
            hvp = torch.autograd.grad(dot, leaves, allow_unused=True)
    return outs, grads, hvp


def _array(t):
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.detach().numpy(force=True)  # force: torch's ZeroTensor gradients
    return t.numpy()


def _same(ours, theirs, tol, what):
    ours, theirs = _array(ours), _array(theirs)
    if ours is None or theirs is None:  # no gradient on one side means zero on the other
        other = theirs if ours is None else ours
        assert other is None or not np.any(other), what
        return
    assert ours.shape == theirs.shape, what
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=what)


@settings(max_examples=40, deadline=None)
@given(programs())
def test_random_expressions_match_torch(program):
    leaves_spec, ops, seed = program
    rng = np.random.default_rng(seed)
    values = [rng.uniform(-2, 2, shape) for shape, _ in leaves_spec]
    directions = [rng.standard_normal(shape) for shape, _ in leaves_spec]
    weight_rng = np.random.default_rng(seed + 1)
    cache = {}

    def weights(outs):  # the same weights for both libraries
        key = tuple(tuple(o.shape) for o in outs)
        if key not in cache:
            cache[key] = [weight_rng.standard_normal(tuple(o.shape)) for o in outs]
        return cache[key]

    ours = _run(tg, leaves_spec, ops, values, weights, directions)
    theirs = _run(torch, leaves_spec, ops, values, weights, directions)
    tol = 1e-9 if all(d == "float64" for _, d in leaves_spec) else 2e-4
    for o, t in zip(ours[0], theirs[0]):
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), (ops, o.dtype, t.dtype)
        _same(o, t, tol, f"value of {ops}")
    for kind, (o_list, t_list) in zip(("gradient", "hvp"), zip(ours[1:], theirs[1:])):
        for i, (o, t) in enumerate(zip(o_list, t_list)):
            _same(o, t, tol, f"{kind} of leaf {i} in {ops}")
