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

import math
import warnings

from ..study import lr_finder
from . import UsageError, _schedules, _study
from .train import spec_text

HELP = "learning-rate range test (Leslie Smith) with a suggested lr; gallery of schedules"


def add_arguments(parser):
    _study.add_data_arguments(parser, samples=500, hidden="16-16")
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
    _study.add_progress(parser)


def run(args):
    _study.check_bounds(args, above_zero=("start_lr", "end_lr"))
    if not args.start_lr < args.end_lr:
        raise UsageError(f"--start-lr ({args.start_lr:g}) must be below --end-lr "
                         f"({args.end_lr:g}).")
    _study.check_bounds(args, minimum={"num_iter": 5, "epochs": 1, "batch_size": 1})
    _schedules.check(args.schedule, args.epochs)
    study = _study.mlp_study(args, "the range test needs a first-order optimizer with a "
                                   "learning rate (sgd, momentum, adam, ...).", needs_lr=True)
    spec = study.spec
    with _study.progress(args, args.num_iter, "range test") as tick, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # result.message is printed below
        result = lr_finder.lr_range_test(
            study.model, study.loss_fn, spec.build(study.model.parameters()), (study.X, study.y),
            start_lr=args.start_lr, end_lr=args.end_lr, num_iter=args.num_iter,
            step_mode=args.mode, batch_size=args.batch_size, seed=args.seed, progress=tick)
    print(f"range test of {spec.name} on {args.data}: {len(result.lrs)} mini-batches from "
          f"{args.start_lr:g} to {args.end_lr:g} ({result.stop_reason})")
    if result.message is not None:
        print(result.message)
    else:
        print(f"suggested lr (steepest descent of the smoothed loss): {result.suggestion:.3g}")
        print(f"lr at the minimum of the smoothed loss / 10: {result.min_loss_lr:.3g}")
    clean = lambda v: None if not math.isfinite(v) else float(v)
    schedule = _schedule_from(args, spec, result)
    written = study.outputs
    written.json("lr_finder.json", {
        "optimizer": spec.label, "lrs": result.lrs.tolist(),
        "losses": [clean(v) for v in result.losses],
        "smoothed": [clean(v) for v in result.smoothed], "suggestion": clean(result.suggestion),
        "min_loss_lr": clean(result.min_loss_lr), "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason, "message": result.message, "schedule": schedule})
    plots = _study.plots_or_none()
    if plots is not None:
        plots.lr_finder(result, written.path("lr_finder.png"))
        if args.schedules:
            plots.schedule_gallery(lr_finder.schedule_curves(100), written.path("schedules.png"))
        if schedule is not None:
            plots.schedule_gallery({f"{args.schedule} from lr {result.suggestion:.3g}":
                                    schedule["lrs"]}, written.path("schedule.png"))
    written.report()
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
