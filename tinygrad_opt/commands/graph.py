"""``tinygrad-opt graph``: draw the compute graph of an expression or of a small MLP's loss.

    tinygrad-opt graph --expr "a*b + c.tanh()" --var a=2 --var b=-3 --var c=1 --out g.svg
    tinygrad-opt graph --expr "e = a*b; d = e + c; L = d * f" --var a=2 --var b=-3 \\
        --var c=10 --var f=-2 --mode both --out L.svg
    tinygrad-opt graph --mlp 2-4-1 --order 2 --out graph.svg

``--order k`` draws the graph of the k-th derivative: 1 (the default) the
function itself, with ∂f/∂node in every label; 2 the directional derivative
∇f·1 that a ``create_graph=True`` backward builds (its nodes in their own
colour and cluster), 3 the derivative of that, ... Without ``--out`` the DOT
text goes to stdout; ``--out`` with .svg/.png/.pdf renders it (Graphviz's
``dot`` needed), with .dot/.gv writes the DOT text.
"""

import os

HELP = "draw the forward / backward / double-backward graph of an expression or an MLP"

MAX_ORDER = 4
RENDERED = ("svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps")


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
                        help="write here: .svg .png .pdf (needs Graphviz's dot) or .dot .gv; "
                             "default: the DOT text on stdout")
    parser.add_argument("--max-nodes", type=int, metavar="N",
                        help="draw at most N nodes (modules fold first, then a summary node)")
    parser.add_argument("--rankdir", choices=("LR", "TB", "RL", "BT"), default="LR",
                        help="layout direction (default LR)")
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
    from ..cli import UsageError

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
    if args.out is not None:
        suffix = os.path.splitext(args.out)[1].lstrip(".").lower()
        if suffix not in RENDERED + ("dot", "gv"):
            raise UsageError(f"--out {args.out}: use a file ending in "
                             f"{', '.join('.' + s for s in RENDERED + ('dot', 'gv'))}.")


def _sizes(spec):
    from ..cli import UsageError

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
    import tinygrad_opt as tg

    from ..cli import UsageError
    from .expr import ExpressionError, evaluate, parse_variables

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
    from .. import nn

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


def differentiate(root, variables, order):
    """The directional derivative ∇root·1 taken ``order - 1`` times, each with
    create_graph=True, so that the graph keeps every layer."""
    import tinygrad_opt as tg

    from ..cli import UsageError

    label = root.name or "f"
    for _ in range(order - 1):
        grads = tg.grad(root, variables, create_graph=True, allow_unused=True)
        terms = [g.sum() for g in grads if g is not None and g.requires_grad]
        if not terms:
            raise UsageError(f"--order: the gradient of {label} does not depend on the "
                             "variables (it is constant), so there is no graph to draw at "
                             "this order.")
        root = terms[0]
        for term in terms[1:]:
            root = root + term
        label = f"∇({label})·1"
        root.name = label
    return root


def run(args):
    import tinygrad_opt as tg

    from ..cli import CommandError
    from ..graph import INSTALL_HINT, DotNotFoundError, render

    _check(args)
    previous = tg.get_default_dtype()
    tg.set_default_dtype(args.dtype)  # for the numbers an expression turns into tensors
    try:
        root, params, variables = build(args)
        root = differentiate(root, variables, args.order)
    finally:
        tg.set_default_dtype(previous)
    show_data = {"auto": "auto", "all": True, "none": False}[args.show_data]
    digraph = tg.draw_graph(root, params=params, mode=args.mode, show_data=show_data,
                            show_grad=not args.no_grad, max_nodes=args.max_nodes,
                            rankdir=args.rankdir, legend=args.legend)
    if args.out is None:
        print(digraph.source, end="")
        return 0
    try:
        path = render(digraph, args.out)
    except DotNotFoundError:
        stem = os.path.splitext(args.out)[0]
        raise CommandError(f"cannot write {args.out}: Graphviz's dot program is not on PATH; "
                           f"{INSTALL_HINT}, or write the DOT text with --out {stem}.dot.") \
            from None
    except OSError as error:
        raise CommandError(f"cannot write {args.out}: {error.strerror or error}.") from None
    stats = digraph.stats
    print(f"wrote {path}: {stats['tensors']} tensors, {stats['ops']} ops"
          + (f" ({', '.join(f'order {k}: {n}' for k, n in stats['ops_by_order'].items())})"
             if len(stats["ops_by_order"]) > 1 else "")
          + (f", {stats['hidden']} nodes in the summary node" if stats["hidden"] else ""))
    return 0
