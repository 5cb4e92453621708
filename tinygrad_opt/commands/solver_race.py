"""``tinygrad-opt solver-race``: the linear solvers on A x = b, with residual curves.

    tinygrad-opt solver-race                          # 2-D Poisson, 8 × 8 grid, scaled
    tinygrad-opt solver-race --grid 12 --scale 0 --methods cg,pcg,jacobi,gauss_seidel

Solves A x = b for the 5-point Laplacian on a k × k grid (scaled D A D over --scale
decades) with gradient descent, Jacobi, Gauss-Seidel, CG, PCG and the direct LU, QR
and Cholesky, prints iterations, final relative residual and time, and writes
solvers.png (‖b - A x_k‖/‖b‖ per iteration) and solvers.json into --out.
"""

from ..study import solver_race
from . import _study
from ._study import usage

HELP = "race the linear solvers (GD, Jacobi, Gauss-Seidel, CG, PCG, LU, QR, Cholesky) on Ax=b"


def add_arguments(parser):
    parser.add_argument("--grid", type=int, default=8, metavar="K",
                        help="the Poisson grid is K × K, n = K² unknowns (8)")
    parser.add_argument("--scale", type=float, default=2.0, metavar="DECADES",
                        help="scale A symmetrically over this many decades (2; 0 = none)")
    parser.add_argument("--methods", default=None, metavar="LIST",
                        help="comma-separated, from gd, jacobi, gauss_seidel, cg, pcg, lu, "
                             "qr, cholesky (default: all)")
    parser.add_argument("--tol", type=float, default=1e-10, help="relative residual (1e-10)")
    parser.add_argument("--maxiter", type=int, default=2000, help="iteration cap (2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of b and the scaling (0)")
    parser.add_argument("--out", "-o", default="runs/solver-race", metavar="DIR",
                        help="folder for solvers.png and solvers.json (default runs/solver-race)")
    parser.add_argument("--no-plots", action="store_true", help="only the table and the JSON")


def run(args):
    _study.check_bounds(args, minimum={"grid": 2, "maxiter": 1}, above_zero=("tol",))
    if not 0 <= args.scale <= 8:
        raise usage(f"--scale must be between 0 and 8 decades, got {args.scale:g}.")
    methods = solver_race.DEFAULT_METHODS if args.methods is None else \
        tuple(m.strip() for m in args.methods.split(",") if m.strip())
    A, b = solver_race.poisson_system(args.grid, args.scale, args.seed)
    try:
        result = solver_race.race(A, b, methods, tol=args.tol, maxiter=args.maxiter)
    except ValueError as error:
        raise usage(f"--methods: {error}") from None
    print(result.format_table())
    written = _study.Outputs(args.out)
    written.json("solvers.json", result.to_dict())
    plots = None if args.no_plots else _study.plots_or_none()
    if plots is not None:
        plots.solver_race(result, written.path("solvers.png"))
    written.report()
    return 0
