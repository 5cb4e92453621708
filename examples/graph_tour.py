"""A tour of tg.draw_graph: three pictures of backprop, each written as SVG.

1. micrograd's classic expression: every value and every gradient in the boxes,
   and next to it the backward functions in the order the engine runs them.
2. A small MLP's loss: parameters named layers.0.weight, ..., grouped by module;
   larger tensors show their shape and dtype.
3. The same MLP's curvature along a direction v, vᵀHv, from a Hessian-vector
   product: the forward graph, the graph the first backward built (create_graph=True)
   and the graph the second one built, each derivative order in its own colour.

    python examples/graph_tour.py [OUT_DIR]        # default: runs/graph_tour

Every picture is drawn with fit=True: legible at 100% on a screen (1800 px
wide), left to right, else top to bottom, else folded with a note that says
so; draw_graph(..., fit=False) draws every node. Without Graphviz's `dot` the
DOT text is written instead (.dot files).
"""

import os
import sys

import tinygrad_opt as tg
from tinygrad_opt import Tensor, nn
from tinygrad_opt.draw import DotNotFoundError, render


def save(digraph, path):
    try:
        fit = digraph.stats.get("fit")
        size = f" ({fit['size'][0]:.0f}x{fit['size'][1]:.0f} px)" if fit else ""
        print("wrote", render(digraph, path) + size)
    except DotNotFoundError as error:
        print(error)
        print("wrote", render(digraph, os.path.splitext(path)[0] + ".dot"))


def micrograd_expression():
    """From micrograd's README: g = 24.7041, dg/da = 138.8338, dg/db = 645.5773."""
    a = Tensor(-4.0, dtype="float64", requires_grad=True, name="a")
    b = Tensor(2.0, dtype="float64", requires_grad=True, name="b")
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
    g.name = "g"
    return g


def mlp_loss():
    tg.manual_seed(0)
    model = nn.MLP([2, 4, 1], activation="tanh", dtype="float64")
    x = tg.randn(4, 2, dtype="float64")
    y = tg.randn(4, 1, dtype="float64")
    x.name, y.name = "x", "y"
    loss = nn.functional.mse_loss(model(x), y)
    loss.name = "loss"
    return model, loss


def curvature(model, loss):
    """vᵀHv for a random direction v, by two backward passes with create_graph=True."""
    params = list(model.parameters())
    v = [tg.randn(*p.shape, dtype="float64") for p in params]
    grads = tg.grad(loss, params, create_graph=True)  # order 1
    gv = sum((g * u).sum() for g, u in zip(grads, v))
    hv = tg.grad(gv, params, create_graph=True)  # order 2: the Hessian-vector product Hv
    vhv = sum((h * u).sum() for h, u in zip(hv, v))
    vhv.name = "vᵀHv"
    return vhv


def main(out_dir="runs/graph_tour"):
    os.makedirs(out_dir, exist_ok=True)
    g = micrograd_expression()
    print(f"micrograd: g = {g.item():.4f}")
    save(tg.draw_graph(g, legend=True, fit=True), os.path.join(out_dir, "micrograd.svg"))
    save(tg.draw_graph(g, mode="both", fit=True), os.path.join(out_dir, "micrograd_both.svg"))

    model, loss = mlp_loss()
    print(f"MLP 2-4-1: loss = {loss.item():.4f}")
    save(tg.draw_graph(loss, params=model, mode="both", fit=True),
         os.path.join(out_dir, "mlp_loss.svg"))

    vhv = curvature(model, loss)
    picture = tg.draw_graph(vhv, params=model, legend=True, fit=True)
    counts = ", ".join(f"order {k}: {n}" for k, n in picture.stats["ops_by_order"].items())
    print(f"vᵀHv = {vhv.item():.4f}; ops per derivative order: {counts}")
    save(picture, os.path.join(out_dir, "mlp_hvp.svg"))


if __name__ == "__main__":
    main(*sys.argv[1:2])
