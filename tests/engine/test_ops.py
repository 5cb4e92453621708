"""Every op, driven by ONE table: values against NumPy, then gradcheck and
gradgradcheck in float64, over shapes and broadcast pairs that hypothesis draws.

A row of ``OPS`` is ``name -> Case(fn, ref, draw)``: ``fn`` is our op applied
to Tensors, ``ref`` the same computation written in NumPy, and ``draw`` draws
the inputs (a list of float64 arrays, shapes chosen by hypothesis, values by a
seeded generator over the op's domain) plus keyword arguments (dim, keepdim,
an index, ...) passed to both. Domains stay off kinks and poles (log of
positive numbers, relu away from 0); kinks are tested on their own in
test_engine.py against the documented subgradient.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_opt as tg
from tinygrad_opt.autograd import gradcheck, gradgradcheck

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

# -- domains: maps from a generator and a shape to values ------------------------------------


def anywhere(rng, shape):
    return rng.uniform(-2, 2, shape)


def positive(rng, shape):
    return rng.uniform(0.3, 2, shape)


def nonzero(rng, shape):  # away from 0 (kinks of relu/abs, pole of 1/x)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2, shape)


def clamp_domain(rng, shape):  # away from the kinks at -0.5 and 0.5
    return rng.choice([-1.25, 0.0, 1.25], shape) + rng.uniform(-0.35, 0.35, shape)


# -- drawing inputs ---------------------------------------------------------------------------

SHAPE = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
NONEMPTY = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)


def values(data, shapes, domain):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    return [np.asarray(domain(rng, s), dtype=np.float64) for s in shapes]


def unary(domain=anywhere, shape=SHAPE):
    def draw(data):
        return values(data, [data.draw(shape, label="shape")], domain), {}
    return draw


def binary(domain=anywhere, domain_y=None):
    def draw(data):
        shapes = data.draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
                           label="shapes").input_shapes
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        x, y = domain(rng, shapes[0]), (domain_y or domain)(rng, shapes[1])
        return [np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)], {}
    return draw


def reduction(domain=anywhere, keepdim=True, single_dim=False, shape=NONEMPTY):
    """x of any non-empty shape, and dim None / an int / a tuple (maybe negative)."""
    shape_strategy = shape

    def draw(data):
        shape = data.draw(shape_strategy, label="shape")
        nd = len(shape)
        one = st.integers(-nd, nd - 1)
        dims = one if single_dim else st.one_of(
            st.none(), one, st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                     unique=True).map(tuple))
        kwargs = {"dim": data.draw(dims, label="dim")}
        if keepdim:
            kwargs["keepdim"] = data.draw(st.booleans(), label="keepdim")
        return values(data, [shape], domain), kwargs
    return draw


def fixed(*shapes, domain=anywhere, **kwargs):
    def draw(data):
        return values(data, shapes, domain), dict(kwargs)
    return draw


def np_dim(dim):
    return None if dim is None else dim


# -- NumPy references that need a few lines ---------------------------------------------------


def np_softmax(x, dim=-1):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def np_logsumexp(x, dim=None, keepdim=False):
    m = x.max(axis=dim, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=dim, keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=dim) if dim is not None else out.reshape(())


def np_var(x, dim=None, keepdim=False):
    return x.var(axis=dim, keepdims=keepdim, ddof=1)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def draw_permute(data):
    shape = data.draw(NONEMPTY, label="shape")
    dims = data.draw(st.permutations(range(len(shape))), label="dims")
    return values(data, [shape], anywhere), {"dims": tuple(dims)}


def draw_expand(data):
    shape = data.draw(SHAPE, label="shape")
    target = data.draw(mutually_broadcastable_shapes(num_shapes=1, base_shape=shape, max_dims=3,
                                                     max_side=3), label="target").result_shape
    return values(data, [shape], anywhere), {"shape": tuple(target)}


def draw_reshape(data):
    shape = data.draw(SHAPE, label="shape")
    n = int(np.prod(shape))
    new = data.draw(st.sampled_from([(n,), (1, n), (n, 1), (-1,), (1, -1, 1)]), label="new")
    return values(data, [shape], anywhere), {"shape": new}


def draw_squeeze(data):
    shape = data.draw(array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=2), label="shape")
    ones = [i for i, n in enumerate(shape) if n == 1]
    dim = data.draw(st.one_of(st.none(), st.sampled_from(ones)) if ones else st.none(),
                    label="dim")
    return values(data, [shape], anywhere), {"dim": dim}


def draw_unsqueeze(data):
    shape = data.draw(SHAPE, label="shape")
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)), label="dim")
    return values(data, [shape], anywhere), {"dim": dim}


def draw_cat(data):
    shape = data.draw(NONEMPTY, label="shape")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="sizes")
    shapes = [tuple(s if i != dim % len(shape) else k for i, s in enumerate(shape))
              for k in sizes]
    return values(data, shapes, anywhere), {"dim": dim}


def draw_stack(data):
    shape = data.draw(SHAPE, label="shape")
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)), label="dim")
    count = data.draw(st.integers(1, 3), label="count")
    return values(data, [shape] * count, anywhere), {"dim": dim}


def draw_where(data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3),
                       label="shapes").input_shapes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    cond = rng.random(shapes[0]) > 0.5
    x, y = (rng.uniform(-2, 2, s) for s in shapes[1:])
    return [x, y], {"cond": cond}


def draw_matmul(data):
    kind = data.draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched", "broadcast"]),
                     label="kind")
    n, k, m, b = (data.draw(st.integers(1, 3), label=c) for c in "nkmb")
    shapes = {"vv": [(k,), (k,)], "mv": [(n, k), (k,)], "vm": [(k,), (k, m)],
              "mm": [(n, k), (k, m)], "batched": [(b, n, k), (b, k, m)],
              "broadcast": [(b, 1, n, k), (2, k, m)]}[kind]
    return values(data, shapes, anywhere), {}


INDEXES = [
    1, -1, (0, 1), slice(1, None), (slice(None), 0), (Ellipsis, slice(None, None, 2)),
    (None, 0), np.array([0, 2, 0, 0]), (np.array([1, 1]), np.array([0, 2])),
    (slice(None), np.array([2, 0, 2])), "mask",
]


def draw_index(data):
    index = data.draw(st.sampled_from(range(len(INDEXES))), label="index")
    index = INDEXES[index]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.uniform(-2, 2, (3, 3))
    if isinstance(index, str):  # a boolean mask, never empty
        index = rng.random((3, 3)) > 0.5
        index[0, 0] = True
    return [x], {"index": index}


def select_values(t, dim, keepdim, which):
    return getattr(t, which)(dim, keepdim)[0]


@dataclass
class Case:
    fn: Callable     # our op on Tensors (and the drawn kwargs)
    ref: Callable    # the NumPy reference on float64 arrays (same kwargs)
    draw: Callable   # data -> (list of arrays, kwargs)


OPS = {
    # arithmetic, with broadcasting and reflected forms
    "add": Case(lambda x, y: x + y, np.add, binary()),
    "sub": Case(lambda x, y: x - y, np.subtract, binary()),
    "mul": Case(lambda x, y: x * y, np.multiply, binary()),
    "div": Case(lambda x, y: x / y, np.divide, binary(anywhere, nonzero)),
    "pow_tensor_exponent": Case(lambda x, y: x ** y, np.power, binary(positive, anywhere)),
    "radd": Case(lambda x: 2.5 + x, lambda x: 2.5 + x, unary()),
    "rsub": Case(lambda x: 2.5 - x, lambda x: 2.5 - x, unary()),
    "rmul": Case(lambda x: 2.5 * x, lambda x: 2.5 * x, unary()),
    "rtruediv": Case(lambda x: 2.5 / x, lambda x: 2.5 / x, unary(nonzero)),
    "rpow": Case(lambda x: 2.5 ** x, lambda x: 2.5 ** x, unary()),
    "neg": Case(lambda x: -x, np.negative, unary()),
    "pow_2": Case(lambda x: x ** 2, np.square, unary()),
    "pow_3": Case(lambda x: x ** 3, lambda x: x ** 3, unary()),
    "pow_half": Case(lambda x: x ** 0.5, np.sqrt, unary(positive)),
    "pow_neg": Case(lambda x: x ** -1.5, lambda x: x ** -1.5, unary(positive)),
    "square": Case(lambda x: x.square(), np.square, unary()),
    # elementwise functions
    "exp": Case(tg.exp, np.exp, unary()),
    "log": Case(tg.log, np.log, unary(positive)),
    "sqrt": Case(tg.sqrt, np.sqrt, unary(positive)),
    "sin": Case(tg.sin, np.sin, unary()),
    "cos": Case(tg.cos, np.cos, unary()),
    "tanh": Case(tg.tanh, np.tanh, unary()),
    "arctan": Case(tg.arctan, np.arctan, unary()),
    "sigmoid": Case(tg.sigmoid, np_sigmoid, unary()),
    "relu": Case(tg.relu, lambda x: np.maximum(x, 0), unary(nonzero)),
    "leaky_relu": Case(lambda x: tg.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                       unary(nonzero)),
    "abs": Case(tg.abs, np.abs, unary(nonzero)),
    "clamp": Case(lambda x: x.clamp(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
                  unary(clamp_domain)),
    "clamp_min": Case(lambda x: x.clamp(min=-0.5), lambda x: np.maximum(x, -0.5),
                      unary(clamp_domain)),
    "clamp_max": Case(lambda x: tg.clamp(x, max=0.5), lambda x: np.minimum(x, 0.5),
                      unary(clamp_domain)),
    "maximum": Case(tg.maximum, np.maximum, binary()),
    "minimum": Case(tg.minimum, np.minimum, binary()),
    "maximum_scalar": Case(lambda x: x.maximum(0.25), lambda x: np.maximum(x, 0.25),
                           unary(clamp_domain)),
    "where": Case(lambda x, y, cond: tg.where(tg.tensor(cond), x, y),
                  lambda x, y, cond: np.where(cond, x, y), draw_where),
    # reductions
    "sum": Case(lambda x, dim, keepdim: x.sum(dim, keepdim),
                lambda x, dim, keepdim: x.sum(axis=dim, keepdims=keepdim), reduction()),
    "sum_axis_keepdims": Case(lambda x, dim, keepdim: x.sum(axis=dim, keepdims=keepdim),
                              lambda x, dim, keepdim: x.sum(axis=dim, keepdims=keepdim),
                              reduction()),
    "mean": Case(lambda x, dim, keepdim: x.mean(dim, keepdim),
                 lambda x, dim, keepdim: x.mean(axis=dim, keepdims=keepdim), reduction()),
    "amax": Case(lambda x, dim, keepdim: x.amax(dim, keepdim),
                 lambda x, dim, keepdim: x.max(axis=dim, keepdims=keepdim), reduction()),
    "max_all": Case(lambda x: x.max(), np.max, unary(shape=NONEMPTY)),
    "min_all": Case(lambda x: tg.min(x), np.min, unary(shape=NONEMPTY)),
    "max_dim": Case(lambda x, dim, keepdim: select_values(x, dim, keepdim, "max"),
                    lambda x, dim, keepdim: x.max(axis=dim, keepdims=keepdim),
                    reduction(single_dim=True)),
    "min_dim": Case(lambda x, dim, keepdim: select_values(x, dim, keepdim, "min"),
                    lambda x, dim, keepdim: x.min(axis=dim, keepdims=keepdim),
                    reduction(single_dim=True)),
    "amin": Case(lambda x, dim, keepdim: x.amin(dim, keepdim),
                 lambda x, dim, keepdim: x.min(axis=dim, keepdims=keepdim), reduction()),
    "var": Case(lambda x, dim, keepdim: x.var(dim, keepdim=keepdim), np_var,
                reduction(shape=array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=3))),
    "logsumexp": Case(lambda x, dim, keepdim: x.logsumexp(dim, keepdim), np_logsumexp,
                      reduction()),
    "softmax": Case(lambda x, dim: x.softmax(dim), np_softmax,
                    reduction(keepdim=False, single_dim=True)),
    "log_softmax": Case(lambda x, dim: tg.log_softmax(x, dim),
                        lambda x, dim: np.log(np_softmax(x, dim)),
                        reduction(keepdim=False, single_dim=True)),
    # linear algebra
    "matmul": Case(lambda x, y: x @ y, np.matmul, draw_matmul),
    # movement
    "reshape": Case(lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape),
                    draw_reshape),
    "view": Case(lambda x, shape: x.view(*shape), lambda x, shape: x.reshape(shape),
                 draw_reshape),
    "permute": Case(lambda x, dims: x.permute(*dims), lambda x, dims: x.transpose(dims),
                    draw_permute),
    "transpose": Case(lambda x: x.transpose(0, -1), lambda x: np.swapaxes(x, 0, -1),
                      unary(shape=NONEMPTY)),
    "T": Case(lambda x: x.T, lambda x: x.T, unary()),
    "expand": Case(lambda x, shape: x.expand(*shape), np.broadcast_to, draw_expand),
    "squeeze": Case(lambda x, dim: x.squeeze(dim), lambda x, dim: np.squeeze(x, dim),
                    draw_squeeze),
    "unsqueeze": Case(lambda x, dim: x.unsqueeze(dim), lambda x, dim: np.expand_dims(x, dim),
                      draw_unsqueeze),
    "flatten": Case(lambda x: x.flatten(), lambda x: x.reshape(-1), unary()),
    "flatten_middle": Case(lambda x: x.flatten(1, 2), lambda x: x.reshape(2, -1, 2),
                           fixed((2, 3, 3, 2))),
    "getitem": Case(lambda x, index: x[index], lambda x, index: x[index], draw_index),
    "getitem_tensor_index": Case(lambda x: x[tg.tensor([2, 0, 2])],
                                 lambda x: x[[2, 0, 2]], fixed((3, 2))),
    "cat": Case(lambda *xs, dim: tg.cat(list(xs), dim),
                lambda *xs, dim: np.concatenate(xs, axis=dim), draw_cat),
    "stack": Case(lambda *xs, dim: tg.stack(list(xs), dim),
                  lambda *xs, dim: np.stack(xs, axis=dim), draw_stack),
    # composites the library writes in Tensor ops
    "std": Case(lambda x: x.std(), lambda x: x.std(ddof=1), fixed((4, 3))),
    "clone": Case(lambda x: x.clone(), np.copy, unary()),
}


def as_tensors(arrays):
    return [tg.tensor(a, dtype="float64", requires_grad=True) for a in arrays]


def run(case, arrays, kwargs):
    return case.fn(*as_tensors(arrays), **kwargs)


@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(data=st.data())
def test_values_match_numpy(name, data):
    case = OPS[name]
    arrays, kwargs = case.draw(data)
    expected = np.asarray(case.ref(*arrays, **kwargs))
    out = run(case, arrays, kwargs)
    assert out.dtype == np.float64
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    # In float32 the same op gives float32 and the same values to float32 precision.
    out32 = case.fn(*[tg.tensor(a.astype(np.float32), requires_grad=True) for a in arrays],
                    **kwargs)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), expected, rtol=2e-5, atol=2e-5)
    # Non-contiguous inputs (Fortran order: strides NumPy does not lay out by default).
    strided = case.fn(*as_tensors([np.asfortranarray(a) if a.ndim > 1 else a for a in arrays]),
                      **kwargs)
    np.testing.assert_allclose(strided.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(data=st.data())
def test_gradcheck(name, data):
    case = OPS[name]
    arrays, kwargs = case.draw(data)
    assert gradcheck(lambda *xs: case.fn(*xs, **kwargs), as_tensors(arrays))


@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(data=st.data())
def test_gradgradcheck(name, data):
    case = OPS[name]
    arrays, kwargs = case.draw(data)
    assert gradgradcheck(lambda *xs: case.fn(*xs, **kwargs), as_tensors(arrays))


def test_every_op_of_the_design_has_a_row():
    design = {"add", "sub", "mul", "div", "pow_tensor_exponent", "neg", "abs", "exp", "log",
              "sqrt", "sin", "cos", "tanh", "arctan", "sigmoid", "relu", "leaky_relu", "clamp",
              "maximum", "minimum", "where", "sum", "mean", "max_dim", "min_dim", "var",
              "logsumexp", "softmax", "log_softmax", "matmul", "reshape", "view", "transpose",
              "permute", "T", "expand", "squeeze", "unsqueeze", "flatten", "getitem", "cat",
              "stack", "radd", "rsub", "rmul", "rtruediv", "rpow"}
    assert design <= set(OPS)


FUNCTION_FORMS = ["exp", "log", "sqrt", "sin", "cos", "tanh", "arctan", "sigmoid", "relu",
                  "leaky_relu", "abs", "neg", "square", "softmax", "log_softmax", "logsumexp",
                  "sum", "mean", "amax", "amin", "var", "std", "flatten"]


@pytest.mark.parametrize("name", FUNCTION_FORMS)
def test_function_form_equals_method(name):
    x = tg.tensor(np.random.default_rng(1).uniform(0.5, 2, (3, 4)))
    np.testing.assert_array_equal(getattr(tg, name)(x).numpy(), getattr(x, name)().numpy())


def test_binary_function_forms():
    x, y = tg.tensor([[1.0, 2.0]]), tg.tensor([[3.0], [4.0]])
    for name, ref in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                      ("div", np.divide), ("pow", np.power), ("maximum", np.maximum),
                      ("minimum", np.minimum), ("matmul", np.matmul)]:
        np.testing.assert_allclose(getattr(tg, name)(x, y).numpy(), ref(x.numpy(), y.numpy()),
                                   rtol=1e-6)
    assert tg.reshape(x, 2, 1).shape == (2, 1)
    assert tg.transpose(y, 0, 1).shape == (1, 2)
    assert tg.permute(y, 1, 0).shape == (1, 2)
    assert tg.squeeze(x).shape == (2,)
    assert tg.unsqueeze(x, 0).shape == (1, 1, 2)
    values, indices = tg.max(y, 0)
    assert values.item() == 4.0 and indices.item() == 1
    assert tg.argmax(x).item() == 1 and tg.argmin(y).item() == 0


def test_numpy_names_axis_and_keepdims():
    x = tg.randn(2, 3, 4)
    for method in ("sum", "mean", "logsumexp"):
        a = getattr(x, method)(axis=(0, 2), keepdims=True)
        b = getattr(x, method)(dim=(0, 2), keepdim=True)
        assert a.shape == (1, 3, 1)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert x.max(axis=1).values.shape == (2, 4)
    assert x.var(axis=1, keepdims=True).shape == (2, 1, 4)
