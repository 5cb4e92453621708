"""``tinygrad-opt demo``: train, race, look at curvature, and write runs/demo/report.html.

    tinygrad-opt demo                      # about 15 s on two cores
    tinygrad-opt demo --out /tmp/demo --quick

Trains an MLP on the two moons with several optimizers, races optimizers on
Rosenbrock and an ill-conditioned quadratic, draws the compute graph of the loss,
runs the Hessian lab and the learning-rate range test, and writes one HTML page
with every picture embedded (``tinygrad_opt.study.demo``), plus a summary table
on the terminal.
"""

from ..study.demo import run_demo
from . import CommandError, _study

HELP = "the tour: train on the moons, race optimizers, Hessian lab, LR test -> report.html"


def add_arguments(parser):
    parser.add_argument("--out", "-o", default="runs/demo", metavar="DIR",
                        help="folder for report.html and the pictures (default runs/demo)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets everywhere (a few seconds; for tests)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _study.add_progress(parser)


def run(args):
    _study.out_dir(args.out)
    if _study.plots_or_none() is None:
        raise CommandError("the demo draws pictures and needs matplotlib and pillow: "
                           "pip install 'tinygrad-opt[plot]'.")

    run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    return 0
