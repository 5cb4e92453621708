"""Pictures that can be read: ``draw_graph(..., fit=...)`` lays a graph out to
fit a screen at 100% (never by shrinking the text), and ``html_figure`` puts it
on a report page with the whole graph one click away."""

import base64
import re

import pytest

import tinygrad_opt as tg
from tinygrad_opt import Tensor, draw

pytestmark = pytest.mark.skipif(not draw.dot_available(), reason="needs Graphviz's dot")
SVG_SIZE = re.compile(r'<svg [^>]*?width="([\d.]+)pt" height="([\d.]+)pt"')
FONT = re.compile(r'font-size="([\d.]+)"')


def svg_of(digraph):
    return digraph.pipe(format="svg").decode("utf-8")


def svg_size_px(svg):
    """The <svg> element's size in CSS pixels (Graphviz writes points, 72 per inch)."""
    width, height = SVG_SIZE.search(svg).groups()
    return float(width) * 96 / 72, float(height) * 96 / 72


def assert_legible(svg):
    """Drawn at scale 1 (nothing shrunk to fit) with every text at least 9 pt."""
    assert "transform=\"scale(1 1)" in svg
    sizes = [float(f) for f in FONT.findall(svg)]
    assert sizes and min(sizes) >= 9


def curvature_graph():
    """vᵀHv of a 2-4-1 MLP: three derivative orders, 141 nodes."""
    tg.manual_seed(0)
    model = tg.nn.MLP([2, 4, 1], activation="tanh", dtype="float64")
    x, y = tg.randn(4, 2, dtype="float64"), tg.randn(4, 1, dtype="float64")
    loss = tg.nn.functional.mse_loss(model(x), y)
    params = list(model.parameters())
    v = [tg.randn(*p.shape, dtype="float64") for p in params]
    grads = tg.grad(loss, params, create_graph=True)
    hv = tg.grad(sum((g * u).sum() for g, u in zip(grads, v)), params, create_graph=True)
    return model, sum((h * u).sum() for h, u in zip(hv, v))


def test_a_large_graph_is_folded_to_the_screen_and_says_so():
    model, vhv = curvature_graph()
    whole = tg.draw_graph(vhv, params=model)
    assert svg_size_px(svg_of(whole))[0] > draw.SCREEN[0]  # too wide as it is
    fitted = tg.draw_graph(vhv, params=model, fit=True)
    svg = svg_of(fitted)
    width, height = svg_size_px(svg)
    assert width <= draw.SCREEN[0] and height <= draw.SCREEN[1]
    assert_legible(svg)
    stats = fitted.stats
    assert stats["fit"]["fits"] and stats["drawn"] < whole.stats["drawn"]
    assert f"{stats['drawn']} of {whole.stats['drawn']} nodes drawn" in fitted.source
    assert "fit=False (command line: --full) draws every node" in fitted.source
    assert svg.count('class="node"') == stats["drawn"]


def test_a_long_chain_turns_top_to_bottom_rather_than_folding():
    x = Tensor(0.5, dtype="float64", requires_grad=True, name="x")
    y = x
    for _ in range(14):
        y = y.tanh()
    assert svg_size_px(svg_of(tg.draw_graph(y)))[0] > draw.SCREEN[0]  # left to right: too wide
    fitted = tg.draw_graph(y, fit=True)
    assert fitted.stats["fit"]["rankdir"] == "TB" and fitted.stats["fit"]["max_nodes"] is None
    assert fitted.stats["drawn"] == 29 and "folded" not in fitted.source
    width, height = svg_size_px(svg_of(fitted))
    assert width <= draw.SCREEN[0] and height <= draw.SCREEN[1]


def test_a_graph_that_fits_is_left_as_it_is():
    a = Tensor(2.0, requires_grad=True, name="a")
    out = a * 3 + 1
    fitted = tg.draw_graph(out, fit=(800, 600))
    assert fitted.stats["fit"] == {**fitted.stats["fit"], "rankdir": "LR", "max_nodes": None}
    assert fitted.source == tg.draw_graph(out).source


def test_fit_arguments_are_checked():
    a = Tensor(2.0, requires_grad=True)
    with pytest.raises(ValueError, match="max_nodes or fit, not both"):
        tg.draw_graph(a * 2, fit=True, max_nodes=10)
    for bad in ("yes", (10, 10), (800,), (800.0, 600)):
        with pytest.raises(ValueError, match="fit must be"):
            tg.draw_graph(a * 2, fit=bad)


def images(html):
    """The SVG documents of the page's <img> data URIs, in order."""
    return [base64.b64decode(data).decode("utf-8")
            for data in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]


def test_the_report_figure_is_svg_with_the_whole_graph_one_click_away():
    model, vhv = curvature_graph()
    page = (1040, 1400)
    html = draw.html_figure(vhv, params=model, caption="vᵀHv <of> a 2-4-1 MLP", page=page)
    assert "<script" not in html and "<figcaption>vᵀHv &lt;of&gt; a 2-4-1 MLP" in html
    fitted, whole = images(html)
    width, height = svg_size_px(fitted)
    assert width <= page[0] and height <= page[1]
    assert_legible(fitted)
    assert f'width="{width:.0f}" height="{height:.0f}"' in html  # shown at 100%
    assert svg_size_px(whole)[0] > page[0]  # the whole graph: panned and zoomed, not shrunk
    assert_legible(whole)
    assert "<details>" in html and html.count('type="radio"') == len(draw.ZOOMS)
    assert f'style="--w: {svg_size_px(whole)[0]:.0f}px"' in html
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) == len(draw.ZOOMS)


def test_a_small_graph_needs_no_second_picture():
    a = Tensor(2.0, requires_grad=True, name="a")
    html = draw.html_figure(a.tanh() * a)
    assert len(images(html)) == 1 and "<details>" not in html


def test_without_dot_fit_draws_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH that hides dot
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(40):
        y = y.tanh()
    drawn = tg.draw_graph(y, fit=True)
    assert "fit" not in drawn.stats and drawn.stats["drawn"] == 81
    with pytest.raises(draw.DotNotFoundError):
        draw.html_figure(y)
