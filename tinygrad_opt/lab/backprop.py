"""The backprop panel: an expression (or a tiny MLP) -> its graph, its gradients, and the
backward functions in the order the engine runs them, with what each one handed on.

The order and the gradients handed on come from :mod:`tinygrad_opt.draw`'s replay
of the engine's walk (the same one ``draw_graph(mode="backward")`` draws): it
calls every op's own ``vjp`` in the engine's order, and touches no ``.grad``.
The leaves' gradients are then taken from the engine itself (``backward()``),
so what the page shows at the last step is exactly ``.grad``.
"""

import re

import numpy as np

import tinygrad_opt as tg

from .. import draw as _graph
from .. import nn
from .. import op as op_module
from ..study.expressions import FUNCTIONS, ExpressionError, differentiate, evaluate
from . import limits
from .requests import BadRequest, number, text


def _variables(body):
    """The ``vars`` field: {name: number or list of numbers} as float64 leaves."""
    values = body.get("vars", {})
    if not isinstance(values, dict):
        raise BadRequest(f"vars must be an object such as {{\"a\": 2.0, \"x\": [1, 2]}}, "
                         f"got {values!r}.")
    if len(values) > limits.MAX_VARIABLES:
        raise BadRequest(f"{len(values)} variables given; the limit is "
                         f"{limits.MAX_VARIABLES}.")
    leaves = {}
    for name, value in values.items():
        if not name.isidentifier() or name in FUNCTIONS:
            raise BadRequest(f"variable name {name!r} must be an identifier that is not a "
                             "function name, such as a or x1.")
        numbers = value if isinstance(value, list) else [value]
        if not numbers or len(numbers) > limits.MAX_VECTOR_LENGTH or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                for v in numbers):
            raise BadRequest(f"variable {name} must be a finite number or a list of 1 to "
                             f"{limits.MAX_VECTOR_LENGTH} finite numbers, got {value!r}.")
        data = numbers if isinstance(value, list) else float(value)
        leaves[name] = tg.Tensor(data, dtype="float64", requires_grad=True, name=name)
    return leaves


def _expression(body):
    """(root, {name: leaf}) of the ``expr`` field."""
    source = text(body, "expr")
    leaves = _variables(body)
    previous = tg.get_default_dtype()
    tg.set_default_dtype("float64")  # the numbers typed in the expression, as the leaves
    try:
        root = evaluate(source, leaves)
    except ExpressionError as error:
        # The evaluator speaks the command line's language (--var a=2); the API's is vars.
        message = re.sub(r"with --var (\w+)=VALUE", r'in vars, as in {"\1": 1.0}', str(error))
        raise BadRequest(f"expr: {message}") from None
    finally:
        tg.set_default_dtype(previous)
    if not isinstance(root, tg.Tensor) or not root.requires_grad:
        raise BadRequest("expr: the expression does not depend on any variable; give them "
                         "in vars, as in {\"a\": 2.0}.")
    if root.numel() != 1:
        raise BadRequest(f"expr: the value has shape {tuple(root.shape)}, and backward "
                         "starts from a scalar; end the expression with .sum() or .mean().")
    if root.name is None:
        root.name = "f"
    return root, leaves


def _mlp(body):
    """(root, {name: parameter}) of the ``mlp`` field: the MSE loss of a tanh MLP on
    one random sample (seed 0), as ``tinygrad-opt graph --mlp``."""
    spec = text(body, "mlp")
    try:
        sizes = [int(part) for part in spec.split("-")]
    except ValueError:
        sizes = []
    if not 2 <= len(sizes) <= limits.MAX_MLP_LAYERS + 1 \
            or not all(1 <= n <= limits.MAX_MLP_WIDTH for n in sizes):
        raise BadRequest(f"mlp expects 2 to {limits.MAX_MLP_LAYERS + 1} layer sizes from 1 to "
                         f"{limits.MAX_MLP_WIDTH} joined by '-', such as 2-3-1; got {spec!r}.")
    tg.manual_seed(0)
    model = nn.MLP(sizes, activation="tanh", dtype="float64")
    x = tg.randn(1, sizes[0], dtype="float64")
    y = tg.randn(1, sizes[-1], dtype="float64")
    x.name, y.name = "x", "y"
    for name, p in model.named_parameters():
        p.name = name
    loss = nn.functional.mse_loss(model(x), y)
    loss.name = "loss"
    return loss, dict(model.named_parameters())


def _label(t):
    """The tensor's name, or what made it ("mul output")."""
    if t.name:
        return t.name
    return f"{t._node.name.lower()} output" if t._node is not None else "constant"


def _value(t):
    data = np.asarray(t.data, dtype=np.float64)
    return float(data) if data.ndim == 0 else data.tolist()


def _trace(root):
    """The engine's backward walk on ``root``: (steps, totals, edge gradients)."""
    with op_module.no_grad(), np.errstate(all="ignore"):
        steps, _visits, edge_grads, totals = _graph._simulate_backward(root, True)
    return steps, totals, edge_grads


def _backward_list(steps, totals, edge_grads):
    """One entry per backward function, in the engine's order."""
    out = []
    for k, t in enumerate(steps, start=1):
        node = t._node
        handed = []
        for i, (inp, needed) in enumerate(zip(node.inputs, node.needs_input_grad)):
            if needed and (t, i) in edge_grads:
                handed.append({"input": _label(inp), "leaf": inp._node is None,
                               "grad": _value(edge_grads[(t, i)])})
        out.append({"step": k, "function": f"{node.name}Backward", "output": _label(t),
                    "order": node.order, "grad_output": _value(totals[t]), "handed": handed})
    return out


def graph(body):
    """The answer of ``POST /api/graph`` (see the module doc)."""
    if ("expr" in body) == ("mlp" in body):
        raise BadRequest("give either expr (with vars) or mlp (such as \"2-3-1\"), not both "
                         "and not neither.")
    order = number(body, "order", 1, 1, 2, integer=True)
    root, leaves = _expression(body) if "expr" in body else _mlp(body)
    if order == 2:
        try:
            root = differentiate(root, list(leaves.values()), 2)
        except ExpressionError as error:
            raise BadRequest(f"order 2: {error}") from None
    steps, totals, edge_grads = _trace(root)
    if len(steps) > limits.MAX_GRAPH_OPS:
        raise BadRequest(f"the graph has {len(steps)} backward functions; the page draws at "
                         f"most {limits.MAX_GRAPH_OPS}: shorten the expression.")
    digraph = tg.draw_graph(root, mode="both", show_grad=False, rankdir="LR")
    try:
        svg = digraph.pipe(format="svg").decode("utf-8")
    except _graph.DotNotFoundError as error:
        raise BadRequest(str(error), status=503) from None
    backward = _backward_list(steps, totals, edge_grads)
    root.backward()  # the engine itself: the leaves' .grad
    grads = {name: None if leaf.grad is None else _value(leaf.grad)
             for name, leaf in leaves.items()}
    return {"svg": svg, "value": _value(root), "output": root.name, "order": order,
            "grads": grads, "backward": backward}
