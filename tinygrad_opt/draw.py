"""Pictures of the compute graph: forward, backward and double backward.

``tg.draw_graph(root)`` returns a ``graphviz.Digraph``; its DOT text
(``.source``) needs nothing but Python, and rendering it (``.render(...)``,
``tg.draw.render(g, "graph.svg")``, or displaying it in Jupyter) needs
Graphviz's ``dot`` program. Without ``dot`` the user gets one sentence with the
install command, never graphviz's ExecutableNotFound traceback.

What the pictures show (the legend; ``legend=True`` also draws it):

- light blue record: a leaf that requires grad (a variable, a parameter);
- grey record or box: a constant (a tensor that needs no gradient, a number);
- white record: an intermediate tensor; green record: the output (``root``);
- small ellipse: an op (``Mul``, ``Tanh``, ``Linear``, ...);
- orange, purple, green, ... fill in a dashed cluster: nodes built by a
  ``create_graph=True`` backward, one colour and cluster per derivative order;
- grey rounded box ``#k MulBackward`` (mode="backward"): the k-th backward
  function the engine runs; each edge carries the gradient it hands on, and the
  light-blue leaves collect theirs;
- red dashed border "(freed)": freed by a backward through more than
  ``op_module.TRACE_NODES`` tensors, which keeps no trace;
- note "… N more nodes": what ``max_nodes`` (or ``fit``) left out; 3-D box: a
  folded module; grey line on top: what was folded, or kept as shape only.

Scalars and tiny tensors (at most ``TINY`` elements) are micrograd's records
``name | data | grad`` (fields stacked, so a node is as narrow as its longest
line); larger tensors show name, shape and dtype (and the norm of the
gradient). The gradient shown is ∂root/∂tensor, computed for the picture by a
backward pass that touches no ``.grad`` and frees nothing (our engine keeps no
gradients of intermediates); a non-scalar root has no such gradient, so only
the leaves' ``.grad`` appear.

After a backward: micrograd's workflow is ``L.backward(); draw_dot(L)``, and
it works here too. A backward without ``retain_graph=True`` must still free
the graph's arrays -- a training loop would otherwise hold every step's
activations -- so instead of keeping the graph alive, each node it frees keeps
a :class:`~tinygrad_opt.op.NodeTrace`: the op, the output's shape, dtype
and name, its inputs (the nodes that made them, the parameters themselves,
constants as shape and dtype), and, for tensors of at most 16 elements only,
copies of the values and of the gradients that flowed (into the output, and
out to each input). That is a few hundred bytes a node, never an activation,
and a backward through more than 10,000 tensors keeps none (such a picture
cannot be read; its ops are drawn "(freed)"). A trace goes when the output does: the graph of a training step vanishes once
its loss is overwritten. ``draw_graph`` reads these traces as it reads a live
graph, so the picture after ``backward()`` is the picture before it -- with
the gradients the engine really computed -- except that tensors larger than
16 elements show shape and dtype only (a note on the picture says so).

Pictures to read, not to shrink: ``fit=True`` (the ``graph`` command's
default, the demo report's figure) lays the graph out to fit a screen at 100%
-- left to right, else top to bottom (long chains), else folded, modules
first -- with a line on the picture saying what was folded and how to draw it
all; fonts are never scaled down. :func:`html_figure` embeds it in a report
page as inline SVG with the whole graph one click away (pan and zoom, no
script).

Node ids come from a counter in traversal order (breadth first from the root,
inputs in order), never from ``id()``: the same computation gives the same
DOT text in every run. Every walk is iterative, so a graph a million ops deep
works; ``max_nodes`` bounds the drawing, first by collapsing each module (named
from ``params``: ``layers.0.weight`` belongs to ``layers.0``) into one node,
then by folding the nodes furthest from the root into one summary node.
"""

import base64
import hashlib
import html
import math
import os
import re
import shutil
import uuid
from collections import deque
from typing import NamedTuple

import graphviz
import numpy as np

from . import op as op_module
from .autograd.walk import backward_order
from .tensor import Tensor, seed_gradient

__all__ = ["SCREEN", "TINY", "DotNotFoundError", "dot_available", "draw_graph", "html_figure",
           "picture_size", "render"]

TINY = 4  # show_data="auto": tensors with at most this many elements show their values
FONT_SIZE = "11"  # points, drawn at 100%: never scaled down to fit (see fit_screen)
# Beyond this many ops draw_graph does not compute the gradients for the labels
# (a full extra backward pass); the structure is still drawn.
GRADIENT_LIMIT = 100_000

INSTALL_HINT = ("install Graphviz with 'sudo apt-get install graphviz' (Debian/Ubuntu), "
                "'brew install graphviz' (macOS) or 'conda install graphviz'")

# Colours: torchviz's for leaves and outputs; one per derivative order.
LEAF, CONST, INTER, OUTPUT = "lightblue", "#e6e6e6", "white", "darkolivegreen1"
OP_FILL, BACKWARD_FILL, NOTE, FREED = "#f5f5f5", "#d9d9d9", "#525252", "#cb181d"
ORDER_FILL = ("#fdd0a2", "#dadaeb", "#c7e9c0", "#fcbba1")  # order 1, 2, 3, 4 (then again)
ORDER_LINE = ("#e6550d", "#756bb1", "#31a354", "#de2d26")
MODULE_LINE = "#6baed6"


def _order_fill(k):
    return ORDER_FILL[(k - 1) % len(ORDER_FILL)]


def _order_line(k):
    return ORDER_LINE[(k - 1) % len(ORDER_LINE)]


# ---------------------------------------------------------------------------
# Rendering: DOT always, pictures when `dot` is installed
# ---------------------------------------------------------------------------

class DotNotFoundError(graphviz.ExecutableNotFound):
    """Rendering needs Graphviz's ``dot`` program and it is not on PATH."""

    def __init__(self, engine="dot"):
        RuntimeError.__init__(
            self, f"Rendering the graph needs Graphviz's '{engine}' program, which is not on "
                  f"PATH: {INSTALL_HINT} (the DOT text is always in digraph.source).")


def dot_available(engine="dot"):
    """Whether Graphviz's layout program (``dot`` by default) is on PATH."""
    return shutil.which(engine) is not None


def _require(engine):
    if not dot_available(engine):
        raise DotNotFoundError(engine)


class Digraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` whose rendering explains how to install ``dot`` when
    it is missing, and that shows its DOT text in Jupyter instead of failing.

    ``stats`` counts what the picture holds (tensors, ops per derivative order,
    backward steps, nodes left out by ``max_nodes``).
    """

    stats = None

    def render(self, *args, **kwargs):
        _require(kwargs.get("engine") or self.engine)
        return super().render(*args, **kwargs)

    def pipe(self, *args, **kwargs):
        _require(kwargs.get("engine") or self.engine)
        return super().pipe(*args, **kwargs)

    def view(self, *args, **kwargs):
        _require(self.engine)
        return super().view(*args, **kwargs)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        if not dot_available(self.engine):
            return {"text/plain": str(DotNotFoundError(self.engine)) + "\n\n" + self.source}
        return super()._repr_mimebundle_(include, exclude, **kwargs)


_FORMATS = ("svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps", "json", "plain")


def render(digraph, path, format=None):
    """Write ``digraph`` to ``path`` and return the path.

    The format comes from ``format`` or the file's suffix (svg, png, pdf, ...;
    ``.dot``/``.gv`` write the DOT text and need no Graphviz); a path without a
    suffix gets ``.svg``. Unlike ``Digraph.render`` the file is exactly
    ``path`` (no extra source file), written to a temporary file and renamed
    into place. Raises :class:`DotNotFoundError` (one sentence with the install
    command) when ``dot`` is missing.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = (format or suffix or "svg").lower()
    if not suffix:
        path = f"{path}.{'dot' if fmt == 'gv' else fmt}"
    if fmt in ("dot", "gv"):
        data = digraph.source.encode("utf-8")
    elif fmt in _FORMATS:
        _require(digraph.engine)
        data = graphviz.Digraph.pipe(digraph, format=fmt)
    else:
        raise ValueError(f"render: unknown format {fmt!r}; use one of "
                         f"{', '.join(_FORMATS + ('dot', 'gv'))}.")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".graph-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        # os.open with 0o666 honours the umask, as a plain open() would
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ---------------------------------------------------------------------------
# Fitting a screen: a picture is read at 100%, so it is folded, never shrunk
# ---------------------------------------------------------------------------

# CSS pixels: as wide as a full-HD screen less the browser's frame, and at most
# two screens tall (a page is read by scrolling down, never sideways)
SCREEN = (1800, 2200)
PX_PER_INCH = 96       # CSS pixels per inch; Graphviz lays out in inches
FIT_START = 300        # larger graphs are not laid out whole: folding starts here
FIT_SMALLEST = 6       # below this many nodes folding stops (output, summary, modules)
FIT_TRIES = 8          # node budgets tried, each laid out in both directions


def picture_size(digraph):
    """(width, height) of the rendered picture in CSS pixels at 100%, margins
    included (needs dot): the size of its SVG, whose points are 1/72 inch."""
    _require(digraph.engine)
    svg = graphviz.Digraph.pipe(digraph, format="svg")
    width, height = re.search(rb'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    return float(width) * PX_PER_INCH / 72, float(height) * PX_PER_INCH / 72


def _overflow(size, screen):
    """How many times too large the picture is (at most 1: it fits)."""
    return max(size[0] / screen[0], size[1] / screen[1])


def _fit(root, screen, rankdir, options):
    """The most complete picture that fits ``screen``: the whole graph in
    ``rankdir``, else in the other direction (top to bottom suits long chains),
    else folded (modules first, then a summary node) to the largest node budget
    that fits in either direction, found by bisection. Fonts keep their size:
    nothing is scaled down."""
    directions = (rankdir, "TB" if rankdir in ("LR", "RL") else "LR")
    whole = draw_graph(root, rankdir=rankdir, **options)
    total = whole.stats["drawn"]
    if total <= FIT_START:
        best = _best_layout(root, None, directions, whole, screen, options)
        if best[0] <= 1:
            return best[1]
        too_many, budget = total, int(total / best[0] ** 1.5)
    else:
        too_many, budget = total, FIT_START
    fitting = None  # (budget, digraph) of the largest budget known to fit
    for _ in range(FIT_TRIES):
        budget = max(FIT_SMALLEST, min(budget, too_many - 1))
        ratio, digraph = _best_layout(root, budget, directions, whole, screen, options)
        if ratio <= 1:
            fitting = (budget, digraph)
        else:
            too_many, best = budget, (ratio, digraph)
        if fitting is not None:
            if too_many - fitting[0] <= max(2, too_many // 10):
                break
            budget = (fitting[0] + too_many) // 2
        elif budget == FIT_SMALLEST:
            break
        else:
            budget = int(budget / ratio ** 1.5)
    return fitting[1] if fitting is not None else best[1]


def _best_layout(root, budget, directions, whole, screen, options):
    """(overflow, digraph) of the picture drawn with ``budget`` nodes (None:
    all of them, the picture ``whole`` already drawn in the first direction):
    the first direction that fits, else the one that comes closest; a folded
    picture carries its note when measured."""
    best = None
    for direction in directions:
        if budget is None and direction == directions[0]:
            digraph = whole
        else:
            digraph = draw_graph(root, rankdir=direction, max_nodes=budget, **options)
        if budget is not None:
            _note_folding(digraph, screen, whole.stats["drawn"])
        size = picture_size(digraph)
        digraph.stats["fit"] = {"screen": screen, "size": size, "max_nodes": budget,
                                "fits": _overflow(size, screen) <= 1,
                                "rankdir": direction}
        if best is None or _overflow(size, screen) < best[0]:
            best = (_overflow(size, screen), digraph)
        if best[0] <= 1:
            break
    return best


def _note_folding(digraph, screen, total):
    stats = digraph.stats
    where = [f"{stats['modules_folded']} module(s) as 3-D boxes"] * bool(
        stats["modules_folded"]) + [f"{stats['hidden']} node(s) in the grey note"] * bool(
        stats["hidden"])
    _add_note(digraph, f"folded to fit a {screen[0]}×{screen[1]} px screen at 100%: "
                       f"{stats['drawn']} of {total} nodes drawn ({', '.join(where)}); "
                       "fit=False (command line: --full) draws every node")


# ---------------------------------------------------------------------------
# A report page: the fitted picture inline, the whole graph one click away
# ---------------------------------------------------------------------------

PAGE = (1040, 1400)  # the room on a report page (its column is 1100 px wide)
ZOOMS = (25, 50, 100, 150, 200)  # percent, offered under the whole graph

_FIGURE_STYLE = """<style>
.tg-graph .pan { overflow: auto; max-height: 85vh; border: 1px solid #ccd; margin-top: .4em; }
.tg-graph .pan img { max-width: none; border: 0; width: calc(var(--w) * var(--zoom, 1)); }
.tg-graph .zoom label { margin: 0 .9em 0 .2em; font-size: .9em; }
""" + "".join(f'.tg-graph input[value="{z}"]:checked ~ .pan {{ --zoom: {z / 100}; }}\n'
              for z in ZOOMS) + "</style>"


def _svg_image(digraph, alt, attrs=""):
    """An <img> holding the picture as an SVG data URI, at its size at 100%."""
    svg = graphviz.Digraph.pipe(digraph, format="svg")
    data = base64.b64encode(svg).decode("ascii")
    return (f'<img src="data:image/svg+xml;base64,{data}" alt="{html.escape(alt, quote=True)}"'
            f"{attrs}>")


def html_figure(root, *, caption="", page=PAGE, **options):
    """An HTML fragment that shows the graph of ``root`` on a report page,
    legible at 100% and needing no script: the picture fitted to ``page`` (see
    ``draw_graph``'s ``fit``) as an SVG image at its own size, with its
    caption; and, when that picture had to be folded, the whole graph one click
    away (a ``<details>`` box) in a frame that pans with its scroll bars and
    zooms from 25% to 200% (radio buttons and CSS). ``options`` go to
    :func:`draw_graph`. Needs Graphviz's ``dot``.
    """
    _require("dot")
    fitted = draw_graph(root, fit=page, **options)
    width, height = fitted.stats["fit"]["size"]
    parts = [_FIGURE_STYLE, '<figure class="tg-graph">',
             _svg_image(fitted, caption or "compute graph",
                        f' width="{width:.0f}" height="{height:.0f}"')]
    if caption:
        parts.append(f"<figcaption>{html.escape(caption)}</figcaption>")
    if fitted.stats["fit"]["max_nodes"] is not None:
        whole = draw_graph(root, rankdir=fitted.stats["fit"]["rankdir"], **options)
        width, height = picture_size(whole)
        uid = "g" + hashlib.sha1(whole.source.encode("utf-8")).hexdigest()[:8]
        # radio buttons, siblings of the frame, set its zoom through CSS alone
        choices = "".join(
            f'<input type="radio" name="{uid}" id="{uid}-z{z}" value="{z}"'
            f'{" checked" * (z == 100)}><label for="{uid}-z{z}">{z}%</label>' for z in ZOOMS)
        image = _svg_image(whole, "the whole graph", f' style="--w: {width:.0f}px"')
        parts.append(f"<details><summary>The whole graph: {whole.stats['drawn']} nodes, "
                     f"{width:.0f}×{height:.0f} px at 100%; scroll to pan, pick a zoom"
                     f'</summary><div class="zoom">{choices}<div class="pan">{image}</div></div>'
                     "</details>")
    parts.append("</figure>")
    return "".join(parts)


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------

def _esc(text):
    """Escape the characters that structure a record label."""
    text = str(text).replace("\\", "\\\\")
    for ch in '{}|<>"':
        text = text.replace(ch, "\\" + ch)
    return text


def _num(x):
    """micrograd's %.4f, switching to exponent notation for huge or tiny numbers."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (complex, np.complexfloating)):
        return f"{_num(x.real)}{'+' if x.imag >= 0 else '-'}{_num(abs(x.imag))}j"
    x = float(x) + 0.0  # + 0.0 turns -0.0 into 0.0
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4f}"
    return f"{x:.3e}"


def _values(array, limit=6):
    """Values as nested lists, or the first and last few when there are many."""
    if array.ndim == 0:
        return _num(array.item())
    if array.size <= limit:
        def nest(a):
            return "[" + ", ".join(nest(v) if a.ndim > 1 else _num(v) for v in a) + "]"
        return nest(array)
    flat = array.reshape(-1)
    head = ", ".join(_num(v) for v in flat[:3])
    tail = ", ".join(_num(v) for v in flat[-2:])
    return f"[{head}, …, {tail}]"


def _data(x):
    """The array behind a Tensor or a traced tensor; a gradient may be an array itself."""
    return x.data if isinstance(x, (Tensor, _Traced)) else x


def _host(x):
    """The values as a NumPy array (off the GPU if need be)."""
    if isinstance(x, Tensor):
        return x.numpy()
    data = _data(x)
    to_host = getattr(data, "get", None)  # a CuPy array
    return np.asarray(data if isinstance(data, np.ndarray) or to_host is None else to_host())


def _known(t):
    """Whether the values of ``t`` are at hand (a trace keeps only tiny ones)."""
    return not isinstance(_data(t), op_module.ArrayTrace)


def _shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _attr_text(attrs):
    """The op's non-tensor arguments, short (``dims=(0,)``), or ''."""
    if not isinstance(attrs, dict) or not attrs:
        return ""
    parts = []
    for key, value in attrs.items():
        text = repr(value) if not hasattr(value, "shape") else f"array{_shape(value.shape)}"
        parts.append(f"{key}={text if len(text) <= 16 else text[:15] + '…'}")
    text = ", ".join(parts)
    return text if len(text) <= 32 else text[:31] + "…"


# ---------------------------------------------------------------------------
# The graph model: items (future nodes) and edges, before any DOT is written
# ---------------------------------------------------------------------------

class _Item:
    """One future node. ``kind``: tensor, const, op, seed, bw, sink, module, summary.
    ``group``: the module it belongs to; ``cluster``: where it is drawn."""

    __slots__ = ("cluster", "group", "index", "kind", "members", "obj", "order", "section")

    def __init__(self, index, kind, obj, order, section):
        self.index, self.kind, self.obj, self.order = index, kind, obj, order
        self.section, self.group, self.cluster, self.members = section, None, None, None


class _Model:
    def __init__(self):
        self.items = []
        self.edges = []  # (src index, dst index, attrs dict or None)

    def add(self, kind, obj, order, section):
        item = _Item(len(self.items), kind, obj, order, section)
        self.items.append(item)
        return item.index


def _order(node):
    return getattr(node, "order", 0) or 0


# ---------------------------------------------------------------------------
# After a backward: the traces that freed nodes keep
# ---------------------------------------------------------------------------

class _Traced:
    """A tensor that a backward let go of, rebuilt from a trace: an
    intermediate from the trace of the node that made it, a constant from the
    ConstantTrace its consumer kept. It answers what the drawing asks a Tensor
    (``_node``, ``data``, ``shape``, ``dtype``, ``name``, ``requires_grad``);
    ``data`` is a copy of the values of a tiny tensor and an ArrayTrace (shape
    and dtype only) for a larger one."""

    __slots__ = ("_node", "data", "dtype", "grad", "name", "requires_grad", "shape")

    def __init__(self, node=None, constant=None):
        kept = node.trace if node is not None else constant
        self._node, self.requires_grad, self.grad = node, node is not None, None
        self.shape, self.dtype, self.name = kept.shape, kept.dtype, kept.name
        values = kept.values  # None: only the shape and dtype were kept
        self.data = values if values is not None else op_module.ArrayTrace(kept.shape, kept.dtype)


class _Vertices:
    """The tensors of one drawing, each drawn once: a freed node's inputs are
    traces, and two traces of one tensor (or a trace and the live tensor) must
    become the same vertex. An intermediate is known by the node that made it,
    a leaf by itself, a constant by its id at trace time."""

    def __init__(self):
        self.by_key = {}

    def inputs(self, node):
        """The node's inputs: live ones as given, freed ones rebuilt from its trace."""
        if node.inputs is not None:
            entries = node.inputs
        else:
            entries = () if _untraced(node) else node.trace.inputs
        return [self.vertex(t) if isinstance(t, (Tensor, op_module.Node,
                                                 op_module.ConstantTrace)) else t
                for t in entries]

    def vertex(self, t):
        if isinstance(t, Tensor):
            key = t._node if t._node is not None else t
        elif isinstance(t, op_module.Node):
            key = t
        else:
            key = ("constant", t.key)
        found = self.by_key.get(key)
        if found is None:
            if isinstance(t, Tensor):
                found = t
            elif isinstance(t, op_module.Node):
                found = _Traced(node=t)
            else:
                found = _Traced(constant=t)
            self.by_key[key] = found
        return found


def _traced(node):
    """Whether a backward without retain_graph went through ``node`` and left
    a trace: the gradients that backward handed on."""
    return node is not None and node.trace is not None and node.trace is not op_module.UNTRACED


def _untraced(node):
    """Whether a backward through a graph too large to trace freed ``node``:
    what its inputs were is gone."""
    return node.inputs is None and node.trace is op_module.UNTRACED


def _walk_forward(model, root, vertices):
    """Breadth first from the root: one item per tensor, op and raw constant."""
    root = vertices.vertex(root)
    tensor_item = {root: model.add("tensor", root, None, "forward")}
    op_item = {}      # output tensor -> its op's item
    consumers = {}    # tensor item -> op items consuming it
    queue = deque([root])
    while queue:
        t = queue.popleft()
        node = t._node
        if node is None:
            continue
        op = model.add("op", t, _order(node), "forward")
        op_item[t] = op
        model.items[tensor_item[t]].order = _order(node)
        model.edges.append((op, tensor_item[t], None))
        for inp in vertices.inputs(node):
            if inp is None:
                continue
            if isinstance(inp, (Tensor, _Traced)):
                j = tensor_item.get(inp)
                if j is None:
                    j = tensor_item[inp] = model.add("tensor", inp, None, "forward")
                    queue.append(inp)
            else:
                j = model.add("const", inp, None, "forward")
            consumers.setdefault(j, []).append(op)
            model.edges.append((j, op, None))
    return tensor_item, op_item, consumers


_UNKNOWN = object()  # "a gradient arrives here" when its value is not known


def _add(a, b):
    return _UNKNOWN if a is _UNKNOWN or b is _UNKNOWN else a + b


def _handed(t, g, node, inputs, values, recorded):
    """What ``t``'s backward hands to each input: computed by the op's vjp on a
    live graph (``values``), read from the trace of a freed node (``recorded``:
    the root was freed by the backward being drawn), else unknown."""
    needs = node.needs_input_grad
    if recorded and _traced(node):
        kept = node.trace.input_grads or (None,) * len(needs)
        return [None if k is None else _UNKNOWN if k is op_module.SHAPE_ONLY else k
                for k in kept]
    if not values or node.inputs is None or g is _UNKNOWN or not isinstance(t, Tensor):
        return [_UNKNOWN] * len(needs)
    grads = node.op.vjp(node, g, t)
    return [gi.sum_to(inp.data.shape) if gi is not None and needed
            and gi.data.shape != inp.data.shape else gi
            for inp, needed, gi in zip(inputs, needs, grads)]


def _simulate_backward(root, values, vertices=None):
    """Replay the engine's backward on the root, in the order of the walk the
    engine itself takes (``autograd/walk.py``), changing nothing: no .grad is
    set, no node is freed.

    Returns (steps, visits, edge_grads, totals): the tensors whose backward
    function runs, in the engine's order; the same interleaved with the leaves
    that receive a gradient; the gradient each backward hands to each input
    ((tensor, input position) -> gradient); the total gradient of each tensor.
    On a live graph the gradients are computed (Tensors) when ``values`` is
    True; on a graph a backward freed they are the ones that backward handed
    on, as the traces kept them (arrays; larger ones unknown).
    """
    vertices = vertices or _Vertices()
    root = vertices.vertex(root)
    if not root.requires_grad:  # nothing to differentiate
        return [], [], {}, {}
    recorded = _traced(root._node)
    if recorded:
        kept = root._node.trace.grad
        seed = _UNKNOWN if kept is None or kept is op_module.SHAPE_ONLY else kept
    elif values:
        seed = seed_gradient("draw_graph", root, None)
    else:
        seed = _UNKNOWN
    grads, totals, edge_grads = {root: seed}, {}, {}
    steps, visits = [], []
    for t in backward_order([root], inputs_of=lambda t: vertices.inputs(t._node)):  # the engine's very order
        g = grads.pop(t, None)
        if g is None:  # no gradient reached it
            continue
        totals[t] = g
        visits.append(t)
        node = t._node
        if node is None:
            continue
        steps.append(t)
        inputs = vertices.inputs(node)
        handed = _handed(t, g, node, inputs, values, recorded)
        for i, (inp, needed) in enumerate(zip(inputs, node.needs_input_grad)):
            if needed and handed[i] is not None:
                gi = handed[i]
                edge_grads[(t, i)] = gi
                grads[inp] = _add(grads[inp], gi) if inp in grads else gi
    return steps, visits, edge_grads, totals


def _backward_info(root, want_values, n_ops, vertices):
    """The engine's order and, when they are known, the gradients: computed
    for a scalar live root, read from the traces for a root a backward freed."""
    if _traced(root._node):
        return _simulate_backward(root, False, vertices), True
    values = (want_values and root.requires_grad and root.data.size == 1
              and n_ops <= GRADIENT_LIMIT)
    if values:
        try:
            with op_module.no_grad(), np.errstate(all="ignore"):
                return _simulate_backward(root, True, vertices), True
        except (ArithmeticError, ValueError, TypeError, RuntimeError, IndexError,
                AttributeError):  # a backward that cannot run here: draw the structure
            pass
    return _simulate_backward(root, False, vertices), False


# ---------------------------------------------------------------------------
# Modules: parameters named `layers.0.weight` belong to the module `layers.0`
# ---------------------------------------------------------------------------

def _param_names(params):
    """{tensor: name} from a dict, a Module (named_parameters) or (name, tensor) pairs."""
    if params is None:
        return {}, {}
    kinds = {}
    if hasattr(params, "named_parameters"):
        if hasattr(params, "named_modules"):
            kinds = {name: type(m).__name__ for name, m in params.named_modules() if name}
        pairs = list(params.named_parameters())
    elif isinstance(params, dict):
        pairs = list(params.items())
    else:
        try:
            pairs = [(str(name), t) for name, t in params]
        except (TypeError, ValueError):
            raise TypeError("draw_graph: params must be a dict {name: tensor}, a Module or "
                            f"(name, tensor) pairs; got {type(params).__name__}.") from None
    names = {}
    for name, t in pairs:
        if isinstance(t, Tensor) and t not in names:
            names[t] = str(name)
    return names, kinds


def _assign_modules(model, names, tensor_item, op_item, consumers, vertices):
    """Group order-0 ops into the module whose parameters they use: an op that
    consumes a parameter of M, or lies downstream of M's parameters and upstream
    of an op that consumes one (x Wᵀ between W and + b), belongs to M."""
    items = model.items
    modules = {}
    for t, name in names.items():
        if t in tensor_item and "." in name:
            modules.setdefault(name.rsplit(".", 1)[0], []).append(tensor_item[t])
    producer = {tensor_item[t]: op for t, op in op_item.items()}
    out_of = {op: tensor_item[t] for t, op in op_item.items()}

    def forward_ops(j):
        return [op for op in consumers.get(j, ()) if items[op].order == 0]

    for module, params in modules.items():
        direct = {op for j in params for op in forward_ops(j)}
        down, stack = set(), list(params)
        while stack:
            for op in forward_ops(stack.pop()):
                if op not in down:
                    down.add(op)
                    stack.append(out_of[op])
        up, stack = set(), list(direct)
        while stack:
            op = stack.pop()
            t = items[op].obj
            for inp in vertices.inputs(t._node):
                j = tensor_item.get(inp) if isinstance(inp, (Tensor, _Traced)) else None
                k = producer.get(j)
                if k is not None and items[k].order == 0 and k not in up:
                    up.add(k)
                    stack.append(k)
        for op in sorted(direct | (down & up)):
            if items[op].group is None:
                items[op].group = module
                items[out_of[op]].group = module
        for j in params:
            if items[j].group is None:
                items[j].group = module
    # numbers go with their consumers when these agree (a batch X stays outside)
    for j, ops in consumers.items():
        item = items[j]
        if item.group is None and item.kind == "const":
            groups = {items[op].group for op in ops}
            if len(groups) == 1:
                item.group = groups.pop()


def _forward_clusters(model, consumers):
    """Order-k nodes go to the cluster of order k, order-0 ones to their module;
    a constant follows its consumers when they all sit in one cluster."""
    items = model.items
    for item in items:
        if item.kind == "op" or (item.kind == "tensor" and item.obj._node is not None):
            if item.order:
                item.cluster = ("order", item.order)
            elif item.group is not None:
                item.cluster = ("module", item.group)
        elif item.kind == "tensor" and item.obj.requires_grad:
            item.cluster = ("module", item.group) if item.group is not None else None
    for j, ops in consumers.items():
        item = items[j]
        if item.kind == "const" or (item.obj._node is None and not item.obj.requires_grad):
            found = {items[op].cluster for op in ops}
            if len(found) == 1:
                cluster = found.pop()
                # a number goes anywhere; a constant tensor (a batch X, a target, a
                # backward's seed or mask) only into the cluster of a derivative order
                if item.kind == "const" or (cluster is not None and cluster[0] == "order"):
                    item.cluster = cluster


def _add_backward(model, ctx, steps, visits, edge_grads, group_of, vertices):
    """The backward section: a seed, one node per backward function in the
    engine's order (and per leaf that collects a gradient), and edges along
    which the gradients flow, labelled with them."""
    root = ctx.root
    seed = model.add("seed", root, None, "backward")
    item_of = {}
    for t in visits:
        node = t._node
        kind = "sink" if node is None else "bw"
        j = model.add(kind, t, None if node is None else _order(node), "backward")
        item = model.items[j]
        item.group = group_of.get(t)
        if item.order:
            item.cluster = ("order", item.order)
        elif item.group is not None:
            item.cluster = ("module", item.group)
        item_of[t] = j
    ctx.step_of = {t: k for k, t in enumerate(steps, 1)}
    if root in item_of:
        model.edges.append((seed, item_of[root], _flow_attrs(ctx, ctx.seed_gradient, root)))
    for t in steps:
        node = t._node
        for i, (inp, needed) in enumerate(zip(vertices.inputs(node), node.needs_input_grad)):
            if needed and inp in item_of:
                g = edge_grads.get((t, i))
                attrs = _flow_attrs(ctx, g, inp)
                if g is None:
                    attrs.update(style="dashed", label="None")
                model.edges.append((item_of[t], item_of[inp], attrs))


def _flow_attrs(ctx, g, target):
    """A backward edge: drawn against the layout (dir=back) so that the backward
    graph lines up with the forward one; labelled with the gradient it carries."""
    attrs = {"_flip": True, "fontsize": "9"}
    if ctx.have_values and g is not None and g is not _UNKNOWN:
        data = _data(g)
        attrs["label"] = _values(_host(g)) if data.size <= TINY else _shape(data.shape)
    elif target.data.size > TINY or not ctx.have_values:
        attrs["label"] = _shape(target.shape) if target.data.size > 1 else ""
    if not attrs.get("label"):
        attrs.pop("label", None)
    return attrs


def draw_graph(root, *, params=None, mode="forward", show_data="auto", show_grad=True,
               max_nodes=None, rankdir="LR", legend=False, fit=False):
    """Draw the compute graph that produced ``root``; returns a ``graphviz.Digraph``.

    Args:
        root: the Tensor to draw (a loss, a gradient from ``tg.grad(...,
            create_graph=True)``, a Hessian-vector product, ...).
        params: names for the leaves: a dict ``{name: tensor}``, a Module
            (``layers.0.weight``; its modules become clusters) or (name, tensor)
            pairs. A tensor's own ``.name`` is used otherwise.
        mode: "forward" (tensors and ops), "backward" (the backward functions
            numbered in the order the engine runs them, each edge labelled with
            the gradient it hands on, the leaves collecting theirs) or "both"
            (the two, each in its own cluster).
        show_data: "auto" (values for tensors of at most ``TINY`` elements,
            shape and dtype for larger ones), True (values for all, abbreviated)
            or False (shape and dtype only).
        show_grad: show ∂root/∂tensor in the labels: computed for the picture
            (nothing is changed) when ``root`` is a scalar; after a backward,
            the gradient that flowed through each tiny tensor; else the
            leaves' ``.grad``.
        max_nodes: draw at most this many nodes: modules collapse to one node
            each, then what lies furthest from the root becomes one summary node.
        rankdir: "LR" (inputs on the left, as micrograd), "TB", "RL" or "BT".
        legend: also draw the colour legend (one node).
        fit: False (draw every node), True (fit :data:`SCREEN`, 1800×2200 px)
            or a (width, height) in pixels: the picture is laid out in
            ``rankdir``, then in the other direction, then folded (modules
            first) until it fits at 100%, with a note saying how to draw it
            all; ``max_nodes`` must then be None. Needs Graphviz's ``dot`` (to
            measure); without it ``fit`` has no effect.

    The nodes built by a ``create_graph=True`` backward get their own colour and
    a cluster per derivative order. The DOT text is ``.source``; render with
    ``.render(...)`` or :func:`render` (both need Graphviz's ``dot``).

    Draw before or after ``backward()``: a backward without
    ``retain_graph=True`` frees the graph's arrays, but each node keeps a trace
    (op_module.NodeTrace) with its structure, and the values and gradient of
    every tensor of at most 16 elements; larger tensors then show their shape
    and dtype only (leaves keep their ``.grad``).

    Example::

        a = tg.tensor(2.0, requires_grad=True, name="a")
        b = tg.tensor(-3.0, requires_grad=True, name="b")
        L = a * b + a.tanh()
        tg.draw_graph(L).render("L", format="svg")
    """
    _check_arguments(root, mode, show_data, rankdir, max_nodes, fit)
    if fit is not False and dot_available():  # without dot nothing can be measured: draw all
        return _fit(root, _screen(fit), rankdir, {
            "params": params, "mode": mode, "show_data": show_data,
            "show_grad": show_grad, "legend": legend})
    return _draw(root, params, mode, show_data, show_grad, max_nodes, rankdir, legend)


def _check_arguments(root, mode, show_data, rankdir, max_nodes, fit):
    """Refuse, in one sentence, an argument of draw_graph it cannot draw with."""
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph: root must be a Tensor, got {type(root).__name__}.")
    if mode not in ("forward", "backward", "both"):
        raise ValueError(f"draw_graph: mode must be 'forward', 'backward' or 'both', got "
                         f"{mode!r}.")
    if not (show_data == "auto" or show_data is True or show_data is False):
        raise ValueError(f"draw_graph: show_data must be 'auto', True or False, got "
                         f"{show_data!r}.")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_graph: rankdir must be 'LR', 'TB', 'RL' or 'BT', got "
                         f"{rankdir!r}.")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(
            max_nodes, (int, np.integer)) or max_nodes < 2):
        raise ValueError(f"draw_graph: max_nodes must be an integer >= 2 (room for the output "
                         f"and a summary node), got {max_nodes!r}.")
    if fit is not False:
        _screen(fit)  # a fit that is no screen size is refused even where dot is missing
        if max_nodes is not None:
            raise ValueError("draw_graph: fit chooses how many nodes to draw; pass max_nodes "
                             "or fit, not both.")


def _draw(root, params, mode, show_data, show_grad, max_nodes, rankdir, legend):
    """draw_graph with every node, or at most ``max_nodes``: the forward
    section as walked from the root, the backward one as the engine would run
    it, then the DOT text of the sections ``mode`` asks for."""
    names, kinds = _param_names(params)
    forward = _collect_forward(root, names)
    want_values = bool(show_grad) or mode != "forward"
    (steps, visits, edge_grads, totals), have_values = _backward_info(
        root, want_values, len(forward.op_item), forward.vertices)
    ctx = _Context(root, names, kinds, show_data, show_grad, have_values, totals, rankdir)

    model = forward.model if mode != "backward" else _Model()
    if mode != "forward":
        first = len(model.items)  # the backward's seed
        _add_backward(model, ctx, steps, visits, edge_grads, _module_of(forward),
                      forward.vertices)
        if mode == "both":  # the output leads on to the backward that starts from it
            model.edges.append((forward.tensor_item[root], first,
                                {"style": "dotted", "label": "backward()", "fontsize": "9"}))
    return _emit(model, ctx, mode, max_nodes, rankdir, legend, _census(forward, steps))


class _Forward(NamedTuple):
    """The forward section as walked, with the maps the later steps read."""

    model: _Model
    vertices: _Vertices
    tensor_item: dict  # tensor -> its item
    op_item: dict      # output tensor -> its op's item
    consumers: dict    # tensor item -> op items consuming it


def _collect_forward(root, names):
    """Every tensor, op and raw constant behind ``root``, each order-0 op in
    the module whose parameters it uses, each node in the cluster it is drawn in."""
    model, vertices = _Model(), _Vertices()
    tensor_item, op_item, consumers = _walk_forward(model, root, vertices)
    _assign_modules(model, names, tensor_item, op_item, consumers, vertices)
    _forward_clusters(model, consumers)
    return _Forward(model, vertices, tensor_item, op_item, consumers)


def _module_of(forward):
    """{tensor: its module or None} for the tensors whose backward functions
    (intermediates) or gradients (leaves) the backward section draws."""
    items = forward.model.items
    group_of = {t: items[j].group for t, j in forward.op_item.items()}
    group_of.update((t, items[j].group) for t, j in forward.tensor_item.items()
                    if t._node is None)
    return group_of


def _census(forward, steps):
    """What the graph holds, before any folding: the start of ``Digraph.stats``."""
    items, op_item = forward.model.items, forward.op_item
    return {
        "tensors": sum(1 for i in items if i.kind == "tensor"),
        "constants": sum(1 for i in items if i.kind == "const"),
        "ops": len(op_item),
        "ops_by_order": _count_orders(items),
        "backward_steps": len(steps),
        "traced": sum(1 for t in op_item if _traced(t._node)),
        "shape_only": sum(1 for t in forward.tensor_item if not _known(t)),
        "freed": sum(1 for t in op_item if _untraced(t._node)),
    }


def _screen(fit):
    """``fit`` as a (width, height) in pixels."""
    if fit is True:
        return SCREEN
    if (isinstance(fit, (tuple, list)) and len(fit) == 2
            and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 100
                    for n in fit)):
        return (int(fit[0]), int(fit[1]))
    raise ValueError(f"draw_graph: fit must be False, True or (width, height) in pixels, each "
                     f"at least 100, got {fit!r}.")


def _count_orders(items):
    counts = {}
    for item in items:
        if item.kind == "op":
            counts[item.order] = counts.get(item.order, 0) + 1
    return dict(sorted(counts.items()))


class _Context:
    """What labels need: the root, names, the display switches, the gradients."""

    def __init__(self, root, names, kinds, show_data, show_grad, have_values, totals,
                 rankdir):
        self.root, self.names, self.kinds, self.rankdir = root, names, kinds, rankdir
        self.show_data, self.show_grad = show_data, show_grad
        self.have_values, self.totals = have_values, totals
        self.recorded = _traced(root._node)
        self.step_of = {}
        seed = totals.get(root)
        self.seed_gradient = seed if have_values and seed is not _UNKNOWN else None

    def name(self, t):
        return self.names.get(t) or t.name

    def gradient(self, t):
        """∂root/∂t when known (computed for the picture, or kept by the traces
        of the backward that freed the graph), else a leaf's .grad, else None."""
        if self.have_values:
            g = self.totals.get(t)
            if g is not None and g is not _UNKNOWN:
                return g
            if not self.recorded:
                return None
        return t.grad if t._node is None else None

    def record(self, fields):
        """Record fields stacked one above the other, whatever the layout
        direction: a node as narrow as its longest line keeps wide graphs legible
        (braces turn the fields across, which a top-bottom layout needs)."""
        text = " | ".join(fields)
        return text if self.rankdir in ("LR", "RL") else "{ " + text + " }"

    def shows_values(self, t):
        return _known(t) and (self.show_data is True
                              or (self.show_data == "auto" and t.data.size <= TINY))


# ---------------------------------------------------------------------------
# Folding (max_nodes) and writing the DOT text
# ---------------------------------------------------------------------------

def _fold(model, indices, budget, keep_first):
    """Bring one section down to ``budget`` nodes. Returns (visible, rep): the
    visible item indices in order and a map from hidden items to the node that
    stands for them. Modules collapse first; then everything past the first
    budget - 1 nodes becomes one summary node. ``keep_first`` items (the output)
    never collapse into a module."""
    items, rep, visible = model.items, {}, list(indices)
    if budget is None or len(visible) <= budget:
        return visible, rep
    groups = {}
    for i in visible[keep_first:]:
        if items[i].group is not None and items[i].kind not in ("seed", "summary"):
            groups.setdefault(items[i].group, []).append(i)
    if groups:
        section = items[visible[0]].section
        first_member = {}
        for group, members in groups.items():
            m = model.add("module", group, None, section)
            items[m].members = members
            first_member[members[0]] = m
            for i in members:
                rep[i] = m
        visible = [first_member.get(i, i) for i in visible if i not in rep or i in first_member]
    if len(visible) > budget:
        cut = max(budget - 1, 0)
        hidden = visible[cut:]
        s = model.add("summary", None, None, items[visible[0]].section)
        members = []
        for v in hidden:
            members.extend(items[v].members or [v])
            rep[v] = s
        items[s].members = members
        for i, r in list(rep.items()):
            if r in hidden:
                rep[i] = s
        visible = visible[:cut] + [s]
    return visible, rep


def _emit(model, ctx, mode, max_nodes, rankdir, legend, stats):
    """The Digraph of the sections ``mode`` asks for (each in its own cluster
    when there are two), folded to ``max_nodes``, with the legend if asked;
    ``stats`` gains what the folding left."""
    sections = [s for s in ("forward", "backward") if mode in (s, "both")]
    visible, rep = _fold_sections(model, sections, max_nodes, legend, stats)
    dot = _new_digraph(rankdir, stats)
    for s in sections:
        if len(sections) == 2:
            title = "forward" if s == "forward" else "backward (steps in the engine's order)"
            with dot.subgraph(name=f"cluster_{s}") as sub:
                sub.attr(label=title, style="rounded", color="#969696")
                _emit_section(sub, model, ctx, visible[s], s)
        else:
            _emit_section(dot, model, ctx, visible[s], s)
    if legend:
        dot.node("legend", _legend_label(stats), shape="plaintext")
    _emit_edges(dot, model, rep)
    return dot


def _fold_sections(model, sections, max_nodes, legend, stats):
    """Fold each section to its share of ``max_nodes`` (the legend takes one,
    the forward section the odd one). Returns (visible, rep): the items drawn,
    per section, and the node each hidden item is drawn as; ``stats`` gains
    how many nodes are drawn, hidden in a summary and folded modules."""
    items = model.items
    budgets = dict.fromkeys(sections)
    if max_nodes is not None:
        room = max_nodes - (1 if legend else 0)
        if len(sections) == 2:
            budgets = {"forward": max(room - room // 2, 1), "backward": max(room // 2, 1)}
        else:
            budgets = {sections[0]: max(room, 1)}
    # listed before any folding adds its module and summary nodes
    by_section = {s: [i.index for i in items if i.section == s] for s in sections}
    visible, rep = {}, {}
    for s in sections:
        visible[s], r = _fold(model, by_section[s], budgets[s], keep_first=2)
        rep.update(r)
    drawn = [items[v] for s in sections for v in visible[s]]
    stats["hidden"] = sum(len(item.members) for item in drawn if item.kind == "summary")
    stats["drawn"] = len(drawn) + (1 if legend else 0)
    stats["modules_folded"] = sum(item.kind == "module" for item in drawn)
    return visible, rep


def _new_digraph(rankdir, stats):
    """An empty Digraph carrying ``stats``, with a note on the nodes a
    backward freed or kept as shape only."""
    # ranks and neighbours a little closer than Graphviz's default: the same
    # text on a smaller picture
    dot = Digraph(graph_attr={"rankdir": rankdir, "ranksep": "0.3", "nodesep": "0.18"},
                  node_attr={"fontsize": FONT_SIZE, "height": "0.3"},
                  edge_attr={"fontsize": "9", "arrowsize": "0.7"})
    dot.stats, dot.notes = stats, []
    if stats["freed"]:
        _add_note(dot, f"{stats['freed']} op(s) were freed by a backward through more than "
                       f"{op_module.TRACE_NODES} tensors, which keeps no trace: draw before "
                       "backward() or pass retain_graph=True to it")
    if stats["shape_only"]:
        _add_note(dot, f"drawn after backward(), which kept shape and dtype only of the "
                       f"{stats['shape_only']} tensor(s) of more than {op_module.TRACE_VALUES} "
                       "elements")
    return dot


def _emit_edges(dot, model, rep):
    """The model's edges between the nodes drawn: an edge into or out of a
    folded node is redirected to it, drawn once and unlabelled; one inside a
    folded node is dropped."""
    items = model.items
    seen = set()
    for a, b, attrs in model.edges:
        ra, rb = rep.get(a, a), rep.get(b, b)
        if ra == rb:
            continue
        attrs = dict(attrs or {})
        if (ra, rb) != (a, b):  # an edge into or out of a folded node: once, unlabelled
            if (ra, rb) in seen:
                continue
            seen.add((ra, rb))
            attrs.pop("label", None)
        if attrs.pop("_flip", False):
            dot.edge(_id(items[rb]), _id(items[ra]), dir="back", **attrs)
        else:
            dot.edge(_id(items[ra]), _id(items[rb]), **attrs)


def _id(item):
    return f"n{item.index}"


def _add_note(dot, text):
    """A grey line above the picture; several notes stack, one per line."""
    dot.notes.append(text)
    dot.graph_attr.update(label="\\n".join(dot.notes), labelloc="t", fontcolor=NOTE,
                          fontsize="10")


def _emit_section(graph, model, ctx, visible, section):
    items = model.items
    clusters = {}
    loose = []
    for i in visible:
        key = items[i].cluster if items[i].kind not in ("module", "summary") else None
        (clusters.setdefault(key, []) if key is not None else loose).append(i)
    for n, (key, members) in enumerate(clusters.items()):
        kind, value = key
        name = f"cluster_{section}_order{value}" if kind == "order" else \
            f"cluster_{section}_module{n}"
        with graph.subgraph(name=name) as sub:
            if kind == "order":
                sub.attr(label=f"order {value}: built by a create_graph=True backward",
                         style="rounded,dashed", color=_order_line(value),
                         fontcolor=_order_line(value))
            else:
                kind_name = ctx.kinds.get(value)
                sub.attr(label=f"{value} ({kind_name})" if kind_name else value,
                         style="rounded", color=MODULE_LINE, fontcolor=MODULE_LINE)
            for i in members:
                _emit_node(sub, items[i], ctx)
    for i in loose:
        _emit_node(graph, items[i], ctx)


def _emit_node(graph, item, ctx):
    kind, t = item.kind, item.obj
    if kind == "tensor":
        graph.node(_id(item), _tensor_label(t, ctx), shape="record", style="filled",
                   fillcolor=_tensor_fill(t, ctx), tooltip=_tooltip(t, ctx))
    elif kind == "const":
        graph.node(_id(item), _const_label(t), shape="box", style="filled", fillcolor=CONST,
                   fontsize="10")
    elif kind == "op":
        node = t._node
        label = node.name
        extra = _attr_text(node.attrs)
        if extra:
            label += "\\n" + extra
        attrs = {"shape": "ellipse", "style": "filled", "fontsize": "10",
                 "fillcolor": _order_fill(item.order) if item.order else OP_FILL,
                 "tooltip": f"{node.name}, derivative order {item.order}"}
        if _untraced(node):
            label += "\\n(freed)"
            attrs.update(style="filled,dashed", color=FREED)
        graph.node(_id(item), label, **attrs)
    elif kind == "bw":
        node = t._node
        attrs = {"shape": "box", "style": "filled,rounded", "fontsize": "10",
                 "fillcolor": _order_fill(item.order) if item.order else BACKWARD_FILL,
                 "tooltip": f"step {ctx.step_of.get(t)} of the backward pass"}
        graph.node(_id(item), f"#{ctx.step_of.get(t)} {node.name}Backward", **attrs)
    elif kind == "sink":
        graph.node(_id(item), _sink_label(t, ctx), shape="record", style="filled",
                   fillcolor=LEAF if t is not ctx.root else OUTPUT, tooltip=_tooltip(t, ctx))
    elif kind == "seed":
        g = ctx.seed_gradient
        value = _values(_host(g)) if g is not None else _shape(t.shape)
        if not t.requires_grad:
            value = "none: the output does not require grad"
        graph.node(_id(item), ctx.record(["grad of output", _esc(value)]), shape="record",
                   style="filled", fillcolor=OUTPUT)
    elif kind == "module":
        graph.node(_id(item), _module_label(item, ctx, item.members), shape="box3d",
                   style="filled", fillcolor="#deebf7", color=MODULE_LINE)
    elif kind == "summary":
        graph.node(_id(item), f"… {len(item.members)} more nodes\\nraise max_nodes to draw "
                              "them", shape="note", style="filled", fillcolor="#f0f0f0",
                   fontsize="10")


def _tensor_fill(t, ctx):
    if t is ctx.root:
        return OUTPUT
    if t._node is None:
        return LEAF if t.requires_grad else CONST
    order = _order(t._node)
    return _order_fill(order) if order else INTER


def _tensor_label(t, ctx):
    fields = []
    name = ctx.name(t)
    if name:
        fields.append(_esc(name))
    shows = ctx.shows_values(t)
    if shows:
        fields.append("data " + _esc(_values(_host(t))))
        if t.data.size > TINY:
            fields.append(_shape(t.shape))
    else:
        fields += [_shape(t.shape), str(t.dtype)]
    if ctx.show_grad and t.requires_grad:
        g = ctx.gradient(t)
        if g is not None:
            fields.append(_grad_text(g, shows))
    return ctx.record(fields)


def _grad_text(g, shows):
    if shows:
        return "grad " + _esc(_values(_host(g)))
    return "‖grad‖ " + _num(float(np.linalg.norm(_host(g).astype(np.float64).ravel())))


def _sink_label(t, ctx):
    fields = [_esc(ctx.name(t) or "leaf")]
    g = ctx.gradient(t) if ctx.have_values else None
    shows = t.data.size <= TINY
    if not shows:
        fields.append(_shape(t.shape))
    fields.append(_grad_text(g, shows) if g is not None else "→ .grad")
    return ctx.record(fields)


def _const_label(value):
    if isinstance(value, (int, float, complex, np.number, bool)):
        return _num(value)
    if hasattr(value, "shape"):
        array = np.asarray(value) if isinstance(value, np.ndarray) else None
        if array is not None and array.size <= TINY:
            return _values(array)
        return f"array {_shape(value.shape)}"
    text = repr(value)
    return text if len(text) <= 24 else text[:23] + "…"


def _tooltip(t, ctx):
    name = ctx.name(t) or "tensor"
    grad = "requires grad" if t.requires_grad else "no grad"
    return f"{name}: shape {_shape(t.shape)}, {t.dtype}, {grad}"


def _module_label(item, ctx, members):
    kind = ctx.kinds.get(item.obj)
    title = f"{item.obj} ({kind})" if kind else str(item.obj)
    return f"{title}\\n{len(members)} nodes folded"


def _legend_label(stats):
    rows = [(LEAF, "leaf that requires grad"), (CONST, "constant (no grad)"),
            (INTER, "intermediate tensor"), (OUTPUT, "output"), (OP_FILL, "op"),
            (BACKWARD_FILL, "backward function (#k: engine order)")]
    for k in stats["ops_by_order"]:
        if k:
            rows.append((_order_fill(k), f"built by backward, order {k}"))
    counts = ", ".join(f"order {k}: {n}" for k, n in stats["ops_by_order"].items())
    cells = "".join(f'<TR><TD BGCOLOR="{c}" WIDTH="18"></TD><TD ALIGN="LEFT">{text}</TD></TR>'
                    for c, text in rows)
    return (f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2"><TR><TD COLSPAN="2">'
            f'<B>legend</B></TD></TR>{cells}<TR><TD COLSPAN="2">ops by order: {counts}'
            f'</TD></TR></TABLE>>')
