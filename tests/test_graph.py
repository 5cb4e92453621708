"""tg.draw_graph: assertions on the DOT text (node and edge counts, labels,
colours, clusters), determinism, a deep graph, a real SVG render, and the
one-sentence message when Graphviz's dot is missing."""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest
from _helpers import Cube

import tinygrad_opt as tg
from tinygrad_opt import Tensor, draw

NODE = re.compile(r"^\t+(n\d+|legend) \[(.*)\]$", re.MULTILINE)
EDGE = re.compile(r"^\t+(n\d+) -> (n\d+)(?: \[(.*)\])?$", re.MULTILINE)
NEEDS_DOT = pytest.mark.skipif(not draw.dot_available(), reason="needs Graphviz's dot")


def nodes(source):
    """{node id: its attribute text}, in the order of the DOT text."""
    return dict(NODE.findall(source))


def edges(source):
    return [(a, b, attrs) for a, b, attrs in EDGE.findall(source)]


def node_with(source, text):
    """The one node whose attributes contain ``text``."""
    found = [attrs for attrs in nodes(source).values() if text in attrs]
    assert len(found) == 1, f"{len(found)} nodes contain {text!r}"
    return found[0]


def leaf(value, name):
    return Tensor(value, dtype="float64", requires_grad=True, name=name)


def census(root):
    """An independent count of the computation: ops, tensors, raw numbers, input slots."""
    ops, tensors, numbers, slots = set(), {id(root)}, 0, 0
    stack = [root]
    while stack:
        t = stack.pop()
        if t._node is None or id(t) in ops:
            continue
        ops.add(id(t))
        for inp in t._node.inputs:
            if inp is None:
                continue
            slots += 1
            if isinstance(inp, Tensor):
                if id(inp) not in tensors:
                    tensors.add(id(inp))
                    stack.append(inp)
            else:
                numbers += 1
    return len(ops), len(tensors), numbers, slots


def micrograd_expression():
    """micrograd's README example; g = 24.7041, a.grad = 138.8338, b.grad = 645.5773."""
    a, b = leaf(-4.0, "a"), leaf(2.0, "b")
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g = g + 10.0 / f
    return a, b, g


# -- forward graph ------------------------------------------------------------------

def test_counts_and_labels_of_a_small_expression():
    a, b, c = leaf(2.0, "a"), leaf(-3.0, "b"), leaf(10.0, "c")
    out = a * b + c * 2
    src = tg.draw_graph(out).source
    # tensors a, b, c, a*b, c*2, out; the number 2; ops Mul, Mul, Add
    assert len(nodes(src)) == 6 + 1 + 3
    assert len(edges(src)) == (2 + 1) * 3  # two inputs and one output per op
    assert 'label="a | data 2.0000 | grad -3.0000"' in node_with(src, 'label="a |')
    assert 'label="b | data -3.0000 | grad 2.0000"' in node_with(src, 'label="b |')
    assert 'label="c | data 10.0000 | grad 2.0000"' in node_with(src, 'label="c |')
    assert "data 14.0000 | grad 1.0000" in node_with(src, draw.OUTPUT)
    assert node_with(src, "label=2 ").count(draw.CONST) == 1
    assert sum("shape=ellipse" in attrs for attrs in nodes(src).values()) == 3
    assert all(name in src for name in ("label=Mul", "label=Add"))


def test_micrograd_readme_values_and_counts():
    a, b, g = micrograd_expression()
    assert g.item() == pytest.approx(24.7041, abs=1e-4)
    src = tg.draw_graph(g).source
    n_ops, n_tensors, n_numbers, n_slots = census(g)
    assert len(nodes(src)) == n_ops + n_tensors + n_numbers
    assert len(edges(src)) == n_slots + n_ops
    assert "grad 138.8338" in node_with(src, 'label="a |')
    assert "grad 645.5773" in node_with(src, 'label="b |')
    assert "data 24.7041" in node_with(src, draw.OUTPUT)
    assert a.grad is None and b.grad is None  # the picture computes, it does not accumulate


def test_a_tensor_used_twice_has_two_edges():
    x = leaf(3.0, "x")
    src = tg.draw_graph(x * x).source
    x_id = next(k for k, v in nodes(src).items() if 'label="x |' in v)
    assert sum(a == x_id for a, _, _ in edges(src)) == 2
    assert "grad 6.0000" in node_with(src, 'label="x |')


def test_larger_tensors_show_shape_dtype_and_parameter_names():
    model = tg.nn.MLP([2, 4, 1], activation="tanh")
    x, y = tg.randn(3, 2), tg.randn(3, 1)
    loss = tg.nn.functional.mse_loss(model(x), y)
    src = tg.draw_graph(loss, params=model).source
    n_ops, n_tensors, n_numbers, _ = census(loss)
    assert len(nodes(src)) == n_ops + n_tensors + n_numbers
    weight = node_with(src, "layers.0.weight")
    assert "(4, 2) | float32 | ‖grad‖" in weight
    assert 'label="(3, 2) | float32"' in src  # the batch: a constant, no name
    assert "label=\"layers.0 (Linear)\"" in src and "label=\"layers.2 (Linear)\"" in src
    bias = node_with(src, "layers.2.bias")  # one element: values, as micrograd
    grad = model.layers[2].bias
    loss.backward()
    assert f"grad [{grad.grad.item():.4f}]" in bias


def test_params_as_a_dict_name_the_leaves():
    w = Tensor(np.ones((3, 3)), requires_grad=True)
    x = Tensor(np.arange(3.0))
    src = tg.draw_graph((w @ x).sum(), params={"W": w}).source
    assert 'label="W | (3, 3) | float64 | ‖grad‖ 3.8730"' in src  # ‖ones ⊗ x‖ = √15


def test_show_data_and_show_grad_switches():
    x = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True, name="x")
    y = (x * 2).sum()
    everything = tg.draw_graph(y, show_data=True).source
    assert "data [0.0000, 1.0000, 2.0000, …, 10.0000, 11.0000] | (3, 4)" in everything
    shapes_only = tg.draw_graph(y, show_data=False).source
    assert "data " not in shapes_only
    assert 'label="x | (3, 4) | float64 | ‖grad‖ 6.9282"' in shapes_only  # ‖2·ones(3, 4)‖
    no_grads = tg.draw_graph(y, show_grad=False).source
    assert "| grad" not in no_grads and "‖grad‖" not in no_grads


def test_a_user_function_is_drawn_with_its_name():
    x = leaf(2.0, "x")
    src = tg.draw_graph(Cube.apply(x)).source
    assert "label=Cube" in src and "grad 12.0000" in node_with(src, 'label="x |')


def test_a_non_scalar_root_shows_only_the_leaves_grad():
    x = leaf([1.0, 2.0], "x")
    y = x * 3
    src = tg.draw_graph(y).source
    assert "| grad" not in src
    (y * 1).sum().backward(retain_graph=True)
    assert "grad [3.0000, 3.0000]" in node_with(tg.draw_graph(y).source, 'label="x |')


# -- double backward ------------------------------------------------------------------

def test_double_backward_nodes_get_their_colour_and_cluster():
    x = leaf([1.0, 2.0], "x")
    y = (x * x * x).sum()
    (g,) = tg.grad(y, x, create_graph=True)
    src = tg.draw_graph(g).source
    orders = {}
    stack, seen = [g], set()
    while stack:
        t = stack.pop()
        if t._node is None or id(t) in seen:
            continue
        seen.add(id(t))
        orders[t._node.order] = orders.get(t._node.order, 0) + 1
        stack.extend(i for i in t._node.inputs if isinstance(i, Tensor))
    assert orders.get(1, 0) > 0
    cluster = src.split("subgraph cluster_forward_order1 {")[1].split("}")[0]
    assert "order 1: built by a create_graph=True backward" in cluster
    fill = draw.ORDER_FILL[0]
    order1_ops = [a for a in nodes(src).values() if "shape=ellipse" in a and fill in a]
    assert len(order1_ops) == orders[1]
    assert sum("shape=ellipse" in a for a in nodes(src).values()) == sum(orders.values())
    assert "grad [6.0000, 12.0000]" not in src  # g is not a scalar: no ∂g/∂node
    assert "data [3.0000, 12.0000]" in node_with(src, draw.OUTPUT)  # 3x²


def test_a_hessian_vector_product_shows_three_layers():
    x = leaf([1.0, 2.0], "x")
    v = Tensor([1.0, 0.0], dtype="float64")
    y = (x * x * x).sum()
    (g,) = tg.grad(y, x, create_graph=True)
    (hv,) = tg.grad(g, x, grad_outputs=v, create_graph=True)
    assert np.allclose(hv.numpy(), [6.0, 0.0])
    src = tg.draw_graph(hv).source
    assert "cluster_forward_order2" in src
    assert "cluster_forward_order1" in src and draw.ORDER_FILL[1] in src


# -- backward graph -------------------------------------------------------------------

def test_backward_steps_follow_the_engine(backward_calls):
    a, b, c = leaf(2.0, "a"), leaf(-3.0, "b"), leaf(0.5, "c")
    out = ((a * b).tanh() + (a - c).exp() * c).sum()
    src = tg.draw_graph(out, mode="backward").source
    labels = re.findall(r'label="#(\d+) (\w+)Backward"', src)
    drawn = [name for _, name in sorted(labels, key=lambda kv: int(kv[0]))]
    backward_calls.clear()  # the picture replays the engine's walk: count the engine's only
    out.backward()
    assert drawn == backward_calls and len(backward_calls) == 7


def test_backward_edges_carry_the_gradients():
    a, b = leaf(2.0, "a"), leaf(-3.0, "b")
    src = tg.draw_graph(a * b + a, mode="backward").source
    ids = nodes(src)
    sink_a = next(k for k, v in ids.items() if 'label="a | grad -2.0000"' in v)  # -3 + 1
    sink_b = next(k for k, v in ids.items() if 'label="b | grad 2.0000"' in v)
    into_a = sorted(attrs for x, y, attrs in edges(src) if x == sink_a)
    assert [re.search(r"label=(\S+)", e).group(1) for e in into_a] == ["-3.0000", "1.0000"]
    assert all("dir=back" in attrs for _, _, attrs in edges(src))
    assert any(x == sink_b and "label=2.0000" in attrs for x, _, attrs in edges(src))
    assert "grad of output | 1.0000" in src and len(re.findall("Backward", src)) == 2


def test_both_mode_draws_the_two_graphs_side_by_side():
    a, b = leaf(2.0, "a"), leaf(-3.0, "b")
    out = (a * b).tanh()
    forward = tg.draw_graph(out).source
    backward = tg.draw_graph(out, mode="backward").source
    both = tg.draw_graph(out, mode="both").source
    assert "subgraph cluster_forward {" in both and "subgraph cluster_backward {" in both
    assert len(nodes(both)) == len(nodes(forward)) + len(nodes(backward))
    assert len(edges(both)) == len(edges(forward)) + len(edges(backward)) + 1
    assert 'label="backward()"' in both


# -- determinism, size ------------------------------------------------------------------

def test_same_source_twice_in_one_process():
    sources = []
    for _ in range(2):
        _, _, g = micrograd_expression()
        sources.append(tg.draw_graph(g, mode="both", legend=True).source)
    assert sources[0] == sources[1]


DETERMINISM_SCRIPT = """
import hashlib, sys
sys.path.insert(0, {tests!r})
import tinygrad_opt as tg
from test_graph import micrograd_expression
_, _, g = micrograd_expression()
model = tg.nn.MLP([2, 3, 1])
loss = model(tg.ones(1, 2)).sum() + g
print(hashlib.sha256(tg.draw_graph(loss, params=model, mode="both").source.encode()).hexdigest())
"""


def test_same_source_across_processes():
    import os
    script = DETERMINISM_SCRIPT.format(tests=os.path.dirname(__file__))
    digests = []
    for seed in ("1", "2"):  # different hash seeds, different object addresses
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=env, timeout=60, check=True)
        digests.append(done.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_a_graph_of_ten_thousand_nodes_builds_without_recursion():
    x = leaf(0.5, "x")
    y = x
    for _ in range(5000):
        y = y.tanh()
    assert sys.getrecursionlimit() < 5000  # a recursive walk would have failed
    full = tg.draw_graph(y)
    assert len(nodes(full.source)) == 10_001
    bounded = tg.draw_graph(y, max_nodes=100)
    drawn = nodes(bounded.source)
    assert len(drawn) == 100 and bounded.stats["hidden"] == 10_001 - 99
    assert "… 9902 more nodes" in node_with(bounded.source, "shape=note")
    both = tg.draw_graph(y, mode="both", max_nodes=60)
    assert len(nodes(both.source)) <= 60


def test_modules_fold_before_the_summary():
    model = tg.nn.MLP([2, 8, 8, 1])
    loss = model(tg.randn(4, 2)).pow(2).mean()
    full = tg.draw_graph(loss, params=model)
    folded = tg.draw_graph(loss, params=model, max_nodes=14)
    assert len(nodes(folded.source)) <= 14 < len(nodes(full.source))
    assert sum("shape=box3d" in a for a in nodes(folded.source).values()) == 3
    assert "layers.0 (Linear)" in folded.source
    assert "shape=note" not in folded.source  # the modules sufficed


def test_bad_arguments_get_one_sentence():
    x = leaf(1.0, "x")
    for kwargs, text in [({"mode": "sideways"}, "mode"), ({"show_data": "yes"}, "show_data"),
                         ({"max_nodes": 1}, "max_nodes"), ({"rankdir": "XY"}, "rankdir")]:
        with pytest.raises(ValueError, match=text):
            tg.draw_graph(x * 2, **kwargs)
    with pytest.raises(TypeError, match="root must be a Tensor"):
        tg.draw_graph(3.0)


# -- rendering ---------------------------------------------------------------------------

@NEEDS_DOT
def test_render_writes_valid_svg_with_one_group_per_node(tmp_path):
    _, _, g = micrograd_expression()
    digraph = tg.draw_graph(g, mode="both", legend=True)
    path = draw.render(digraph, tmp_path / "g.svg")
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    groups = [e for e in root.iter("{http://www.w3.org/2000/svg}g") if e.get("class") == "node"]
    assert len(groups) == len(nodes(digraph.source))
    assert not list(tmp_path.glob(".graph-*"))  # the temporary file was renamed into place


def test_missing_dot_gives_one_sentence_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH that hides dot
    assert not draw.dot_available()
    digraph = tg.draw_graph(leaf(2.0, "a") * 3)
    assert 'label="a | data 2.0000 | grad 3.0000"' in digraph.source  # DOT needs no Graphviz
    for attempt in (lambda: draw.render(digraph, tmp_path / "g.svg"),
                    lambda: digraph.render(tmp_path / "g", format="svg"),
                    lambda: digraph.pipe(format="svg")):
        with pytest.raises(draw.DotNotFoundError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and "apt-get install graphviz" in message
        assert isinstance(caught.value, graphviz.ExecutableNotFound)
    bundle = digraph._repr_mimebundle_()
    assert "apt-get install graphviz" in bundle["text/plain"] and digraph.source in \
        bundle["text/plain"]
    assert draw.render(digraph, tmp_path / "g.dot").endswith("g.dot")
    assert (tmp_path / "g.dot").read_text() == digraph.source


def test_fields_are_stacked_in_both_layouts():
    # a record's fields run across in TB and down in LR unless braced: stacked
    # fields keep a node as narrow as its longest line in either direction
    src = tg.draw_graph(leaf(2.0, "a") * 3, rankdir="TB").source
    assert "rankdir=TB" in src and 'label="{ a | data 2.0000 | grad 3.0000 }"' in src
    assert 'label="a | data 2.0000 | grad 3.0000"' in tg.draw_graph(leaf(2.0, "a") * 3).source


def test_the_graph_tour_example(tmp_path, capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "graph_tour.py"
    assert len(path.read_text().splitlines()) < 100
    spec = importlib.util.spec_from_file_location("graph_tour", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(str(tmp_path))
    out = capsys.readouterr().out
    assert "g = 24.7041" in out and "vᵀHv =" in out
    suffix = ".svg" if draw.dot_available() else ".dot"
    names = {"micrograd", "micrograd_both", "mlp_loss", "mlp_hvp"}
    assert {p.name for p in tmp_path.iterdir()} == {n + suffix for n in names}
