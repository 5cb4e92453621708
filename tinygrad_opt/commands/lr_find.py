"""``tinygrad-opt lr-find``: the learning-rate range test, and the gallery of schedules.

    tinygrad-opt lr-find                                  # moons, SGD with momentum 0.9
    tinygrad-opt lr-find --optimizer adam --start-lr 1e-6 --end-lr 1 --num-iter 200
    tinygrad-opt lr-find --schedules                      # also draw every lr_scheduler
    tinygrad-opt lr-find --optimizer adam --schedule warmup:3+cosine --epochs 50

Trains a fresh MLP for --num-iter mini-batches while the learning rate grows
exponentially from --start-lr to --end-lr, stops when the smoothed loss exceeds
5× its best so far, and suggests the lr where the smoothed loss falls fastest
(``tinygrad_opt.study.lr_finder``), or says why it cannot. Writes lr_finder.png
and lr_finder.json (and schedules.png with --schedules) into --out.
"""

import json
import math
import os
import warnings

import tinygrad_opt as tg

from .. import nn
from ..cli import UsageError
from ..study import lr_finder
from . import _schedules, _study
from ._study import (
    add_data_arguments,
    add_progress,
    at_least,
    bar,
    loss_for,
    mini_batch,
    mlp_data,
    optimizer,
    out_dir,
    positive,
)
from .train import spec_text

HELP = "learning-rate range test (Leslie Smith) with a suggested lr; gallery of schedules"


def add_arguments(parser):
    add_data_arguments(parser, samples=500, hidden="16-16")
    parser.add_argument("--optimizer", default="momentum", metavar="SPEC",
                        help="optimizer whose lr is tested (default momentum: SGD, β = 0.9)")
    parser.add_argument("--start-lr", type=float, default=1e-5, help="first lr (1e-5)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last lr (10)")
    parser.add_argument("--num-iter", type=int, default=100, help="mini-batches (100)")
    parser.add_argument("--mode", choices=("exp", "linear"), default="exp",
                        help="how the lr grows (exp, the default, or linear)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (32)")
    parser.add_argument("--schedules", action="store_true",
                        help="also draw every schedule of optim.lr_scheduler (schedules.png)")
    parser.add_argument("--schedule", default="none", metavar="SPEC",
                        help="the schedule to train with from the suggested lr: its lr per "
                             "epoch is drawn (schedule.png) and the train command printed "
                             "(default none). " + _schedules.SPECS)
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of that schedule (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", "-o", default="runs/lr-find", metavar="DIR",
                        help="folder for the pictures and lr_finder.json (runs/lr-find)")
    add_progress(parser)


def run(args):
    positive(args.start_lr, "--start-lr")
    positive(args.end_lr, "--end-lr")
    if not args.start_lr < args.end_lr:
        raise UsageError(f"--start-lr ({args.start_lr:g}) must be below --end-lr "
                         f"({args.end_lr:g}).")
    at_least(args.num_iter, 5, "--num-iter")
    at_least(args.epochs, 1, "--epochs")
    _schedules.check(args.schedule, args.epochs)
    at_least(args.batch_size, 1, "--batch-size")
    spec = optimizer(args.optimizer)
    mini_batch(spec, f"--optimizer {spec.name}: the range test needs a first-order "
                     "optimizer with a learning rate (sgd, momentum, adam, ...).", needs_lr=True)
    X, y, layer_sizes = mlp_data(args)
    out_dir(args.out)
    tg.manual_seed(args.seed)
    model = nn.MLP(layer_sizes, activation=args.activation)
    progress = bar(args.num_iter, "range test", not args.no_progress)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # result.message is printed below
            result = lr_finder.lr_range_test(
                model, loss_for(y), spec.build(model.parameters()), (X, y),
                start_lr=args.start_lr, end_lr=args.end_lr, num_iter=args.num_iter,
                step_mode=args.mode, batch_size=args.batch_size, seed=args.seed,
                progress=None if progress is None else (lambda i: progress.update(1)))
    finally:
        if progress is not None:
            progress.close()
    print(f"range test of {spec.name} on {args.data}: {len(result.lrs)} mini-batches from "
          f"{args.start_lr:g} to {args.end_lr:g} ({result.stop_reason})")
    if result.message is not None:
        print(result.message)
    else:
        print(f"suggested lr (steepest descent of the smoothed loss): {result.suggestion:.3g}")
        print(f"lr at the minimum of the smoothed loss / 10: {result.min_loss_lr:.3g}")
    clean = lambda v: None if not math.isfinite(v) else float(v)
    schedule = _schedule_from(args, spec, result)
    with open(os.path.join(args.out, "lr_finder.json"), "w", encoding="utf-8") as handle:
        json.dump({"optimizer": spec.label, "lrs": result.lrs.tolist(),
                   "losses": [clean(v) for v in result.losses],
                   "smoothed": [clean(v) for v in result.smoothed],
                   "suggestion": clean(result.suggestion),
                   "min_loss_lr": clean(result.min_loss_lr),
                   "stopped_early": result.stopped_early,
                   "stop_reason": result.stop_reason, "message": result.message,
                   "schedule": schedule}, handle)
    written = ["lr_finder.json"]
    plots = _study.plots_or_none()
    if plots is not None:
        plots.lr_finder(result, os.path.join(args.out, "lr_finder.png"))
        written.append("lr_finder.png")
        if args.schedules:
            plots.schedule_gallery(lr_finder.schedule_curves(100),
                                   os.path.join(args.out, "schedules.png"))
            written.append("schedules.png")
        if schedule is not None:
            plots.schedule_gallery({f"{args.schedule} from lr {result.suggestion:.3g}":
                                    schedule["lrs"]}, os.path.join(args.out, "schedule.png"))
            written.append("schedule.png")
    print(f"wrote {', '.join(written)} in {args.out}")
    return 0


def _schedule_from(args, spec, result):
    """--schedule run from the suggested lr: printed, and returned for lr_finder.json
    ({"spec", "lr", "lrs"}); None without a schedule or a suggestion."""
    if args.schedule == "none" or not math.isfinite(result.suggestion):
        return None
    lrs = _schedules.lrs(args.schedule, result.suggestion, args.epochs)
    print(f"schedule {args.schedule} from lr {result.suggestion:.3g}: lr {lrs[0]:.3g} at epoch "
          f"1, {lrs[len(lrs) // 2]:.3g} at epoch {len(lrs) // 2 + 1}, {lrs[-1]:.3g} at epoch "
          f"{len(lrs)}")
    print(f"train with it: tinygrad-opt train --data {args.data} --hidden {args.hidden} "
          f"--optimizer {spec_text(spec)} --lr {result.suggestion:.3g} --schedule {args.schedule} "
          f"--epochs {args.epochs}")
    return {"spec": args.schedule, "lr": result.suggestion, "lrs": lrs}
