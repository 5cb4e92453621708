"""``tinygrad-opt graph``: draw the compute graph of an expression or of a small MLP's loss.

    tinygrad-opt graph --expr "a*b + c.tanh()" --var a=2 --var b=-3 --var c=1
    tinygrad-opt graph --expr "e = a*b; d = e + c; L = d * f" --var a=2 --var b=-3 \\
        --var c=10 --var f=-2 --mode both
    tinygrad-opt graph --mlp 2-4-1 --order 2            # runs/graph/mlp-2-4-1-order2.svg

``--order k`` draws the graph of the k-th derivative: 1 (the default) the
function itself, with ∂f/∂node in every label; 2 the directional derivative
∇f·1 that a ``create_graph=True`` backward builds (its nodes in their own
colour and cluster), 3 the derivative of that, ...

The picture goes to ``runs/graph/`` (named after the graph) unless ``--out``
names a file (.svg/.png/.pdf render with Graphviz's ``dot``, .dot/.gv hold
the DOT text, ``-`` prints it); the command prints the path. It is made to be
read at 100% on a screen (``--fit``, 1800x2200 px by default): left to right,
else top to bottom, else folded (modules into 3-D boxes, the nodes furthest
from the output into one note) with a line saying so; ``--full`` draws every
node whatever the size.
"""

import os

import tinygrad_opt as tg

from .. import nn
from ..draw import INSTALL_HINT, DotNotFoundError, dot_available, render
from ..study.expressions import ExpressionError, differentiate, evaluate, parse_variables
from . import CommandError, UsageError

HELP = "draw the forward / backward / double-backward graph of an expression or an MLP"

MAX_ORDER = 4
RENDERED = ("svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps")
FOLDER = os.path.join("runs", "graph")


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--expr", metavar="EXPR",
                        help='a Tensor expression over --var variables, e.g. "a*b + c.tanh()"; '
                             'statements "name = expr" separated by ";" label the tensors')
    source.add_argument("--mlp", metavar="SIZES",
                        help="layer sizes of an MLP joined by '-', e.g. 2-4-1: draws its MSE "
                             "loss on a random batch")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable of --expr (repeat it): a=2, or x=1,2,3 for a vector")
    parser.add_argument("--order", type=int, default=1, metavar="K",
                        help=f"derivative order to draw, 1..{MAX_ORDER} (default 1: the "
                             "function with its gradients; 2: its gradient graph)")
    parser.add_argument("--mode", choices=("forward", "backward", "both"), default="forward",
                        help="forward graph, backward functions in engine order, or both")
    parser.add_argument("--out", "-o", metavar="PATH",
                        help="write here: .svg .png .pdf (needs Graphviz's dot), .dot .gv, or "
                             f"- for the DOT text on stdout (default {FOLDER}/NAME.svg, NAME "
                             "from the graph)")
    parser.add_argument("--fit", default="1800x2200", metavar="WxH",
                        help="fit the picture into W x H pixels at 100%%, text never shrunk: "
                             "left to right, else top to bottom, else folded (modules into "
                             "3-D boxes, then the nodes furthest from the output into one "
                             "note), saying so on the picture (default 1800x2200)")
    parser.add_argument("--full", action="store_true",
                        help="draw every node, however large the picture (turns --fit off)")
    parser.add_argument("--max-nodes", type=int, metavar="N",
                        help="fold to at most N nodes yourself (modules first, then a summary "
                             "node; turns --fit off)")
    parser.add_argument("--rankdir", choices=("LR", "TB", "RL", "BT"), default="LR",
                        help="layout direction; with --fit the first one tried (default LR)")
    parser.add_argument("--show-data", choices=("auto", "all", "none"), default="auto",
                        help="values in the labels: tiny tensors (auto), all, or none")
    parser.add_argument("--no-grad", action="store_true", help="leave gradients out of labels")
    parser.add_argument("--legend", action="store_true", help="draw the colour legend")
    parser.add_argument("--activation", metavar="NAME",
                        help="--mlp: activation between layers (default tanh)")
    parser.add_argument("--batch", type=int, metavar="N", help="--mlp: batch size (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                        help="dtype of the variables and parameters (default float64)")


def _check(args):
    if not 1 <= args.order <= MAX_ORDER:
        raise UsageError(f"--order must be between 1 and {MAX_ORDER}, got {args.order}.")
    if args.max_nodes is not None and args.max_nodes < 2:
        raise UsageError(f"--max-nodes must be at least 2, got {args.max_nodes}.")
    if args.expr is not None:
        for flag, value in (("--activation", args.activation), ("--batch", args.batch)):
            if value is not None:
                raise UsageError(f"{flag} applies to --mlp, not to --expr.")
    if args.mlp is not None and args.var:
        raise UsageError("--var applies to --expr; --mlp makes its own data.")
    if args.batch is not None and not 1 <= args.batch <= 4096:
        raise UsageError(f"--batch must be between 1 and 4096, got {args.batch}.")
    args.screen = None if args.full or args.max_nodes is not None else _screen(args.fit)
    if args.out is not None and args.out != "-":
        suffix = os.path.splitext(args.out)[1].lstrip(".").lower()
        if suffix not in RENDERED + ("dot", "gv"):
            raise UsageError(f"--out {args.out}: use a file ending in "
                             f"{', '.join('.' + s for s in RENDERED + ('dot', 'gv'))}.")


def _screen(text):
    width, _, height = text.lower().partition("x")
    try:
        screen = (int(width), int(height))
    except ValueError:
        screen = (0, 0)
    if min(screen) < 100:
        raise UsageError(f"--fit expects WIDTHxHEIGHT in pixels, each at least 100, such as "
                         f"1800x2200; got {text!r}.")
    return screen


def _default_path(args):
    """runs/graph/NAME.svg, NAME telling the graph apart: mlp-2-4-1-order2-both."""
    name = f"mlp-{args.mlp}" if args.mlp is not None else "expr"
    name += f"-order{args.order}" * (args.order > 1) + f"-{args.mode}" * (args.mode != "forward")
    return os.path.join(FOLDER, name + ".svg")


def _sizes(spec):
    try:
        sizes = [int(part) for part in spec.split("-")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or any(not 1 <= n <= 4096 for n in sizes):
        raise UsageError(f"--mlp expects two or more layer sizes from 1 to 4096 joined by "
                         f"'-', such as 2-4-1; got {spec!r}.")
    return sizes


def build(args):
    """(root, params, variables) for the arguments: the function to draw."""
    tg.manual_seed(args.seed)
    if args.expr is not None:
        try:
            values = parse_variables(args.var)
        except ExpressionError as error:
            raise UsageError(str(error)) from None
        variables = {name: tg.Tensor(v, dtype=args.dtype, requires_grad=True, name=name)
                     for name, v in values.items()}
        try:
            root = evaluate(args.expr, variables)
        except ExpressionError as error:
            raise UsageError(f"--expr: {error}") from None
        if not isinstance(root, tg.Tensor):
            raise UsageError("--expr: the expression does not use any variable; define them "
                             "with --var NAME=VALUE.")
        if root.name is None:
            root.name = "f"
        return root, None, list(variables.values())

    sizes = _sizes(args.mlp)
    activation = args.activation or "tanh"
    try:
        model = nn.MLP(sizes, activation=activation, dtype=args.dtype)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--activation: {error}") from None
    batch = args.batch or 1
    x = tg.randn(batch, sizes[0], dtype=args.dtype)
    y = tg.randn(batch, sizes[-1], dtype=args.dtype)
    x.name, y.name = "x", "y"
    loss = nn.functional.mse_loss(model(x), y)
    loss.name = "loss"
    return loss, model, list(model.parameters())


def _at_order(root, variables, order):
    """:func:`differentiate` for --order (what it refuses is a UsageError)."""
    try:
        return differentiate(root, variables, order)
    except ExpressionError as error:
        raise UsageError(f"--order: {error}") from None


def run(args):
    _check(args)
    previous = tg.get_default_dtype()
    tg.set_default_dtype(args.dtype)  # for the numbers an expression turns into tensors
    try:
        root, params, variables = build(args)
        root = _at_order(root, variables, args.order)
    finally:
        tg.set_default_dtype(previous)
    show_data = {"auto": "auto", "all": True, "none": False}[args.show_data]
    digraph = tg.draw_graph(root, params=params, mode=args.mode, show_data=show_data,
                            show_grad=not args.no_grad, max_nodes=args.max_nodes,
                            rankdir=args.rankdir, legend=args.legend,
                            fit=args.screen or False)
    if args.out == "-":
        print(digraph.source, end="")
        return 0
    out = args.out or _default_path(args)
    if args.out is None and not dot_available():
        out = os.path.splitext(out)[0] + ".dot"
        print(f"Graphviz's dot program is not on PATH, so the picture is DOT text; "
              f"{INSTALL_HINT} to get an SVG.")
    try:
        path = render(digraph, out)
    except DotNotFoundError:
        stem = os.path.splitext(out)[0]
        raise CommandError(f"cannot write {out}: Graphviz's dot program is not on PATH; "
                           f"{INSTALL_HINT}, or write the DOT text with --out {stem}.dot.") \
            from None
    except OSError as error:
        raise CommandError(f"cannot write {out}: {error.strerror or error}.") from None
    print(f"wrote {path}: {_summary(digraph.stats)}")
    return 0


def _summary(stats):
    """'35 tensors, 27 ops (order 0: 11, order 1: 16); 1652x1074 px, folded: ...'."""
    text = f"{stats['tensors']} tensors, {stats['ops']} ops"
    if len(stats["ops_by_order"]) > 1:
        text += f" ({', '.join(f'order {k}: {n}' for k, n in stats['ops_by_order'].items())})"
    fit = stats.get("fit")
    if fit is not None:
        text += f"; {fit['size'][0]:.0f}x{fit['size'][1]:.0f} px"
        if fit["max_nodes"] is not None:
            text += (f", folded to {stats['drawn']} nodes to fit {fit['screen'][0]}x"
                     f"{fit['screen'][1]} (--full draws them all)")
    elif stats["hidden"]:
        text += f", {stats['hidden']} nodes in the summary node"
    return text
