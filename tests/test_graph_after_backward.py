"""micrograd's workflow: ``loss.backward(); tg.draw_graph(loss)`` draws the whole
graph with the data and the gradient that flowed through every tiny tensor,
while the backward still lets go of every large array (the activations)."""

import gc
import re
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import Tensor

LABEL = re.compile(r'label="(t\d+) \| data (\S+) \| grad (\S+)"')


def micrograd(a, b):
    """micrograd's README expression; every intermediate is returned, in order."""
    kept = []

    def keep(t):
        kept.append(t)
        return t

    c = keep(a + b)
    d = keep(keep(a * b) + keep(b ** 3))
    c = keep(keep(c + c) + 1)
    c = keep(keep(keep(c + 1) + c) + keep(-a))
    d = keep(keep(d + keep(d * 2)) + keep(keep(b + a).relu()))
    d = keep(keep(d + keep(3 * d)) + keep(keep(b - a).relu()))
    e = keep(c - d)
    f = keep(e ** 2)
    g = keep(f / 2.0)
    keep(g + keep(10.0 / f))
    return kept


def tg_expression():
    a = Tensor(-4.0, dtype="float64", requires_grad=True, name="a")
    b = Tensor(2.0, dtype="float64", requires_grad=True, name="b")
    kept = micrograd(a, b)
    for k, t in enumerate(kept):
        t.name = f"t{k}"
    return a, b, kept


def test_the_picture_after_backward_is_the_one_before():
    _, _, kept = tg_expression()
    root = kept[-1]
    before = [tg.draw_graph(root, mode=m).source for m in ("forward", "backward", "both")]
    root.backward()
    after = [tg.draw_graph(root, mode=m).source for m in ("forward", "backward", "both")]
    assert after == before
    assert root._node.trace is not None  # drawn from what the backward kept


def test_every_drawn_value_and_gradient_is_the_one_torch_computes():
    torch = pytest.importorskip("torch")
    a, _, kept = tg_expression()
    root = kept[-1]
    root.backward()
    drawn = {name: (float(d), float(g)) for name, d, g in LABEL.findall(
        tg.draw_graph(root).source)}
    assert len(drawn) == len(kept)  # every intermediate, each with data and grad

    ta = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    reference = micrograd(ta, tb)
    for t in reference:
        t.retain_grad()
    reference[-1].backward()
    for k, t in enumerate(reference):
        data, grad = drawn[f"t{k}"]
        assert data == pytest.approx(t.item(), abs=1e-4, rel=1e-4)
        assert grad == pytest.approx(t.grad.item(), abs=1e-4, rel=1e-4)
    assert a.grad.item() == pytest.approx(ta.grad.item())


def test_the_gradients_drawn_are_the_engines_own():
    # the gradient each intermediate received, as the engine computed it
    # (tg.grad with retain_graph keeps the graph for the backward that follows)
    _, _, kept = tg_expression()
    root = kept[-1]
    expected = tg.grad(root, kept, retain_graph=True)
    root.backward()
    source = tg.draw_graph(root).source
    for t, g in zip(kept, expected):
        assert f'label="{t.name} | data {t.item():.4f} | grad {g.item():.4f}"' in source


def test_the_backward_picture_shows_what_each_step_handed_on():
    a = Tensor(2.0, dtype="float64", requires_grad=True, name="a")
    b = Tensor(-3.0, dtype="float64", requires_grad=True, name="b")
    out = a * b + a
    out.backward()
    source = tg.draw_graph(out, mode="backward").source
    assert "#1 AddBackward" in source and "#2 MulBackward" in source
    assert 'label="a | grad -2.0000"' in source  # -3 from a*b, +1 from + a
    assert sorted(re.findall(r"label=(-?\d\.\d+) ", source)) == \
        ["-3.0000", "1.0000", "1.0000", "1.0000", "2.0000"]


def test_large_tensors_keep_shape_and_dtype_and_the_picture_says_so():
    model = tg.nn.MLP([3, 8, 1], activation="tanh", dtype="float64")
    x = tg.randn(5, 3, dtype="float64")
    loss = model(x).pow(2).mean()
    loss.backward()
    digraph = tg.draw_graph(loss, params=model)
    source = digraph.source
    assert digraph.stats["shape_only"] > 0 and "kept shape and dtype only" in source
    assert 'label="(5, 8) | float64"' in source  # an activation: its values are gone
    bias = model.layers[2].bias  # one element: data and the gradient that flowed
    assert f"layers.2.bias | data [{bias.item():.4f}] | grad [{bias.grad.item():.4f}]" in source
    weight = model.layers[0].weight  # a leaf: its .grad is alive, so its norm is shown
    norm = float(np.linalg.norm(weight.grad.numpy()))
    assert f"layers.0.weight | (8, 3) | float64 | ‖grad‖ {norm:.4f}" in source


def test_backward_lets_go_of_the_activations():
    tg.manual_seed(0)
    model = tg.nn.MLP([64, 256, 256, 1], activation="tanh", dtype="float64")
    x = tg.randn(2048, 64, dtype="float64")
    activation_bytes = 2048 * 256 * 8  # one hidden activation: 4 MiB

    def step():
        loss = model(x).pow(2).mean()
        arrays, stack = [], [loss]
        while stack:  # every intermediate array of the graph: a weak reference, its size
            t = stack.pop()
            if t._node is not None:
                arrays.append((weakref.ref(t.data), t.data.size))
                stack.extend(i for i in t._node.inputs if isinstance(i, Tensor))
        return loss, arrays

    loss, arrays = step()
    loss.backward()
    model.zero_grad()
    loss, arrays = step()
    gc.collect()
    tracemalloc.start()
    try:
        loss.backward()
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # the parameters' .grad (about 0.6 MiB) is all that stays; no activation does
    assert kept < activation_bytes / 2
    activations = [r for r, size in arrays if size >= 2048 * 256]
    assert len(activations) >= 2 and all(r() is None for r in activations)
    assert tg.draw_graph(loss, params=model).stats["ops"] == len(arrays)

    trace = weakref.ref(loss._node.trace.values)
    loss = None  # the next step overwrites the loss: the trace goes with it, at once
    assert trace() is None  # (no reference cycle waits for the garbage collector)


def test_a_backward_through_a_huge_graph_keeps_no_trace(monkeypatch):
    from tinygrad_opt import function

    monkeypatch.setattr(function, "TRACE_NODES", 3)  # "huge": more than 3 tensors
    x = Tensor(0.5, dtype="float64", requires_grad=True, name="x")
    y = x.tanh().exp().sin().cos().tanh()
    y.backward()
    assert y._node.trace is function.UNTRACED
    digraph = tg.draw_graph(y)
    assert digraph.stats["freed"] == 1 and "(freed)" in digraph.source
    assert "more than 3 tensors, which keeps no trace" in digraph.source
    small = x.tanh() * 2  # 2 tensors below the output: traced as usual
    small.backward()
    assert "(freed)" not in tg.draw_graph(small).source
