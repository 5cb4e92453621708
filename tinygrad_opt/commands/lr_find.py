"""``tinygrad-opt lr-find``: the learning-rate range test, and the gallery of schedules.

    tinygrad-opt lr-find                                  # moons, SGD with momentum 0.9
    tinygrad-opt lr-find --optimizer adam --start-lr 1e-6 --end-lr 1 --num-iter 200
    tinygrad-opt lr-find --schedules                      # also draw every lr_scheduler

Trains a fresh MLP for --num-iter mini-batches while the learning rate grows
exponentially from --start-lr to --end-lr, stops when the smoothed loss exceeds
5× its minimum, and suggests the lr where the smoothed loss falls fastest
(``tinygrad_opt.study.lr_finder``). Writes lr_finder.png and lr_finder.json (and
schedules.png with --schedules) into --out.
"""

HELP = "learning-rate range test (Leslie Smith) with a suggested lr; gallery of schedules"


def add_arguments(parser):
    from ._study import add_data_arguments, add_progress

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
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", "-o", default="runs/lr_find", metavar="DIR",
                        help="folder for the pictures and lr_finder.json (runs/lr_find)")
    add_progress(parser)


def run(args):
    import json
    import math
    import os

    import tinygrad_opt as tg

    from .. import nn
    from ..cli import UsageError
    from ..study import lr_finder
    from ._study import (
        at_least,
        bar,
        loss_for,
        mini_batch,
        mlp_data,
        optimizer,
        out_dir,
        plots_or_none,
        positive,
    )

    positive(args.start_lr, "--start-lr")
    positive(args.end_lr, "--end-lr")
    if not args.start_lr < args.end_lr:
        raise UsageError(f"--start-lr ({args.start_lr:g}) must be below --end-lr "
                         f"({args.end_lr:g}).")
    at_least(args.num_iter, 5, "--num-iter")
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
        result = lr_finder.lr_range_test(
            model, loss_for(y), spec.build(model.parameters()), (X, y),
            start_lr=args.start_lr, end_lr=args.end_lr, num_iter=args.num_iter,
            step_mode=args.mode, batch_size=args.batch_size, seed=args.seed,
            progress=None if progress is None else (lambda i: progress.update(1)))
    finally:
        if progress is not None:
            progress.close()
    stop = (f"stopped at lr {result.lrs[-1]:.3g}: the loss diverged" if result.stopped_early
            else f"ran all {len(result.lrs)} steps")
    print(f"range test of {spec.name} on {args.data}: {len(result.lrs)} mini-batches from "
          f"{args.start_lr:g} to {args.end_lr:g} ({stop})")
    print(f"suggested lr (steepest descent of the smoothed loss): {result.suggestion:.3g}")
    print(f"lr at the minimum of the smoothed loss / 10: {result.min_loss_lr:.3g}")
    clean = lambda v: None if not math.isfinite(v) else float(v)
    with open(os.path.join(args.out, "lr_finder.json"), "w", encoding="utf-8") as handle:
        json.dump({"optimizer": spec.label, "lrs": result.lrs.tolist(),
                   "losses": [clean(v) for v in result.losses],
                   "smoothed": [clean(v) for v in result.smoothed],
                   "suggestion": clean(result.suggestion),
                   "min_loss_lr": clean(result.min_loss_lr),
                   "stopped_early": result.stopped_early}, handle)
    written = ["lr_finder.json"]
    plots = plots_or_none()
    if plots is not None:
        plots.lr_finder(result, os.path.join(args.out, "lr_finder.png"))
        written.append("lr_finder.png")
        if args.schedules:
            plots.schedule_gallery(lr_finder.schedule_curves(100),
                                   os.path.join(args.out, "schedules.png"))
            written.append("schedules.png")
    print(f"wrote {', '.join(written)} in {args.out}")
    return 0
