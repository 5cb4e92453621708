"""The renamed modules (function.py -> op.py, graph.py -> draw.py) still import under their old
names, as the very same module objects, so code written against the old layout keeps working."""

import importlib

import tinygrad_opt as tg
from tinygrad_opt import draw, op


def test_function_is_op():
    assert importlib.import_module("tinygrad_opt.function") is op
    from tinygrad_opt.function import Function, Op  # the names users subclass
    assert Function is op.Function and Op is op.Op


def test_graph_is_draw():
    assert importlib.import_module("tinygrad_opt.graph") is draw
    assert tg.graph is draw and tg.draw is draw
    from tinygrad_opt.graph import render
    assert render is draw.render and tg.draw_graph is draw.draw_graph
