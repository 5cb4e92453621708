"""The backward engine on its own, with toy Functions whose derivatives are
known: graph shapes (fan-out, diamond, an input used twice, a chain a million
ops deep), graph freeing and retain_graph, reference cycles, accumulation into
leaves, grad mode, ``tg.grad``, and derivatives to third order."""

import gc
import weakref

import numpy as np
import pytest
from _helpers import Square

import tinygrad_opt as tg
from tinygrad_opt.autograd import Function


class Double(Function):
    """y = 2x."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return g * 2


class Product(Function):
    """z = x * y."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, g * x


class Exp(Function):
    """y = exp(x), backward reuses the output."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class Identity(Function):
    """y = x (returns the same array: the cheapest link of a long chain)."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        return g


def leaf(value, dtype="float64"):
    return tg.tensor(value, dtype=dtype, requires_grad=True)


# -- graph shapes --------------------------------------------------------------------------------


def test_chain_of_functions():
    x = leaf(3.0)
    y = Square.apply(Double.apply(x))  # (2x)² = 4x², dy/dx = 8x
    y.backward()
    assert y.item() == 36.0
    assert x.grad.item() == 24.0


def test_fan_out():
    x = leaf(2.0)
    a, b, c = Double.apply(x), Square.apply(x), Exp.apply(x)
    (a + b + c).backward()  # 2 + 2x + e^x
    np.testing.assert_allclose(x.grad.item(), 2 + 4 + np.exp(2.0))


def test_diamond():
    x = leaf(1.5)
    a = Double.apply(x)             # 2x
    b, c = Square.apply(a), Exp.apply(a)
    y = Product.apply(b, c)         # (2x)² e^{2x}
    y.backward()
    u = 2 * 1.5
    np.testing.assert_allclose(x.grad.item(), 2 * (2 * u * np.exp(u) + u * u * np.exp(u)))


def test_input_used_twice():
    x = leaf(3.0)
    y = Product.apply(x, x)  # x², both slots are x
    y.backward()
    assert x.grad.item() == 6.0


def test_function_gradient_is_differentiable_again():
    x = leaf(3.0)
    (g,) = tg.grad(Square.apply(Square.apply(x)), x, create_graph=True)  # x⁴ -> 4x³
    (h,) = tg.grad(g, x)
    assert g.item() == 108.0 and h.item() == 108.0  # 12x² at 3


def test_function_backward_returning_the_wrong_count_is_an_error():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(RuntimeError, match="Bad.backward returned 1 gradient"):
        Bad.apply(leaf(1.0), leaf(2.0)).backward()


def test_function_needs_input_grad_and_constants():
    seen = {}

    class Scale(Function):
        @staticmethod
        def forward(ctx, x, factor):
            seen["needs"] = ctx.needs_input_grad
            ctx.factor = factor
            return x * factor

        @staticmethod
        def backward(ctx, g):
            return g * ctx.factor, None

    x = leaf([1.0, 2.0])
    Scale.apply(x, 3.0).sum().backward()
    assert seen["needs"] == (True, False)
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# -- the million-deep chain ------------------------------------------------------------------------

DEPTH = 10**6


@pytest.fixture
def no_cycle_collector():
    """Building a million-node graph with the cycle collector on spends most of
    its time in full collections (Python's, not ours): switch it off meanwhile."""
    gc.disable()
    yield
    gc.enable()


def test_million_deep_chain_backward_without_recursion(no_cycle_collector):
    x = leaf(np.float64(1.0))
    y = x
    for _ in range(DEPTH):
        y = Identity.apply(y)
    y = Double.apply(y)
    y.backward()
    assert x.grad.item() == 2.0


def test_freeing_a_million_deep_chain_does_not_crash(no_cycle_collector):
    x = leaf(np.float64(1.0))
    y = x
    for _ in range(DEPTH):
        y = Identity.apply(y)
    ref = weakref.ref(y._node.inputs[0])
    del y  # never backpropagated: the whole chain is released at once, without recursion
    assert ref() is None


# -- freeing the graph, retain_graph ---------------------------------------------------------------


def test_second_backward_through_freed_graph_names_the_op_and_the_fix():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 3).sum()
    y.backward()
    with pytest.raises(RuntimeError) as info:
        y.backward()
    message = str(info.value)
    assert "Mul" in message and "retain_graph=True" in message
    assert message.count(".") <= 3  # one sentence (give or take abbreviations)


def test_backward_twice_with_retain_graph_accumulates():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_freed_function_graph_drops_saved_arrays():
    x = leaf([1.0, 2.0])
    y = Square.apply(x).sum()
    node = y._node.inputs[0]._node
    y.backward()
    assert node.inputs is None and node.attrs._saved is None


def test_graph_is_freed_after_backward_and_output_keeps_nothing():
    x = leaf([1.0, 2.0])
    hidden = x.exp()
    ref = weakref.ref(hidden)
    y = (hidden * 2).sum()
    del hidden
    assert ref() is not None  # the graph keeps it for backward
    y.backward()
    assert ref() is None      # freed by backward although y is alive


def test_graph_is_freed_when_output_dies_without_backward():
    x = leaf([1.0, 2.0])
    hidden = Square.apply(x.sin())
    ref = weakref.ref(hidden)
    y = Exp.apply(hidden).sum()
    del hidden
    gc.disable()
    try:
        del y
        assert ref() is None  # by reference counting alone: no cycles
    finally:
        gc.enable()


def test_no_reference_cycles():
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        x = leaf(np.ones((3, 3)))
        for _ in range(50):
            y = (Square.apply(x @ x).tanh().sum(0).softmax(0) * x[0]).sum()
            y.backward(retain_graph=True)
            tg.grad(y, x, create_graph=True)[0].sum().backward()
        del y
        # Only our own objects count: another test's thread (a progress bar, a
        # Dask client) may leave unrelated cyclic garbage in this process.
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith("tinygrad_opt")]
        assert not ours, "the graph left garbage only the cycle collector can free"
        del before
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_tensor_is_hashable_by_identity():
    a, b = tg.tensor([1.0]), tg.tensor([1.0])
    table = {a: 1, b: 2}
    assert table[a] == 1 and table[b] == 2 and len({a, a, b}) == 2
    assert isinstance(a == b, tg.Tensor)


# -- accumulation and leaves -----------------------------------------------------------------------


def test_grad_accumulates_across_backward_calls():
    x = leaf([1.0, -1.0])
    for _ in range(3):
        (x * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [15.0, 15.0])
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_only_leaves_get_grad():
    x = leaf([1.0, 2.0])
    h = x * 3
    (h * h).sum().backward()
    assert h.grad is None and not h.is_leaf and x.is_leaf
    np.testing.assert_array_equal(x.grad.numpy(), [18.0, 36.0])


def test_leaves_never_share_gradient_memory():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    seed = tg.tensor([1.0, 1.0], dtype="float64")
    (x + y).backward(seed)
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    assert not np.shares_memory(x.grad.numpy(), seed.numpy())
    x.grad.numpy()[0] = 100  # writable, and the others do not change
    assert y.grad.numpy()[0] == 1 and seed.numpy()[0] == 1


def test_broadcast_gradient_is_summed_to_the_leaf_shape():
    b = leaf([1.0, 2.0, 3.0])
    x = leaf(np.ones((4, 3)))
    (x * b).sum().backward()
    assert b.grad.shape == (3,) and x.grad.shape == (4, 3)
    np.testing.assert_array_equal(b.grad.numpy(), [4.0, 4.0, 4.0])


def test_backward_with_gradient_for_non_scalar():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(gradient=tg.tensor([1.0, 0.5, 0.0], dtype="float64"))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 0.0])


def test_backward_inputs_restricts_accumulation():
    x, y = leaf(2.0), leaf(3.0)
    (x * y).backward(inputs=[x])
    assert x.grad.item() == 3.0 and y.grad is None


def test_constants_and_int_inputs_need_no_gradient():
    x = leaf([1.0, 2.0])
    c = tg.tensor([5.0, 6.0], dtype="float64")
    labels = tg.tensor([1, 0])
    assert labels.dtype == np.int64
    (x * c + labels).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 6.0])


# -- grad mode -------------------------------------------------------------------------------------


def test_no_node_is_built_when_nothing_requires_grad():
    a, b = tg.randn(3), tg.randn(3)
    y = (a * b).exp().sum()
    assert y._node is None and not y.requires_grad


def test_no_grad_and_enable_grad():
    x = leaf([1.0])
    with tg.no_grad():
        y = x * 2
        with tg.enable_grad():
            z = x * 2
    assert y._node is None and not y.requires_grad
    assert z.requires_grad and z._node is not None
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def inference(t):
        return t * 2

    assert not inference(x).requires_grad


def test_detach_and_requires_grad_():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), d.numpy())
    d.requires_grad_()
    (d * d).sum().backward()
    np.testing.assert_array_equal(d.grad.numpy(), [4.0, 8.0])
    assert x.grad is None


def test_backward_skips_inputs_that_need_no_gradient():
    calls = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            calls.append(ctx.needs_input_grad)
            return g, None

    Spy.apply(leaf(1.0), tg.tensor(2.0)).backward()
    assert calls == [(True, False)]


# -- tg.grad ---------------------------------------------------------------------------------------


def test_grad_returns_tuple_and_leaves_dot_grad_alone():
    x, y = leaf(2.0), leaf(3.0)
    gx, gy = tg.grad(x * x * y, [x, y])
    assert gx.item() == 12.0 and gy.item() == 4.0
    assert x.grad is None and y.grad is None


def test_grad_allow_unused():
    x, unused = leaf(2.0), leaf(3.0)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        tg.grad(x * x, [x, unused])
    gx, gu = tg.grad(x * x, [x, unused], allow_unused=True)
    assert gx.item() == 4.0 and gu is None


def test_grad_of_several_outputs_sums_their_contributions():
    x = leaf([1.0, 2.0])
    y = x * x
    z = y * 3  # z depends on y: y's gradient includes z's contribution
    gx, = tg.grad([y.sum(), z.sum(), y.sum()], x, retain_graph=True)
    np.testing.assert_array_equal(gx.numpy(), [10.0, 20.0])  # 2x + 6x + 2x
    s = y.sum()
    gy, = tg.grad([s, s, z.sum()], y)  # the same output twice counts twice
    np.testing.assert_array_equal(gy.numpy(), [5.0, 5.0])


def test_grad_of_intermediate_and_grad_outputs():
    x = leaf([1.0, 2.0])
    h = x * 3
    y = h * h
    (gh,) = tg.grad(y, h, grad_outputs=tg.tensor([1.0, 1.0], dtype="float64"))
    np.testing.assert_array_equal(gh.numpy(), [6.0, 12.0])


def test_create_graph_to_third_order():
    x = leaf(0.7)
    y = x ** 4 + x.sin()
    (g1,) = tg.grad(y, x, create_graph=True)
    (g2,) = tg.grad(g1, x, create_graph=True)
    (g3,) = tg.grad(g2, x, create_graph=True)
    (g4,) = tg.grad(g3, x)
    v = 0.7
    np.testing.assert_allclose([g1.item(), g2.item(), g3.item(), g4.item()],
                               [4 * v**3 + np.cos(v), 12 * v**2 - np.sin(v), 24 * v - np.cos(v),
                                24 + np.sin(v)], rtol=1e-12)


def test_backward_create_graph_gives_differentiable_dot_grad():
    x = leaf([1.0, 2.0])
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = tg.grad(x.grad.sum(), x)
    np.testing.assert_array_equal(gg.numpy(), [6.0, 12.0])


def test_kinks_use_the_documented_subgradient():
    x = leaf([0.0, 0.0, 0.0, 0.5])
    (x.relu() + x.abs() + x.clamp(-1.0, 0.5)).sum().backward()
    # relu'(0) = 0, abs'(0) = 0, clamp' = 1 inside [min, max] (ends included)
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0, 3.0])
    a, b = leaf([1.0, 2.0]), leaf([1.0, 1.0])
    a.maximum(b).sum().backward()  # a tie splits the gradient
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0])
    m = leaf([3.0, 3.0, 1.0])
    m.max().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [0.5, 0.5, 0.0])


def test_pow_at_zero_base():
    x, y = leaf([0.0, 2.0]), leaf([2.0, 3.0])
    (x ** y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 12.0])
    np.testing.assert_allclose(y.grad.numpy(), [0.0, 8 * np.log(2.0)])


def test_indexing_with_repeats_accumulates():
    x = leaf([1.0, 2.0, 3.0])
    x[tg.tensor([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])
    y = leaf(np.arange(6.0).reshape(2, 3))
    y[y > 2.5].sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[0, 0, 0], [1, 1, 1]])
