"""``tinygrad-opt opening-arc``: the lecture's opening, run on the digits.

    tinygrad-opt opening-arc                       # fast settings, a few seconds
    tinygrad-opt opening-arc --tries 5000 --steps 100 --loss cross_entropy

Trains the same linear classifier (8×8 digits, 650 parameters) with random search
(try random weights, keep the best: the lecture's 15.5% moment), random local search,
gradient descent on the numerical gradient (one forward difference per parameter,
h = 1e-4) and gradient descent on backprop's gradient, and prints test accuracy,
loss evaluations, gradient evaluations and wall time side by side, with the gradient
check of backprop against central differences. CIFAR-10 is not shipped; the digits
stand in for it. --json writes the table.
"""

import json

from ..study import opening_arc
from . import _study

HELP = "random search, random local search, numerical gradient and backprop side by side"


def add_arguments(parser):
    parser.add_argument("--tries", type=int, default=1000,
                        help="loss evaluations for the two random searches (1000)")
    parser.add_argument("--steps", type=int, default=30,
                        help="gradient-descent steps, numerical and backprop (30)")
    parser.add_argument("--lr", type=float, default=0.5, help="their learning rate (0.5)")
    parser.add_argument("--step-size", type=float, default=0.02,
                        help="random local search's perturbation (0.02)")
    parser.add_argument("--loss", default="svm", choices=("svm", "cross_entropy"),
                        help="the slides' multiclass SVM loss (default) or cross entropy")
    parser.add_argument("--seed", type=int, default=0, help="split, start and draws (0)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")


def run(args):
    _study.check_bounds(args, minimum={"tries": 1, "steps": 1}, above_zero=("lr", "step_size"))
    result = opening_arc.run(tries=args.tries, steps=args.steps, lr=args.lr,
                             step_size=args.step_size, loss=args.loss, seed=args.seed)
    print(result.format_table())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result.to_dict(), handle, indent=1)
        print(f"wrote {args.json}")
    return 0
