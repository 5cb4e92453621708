"""``tinygrad-opt race``: optimizers from the same start with the same budget on a 2-D landscape.

    tinygrad-opt race                                   # Rosenbrock, seven optimizers
    tinygrad-opt race --landscape quadratic:kappa=100,angle=30 \\
        --optimizers sgd,momentum,nesterov,adam,gd-exact,newton,bfgs --fair
    tinygrad-opt race --landscape booth --optimizers "sgd:lr=0.05,lm" --steps 50 --gif
    tinygrad-opt race --landscape quadratic:kappa=10 --optimizers sgd,momentum,adam --noise 0.5
    tinygrad-opt race --landscape rosenbrock \
        --optimizers random-search,random-local-search,numerical-gd,annealing,evolution,bfgs
    tinygrad-opt race --landscape parabola --optimizers "sgd:lr=0.1;sgd:lr=0.9;sgd:lr=1.05"
    tinygrad-opt race --list

Prints the table of steps and function evaluations to reach f - f* <= --tol (a run
whose f - f* grows a hundredfold is "diverged"), and writes into --out: contour.png
(paths and line-search trial points; on a 1-D landscape, landscape.png: the curve
with the iterates on it), curves.png (f - f* and ‖x - x*‖ per step and per
evaluation), race.json (every path), and race.gif with --gif. --noise σ adds seeded
Gaussian noise to every gradient (the lecture's stochastic-gradient panel).
Momentum and Nesterov without an lr get SGD's times (1 - β): the same effective step.
"""

from ..study import landscapes, race, specs
from . import _study
from ._study import optimizers, usage

DEFAULT_OPTIMIZERS = "sgd,momentum,adam,newton,bfgs,lbfgs,lm"

HELP = "race optimizers (first and second order) on Rosenbrock, Beale, ... and draw the paths"


def add_arguments(parser):
    parser.add_argument("--landscape", "-l", default="rosenbrock", metavar="NAME",
                        help="rosenbrock (default), beale, booth, himmelblau, six_hump_camel, "
                             "rastrigin, saddle, quadratic[:kappa=K,angle=DEG]; 1-D: parabola, "
                             "double_well")
    parser.add_argument("--optimizers", default=None, metavar="LIST",
                        help=f"comma-separated names with optional settings, e.g. "
                             f"'sgd:lr=1e-3,adam,newton' (default {DEFAULT_OPTIMIZERS}; "
                             "least-squares ones dropped where there are no residuals)")
    parser.add_argument("--start", metavar="X,Y", help="start point (default: the usual one; "
                                                       "one number on a 1-D landscape)")
    parser.add_argument("--steps", type=int, default=200, help="steps per optimizer (200)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="tolerance on f - f* for the table (1e-6)")
    parser.add_argument("--max-evals", type=int, metavar="N",
                        help="also stop an optimizer after N function evaluations")
    parser.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian noise of standard deviation SIGMA added to every "
                             "gradient, the same seeded draws for each optimizer (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    parser.add_argument("--fair", action="store_true",
                        help="tune each first-order optimizer's lr by a small log-grid search "
                             "first")
    parser.add_argument("--out", "-o", default="runs/race", metavar="DIR",
                        help="folder for the pictures and race.json (default runs/race)")
    parser.add_argument("--gif", action="store_true", help="also write an animated race.gif")
    parser.add_argument("--no-plots", action="store_true", help="only the table and race.json")
    parser.add_argument("--list", action="store_true",
                        help="list the landscapes and the optimizers, then exit")
    _study.add_progress(parser)


def _start(text, dim):
    try:
        point = tuple(float(v) for v in text.split(","))
    except ValueError:
        point = ()
    if len(point) != dim:
        wanted = "two numbers X,Y such as -1.2,1" if dim == 2 else "one number X such as 2.0"
        raise usage(f"--start expects {wanted}; got {text!r}.")
    return point


def run(args):
    if args.list:
        print("landscapes:")
        for name, ls in {**landscapes.LANDSCAPES, **landscapes.LANDSCAPES_1D}.items():
            lsq = ", least squares" if ls.least_squares else ""
            print(f"  {name:<15} start {ls.start}{lsq}: {ls.note}")
        print("optimizers:")
        print("  " + specs.names().replace("\n", "\n  "))
        return 0
    try:
        land = landscapes.get(args.landscape)
    except ValueError as error:
        raise usage(f"--landscape: {error}") from None
    _study.check_bounds(args, minimum={"steps": 1}, above_zero=("tol",))
    if not args.noise >= 0:
        raise usage(f"--noise must be >= 0 (a standard deviation), got {args.noise:g}.")
    _study.check_bounds(args, minimum={"max_evals": 1})
    start = _start(args.start, land.dim) if args.start else None
    if args.optimizers is None:
        chosen = [s for s in optimizers(DEFAULT_OPTIMIZERS)
                  if s.contract != "residual" or (land.least_squares and not args.noise)]
    else:
        chosen = optimizers(args.optimizers)
        for s in chosen:
            if s.contract == "residual" and not land.least_squares:
                raise usage(f"--optimizers: {s.name} needs a least-squares landscape and "
                            f"{land.name} is not a sum of squares; use one of "
                            f"{', '.join(landscapes.least_squares_names())}.")
            if s.contract == "residual" and args.noise:
                raise usage(f"--noise perturbs gradients, and {s.name} works on residuals; "
                            "race it without --noise.")
    written = _study.Outputs(args.out)
    with _study.progress(args, len(chosen), "racing", show_labels=True) as tick:
        result = race.race(land, chosen, start=start, steps=args.steps, tol=args.tol,
                           fair=args.fair, max_evals=args.max_evals, progress=tick,
                           noise=args.noise, seed=args.seed)
    print(result.format_table())
    written.json("race.json", result.to_dict())
    plots = None if args.no_plots else _study.plots_or_none()
    if plots is not None:
        if land.dim == 1:
            plots.landscape_1d(result, written.path("landscape.png"))
        else:
            plots.race_contour(result, written.path("contour.png"))
        plots.race_curves(result, written.path("curves.png"))
        if args.gif and land.dim == 2:
            plots.race_gif(result, written.path("race.gif"))
    elif not args.no_plots:
        print("(matplotlib is missing: no pictures; pip install 'tinygrad-opt[plot]')")
    written.report()
    return 0
