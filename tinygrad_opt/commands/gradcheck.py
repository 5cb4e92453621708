"""``tinygrad-opt gradcheck``: check backward against finite differences, and see why h matters.

    tinygrad-opt gradcheck                                  # an MLP's loss, float64
    tinygrad-opt gradcheck --expr "(a*b + a.tanh()).sum() * b.exp().sum()" \\
        --var a=0.5,-1.2 --var b=0.3,0.7
    tinygrad-opt gradcheck --mlp 2-4-1 --second-order --out runs/gradcheck

Runs ``tg.autograd.gradcheck`` (backward against central differences, float64),
with --second-order also ``gradgradcheck`` (the gradient of the gradient), and
the step-size sweep of ``study.gradcheck_lab``: the largest relative error of the
central difference for h = 1e-1 ... 1e-12 in float64 and float32 -- the "V" of
truncation against round-off error, with its bottom near h ≈ ε^(1/3). Exit code
1 when a check fails. The sweep's picture, eps_sweep.png, goes into --out.
"""

import os

import numpy as np

import tinygrad_opt as tg

from .. import nn
from ..autograd import GradcheckError, gradcheck, gradgradcheck
from ..study import gradcheck_lab
from ..study.expressions import ExpressionError, evaluate, parse_variables
from ..study.race import format_rows
from . import CommandError, UsageError, _study

HELP = "gradient check (and gradgradcheck) with the finite-difference step sweep"


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--expr", metavar="EXPR",
                        help='a scalar Tensor expression over --var variables, e.g. '
                             '"(a*b).sum() + c.tanh()"')
    source.add_argument("--mlp", metavar="SIZES", default=None,
                        help="check the MSE loss of an MLP with these sizes w.r.t. its "
                             "parameters (default 2-3-1)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable of --expr: a=2, or x=1,2,3 (repeat it)")
    parser.add_argument("--activation", default="tanh", help="--mlp activation (tanh)")
    parser.add_argument("--second-order", action="store_true", help="also run gradgradcheck")
    parser.add_argument("--eps", type=float, default=1e-6, help="gradcheck's step h (1e-6)")
    parser.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (1e-5)")
    parser.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (1e-3)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the step-size sweep")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", "-o", default="runs/gradcheck", metavar="DIR",
                        help="folder for eps_sweep.png (default runs/gradcheck)")


def _function(args):
    """(f, values, description): f takes one Tensor per value and returns a scalar."""
    if args.expr is not None:
        try:
            values = parse_variables(args.var)
        except ExpressionError as error:
            raise UsageError(str(error)) from None
        if not values:
            raise UsageError("--expr needs its variables: add --var NAME=VALUE for each.")
        names = list(values)

        def f(*xs):
            out = evaluate(args.expr, dict(zip(names, xs)))
            if not isinstance(out, tg.Tensor):
                raise ExpressionError("the expression does not use any variable.")
            return out if out.numel() == 1 else out.sum()

        arrays = [np.atleast_1d(np.asarray(values[n], dtype=np.float64)) for n in names]
        try:
            f(*[tg.Tensor(a, dtype="float64") for a in arrays])
        except ExpressionError as error:
            raise UsageError(f"--expr: {error}") from None
        return f, arrays, f"{args.expr!r} (summed if not scalar)"
    if args.var:
        raise UsageError("--var applies to --expr.")
    spec = args.mlp or "2-3-1"
    try:
        sizes = [int(v) for v in spec.split("-")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or any(not 1 <= s <= 64 for s in sizes):
        raise UsageError(f"--mlp expects sizes 1..64 joined by '-', such as 2-3-1; got {spec!r}.")
    tg.manual_seed(args.seed)
    try:
        model = nn.MLP(sizes, activation=args.activation, dtype="float64")
    except ValueError as error:
        raise UsageError(f"--activation: {error}") from None
    X = tg.randn(4, sizes[0], dtype="float64")
    Y = tg.randn(4, sizes[-1], dtype="float64")
    params = list(model.parameters())
    shapes = [p.shape for p in params]

    def f(*ws):
        out = X.to(dtype=ws[0].dtype)  # the eps sweep runs in float32 too
        k = 0
        for layer in model.layers:
            if isinstance(layer, nn.Linear):
                out = out @ ws[k].T + ws[k + 1] if layer.bias is not None else out @ ws[k].T
                k += 2 if layer.bias is not None else 1
            else:
                out = layer(out)
        return nn.functional.mse_loss(out, Y.to(dtype=out.dtype))

    arrays = [np.asarray(p.numpy(), dtype=np.float64).reshape(s) for p, s in zip(params, shapes)]
    return f, arrays, f"the MSE loss of an MLP {spec} ({sum(a.size for a in arrays)} parameters)"


def run(args):
    _study.check_bounds(args, above_zero=("eps", "atol", "rtol"))
    f, arrays, what = _function(args)
    inputs = [tg.Tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    print(f"checking {what}")
    failures = []
    checks = [("gradcheck", gradcheck)] + ([("gradgradcheck", gradgradcheck)]
                                           if args.second_order else [])
    for name, check in checks:
        try:
            check(f, inputs, eps=args.eps, atol=args.atol, rtol=args.rtol)
            print(f"{name}: PASS (h = {args.eps:g}, atol {args.atol:g}, rtol {args.rtol:g})")
        except GradcheckError as error:
            print(f"{name}: FAIL: {error}")
            failures.append(name)
    if not args.no_sweep:
        sweep = gradcheck_lab.eps_sweep(f, arrays)
        eps = gradcheck_lab.EPS_VALUES
        rows = [[f"{h:.0e}"] + [f"{sweep[d][i]:.2e}" for d in sweep] for i, h in enumerate(eps)]
        print("largest relative error of the central difference:")
        print(format_rows(["h"] + list(sweep), rows))
        print("best h: " + ", ".join(f"{d} {gradcheck_lab.best_eps(eps, e):.0e} (ε^(1/3) ≈ "
                                     f"{np.finfo(d).eps ** (1 / 3):.0e})"
                                     for d, e in sweep.items()))
        if args.out:
            _study.out_dir(args.out)
            plots = _study.plots_or_none()
            if plots is not None:
                path = plots.eps_sweep(eps, sweep, os.path.join(args.out, "eps_sweep.png"))
                print(f"wrote {path}")
    if failures:
        raise CommandError(f"{' and '.join(failures)} failed (see above).")
    return 0

