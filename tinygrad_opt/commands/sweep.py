"""``tinygrad-opt sweep``: grid or random search over optimizers, learning rates and seeds.

    tinygrad-opt sweep                                     # 12 random trials, local pool
    tinygrad-opt sweep --optimizers sgd,momentum,adam --lr 1e-4:1 --trials 30 --seeds 3
    tinygrad-opt sweep --search grid --grid-points 5 --cv 5
    tinygrad-opt sweep --scheduler tcp://scheduler-host:8786   # on a Dask cluster

Each trial trains an MLP on the moons (``study.sweep.train_trial``) and is scored
by its validation loss (a 25% validation split, or --cv K folds). Trials run on
a local process pool of --workers processes, or on the Dask cluster at
--scheduler (checked before anything is written; connecting gives up after
--connect-timeout seconds); each finished trial is appended to --results at once,
so running the same command again resumes (finished trials are skipped; --fresh
starts over). A results file that holds another sweep (other configurations) is
refused rather than mixed with this one. Prints the table of configurations by
mean score over the seeds (with --cv, also each fold's score and the mean ± std over
folds) and draws scores.png next to the results.
"""

import os

from ..study import sweep
from . import _study
from ._study import mini_batch, optimizers, usage

HELP = "grid/random hyperparameter search on a process pool or a Dask cluster, resumable"


def add_arguments(parser):
    parser.add_argument("--optimizers", default="sgd,momentum,adam", metavar="LIST",
                        help="optimizers to compare (default sgd,momentum,adam)")
    parser.add_argument("--lr", default="1e-4:1", metavar="LO:HI",
                        help="learning-rate range, log-uniform (default 1e-4:1)")
    parser.add_argument("--search", choices=("random", "grid"), default="random",
                        help="random (default) or grid search")
    parser.add_argument("--trials", type=int, default=12,
                        help="random search: configurations to draw (12)")
    parser.add_argument("--grid-points", type=int, default=4,
                        help="grid search: learning rates per optimizer (4)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per configuration (1)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (20)")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="score by K-fold cross validation (default: a validation split)")
    parser.add_argument("--data", default="moons",
                        help="moons (default), circles, spirals, xor, blobs")
    parser.add_argument("--samples", type=int, default=300, help="points (300)")
    parser.add_argument("--hidden", default="16-16", help="hidden widths (16-16)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local processes (default: the CPU count)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask cluster: its scheduler address, tcp://host:8786")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="give up on an unreachable --scheduler after this long (10)")
    parser.add_argument("--serial", action="store_true", help="run in this process")
    parser.add_argument("--retries", type=int, default=2,
                        help="extra attempts for a failing trial or a dead worker (2)")
    parser.add_argument("--results", default="runs/sweep/results.jsonl", metavar="FILE",
                        help="JSON-lines results file, appended and resumed "
                             "(runs/sweep/results.jsonl)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete --results first instead of resuming it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random search (0)")
    _study.add_progress(parser)


def _lr_range(text):
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise usage(f"--lr expects LO:HI such as 1e-4:1, got {text!r}.") from None
    if not 0 < lo < hi:
        raise usage(f"--lr {text}: need 0 < LO < HI (a negative or zero learning rate has no "
                    "log scale).")
    return lo, hi


def run(args):
    chosen = optimizers(args.optimizers)
    for spec in chosen:
        mini_batch(spec, f"--optimizers: {spec.name} cannot train with mini-batches; sweep "
                         "first-order optimizers (sgd, momentum, adam, ...).", needs_lr=True)
    lo, hi = _lr_range(args.lr)
    _study.check_bounds(args, minimum={"trials": 1, "grid_points": 1, "seeds": 1, "epochs": 1,
                                       "retries": 0, "samples": 20, "workers": 1},
                        above_zero=("connect_timeout",))
    if args.cv == 1 or args.cv < 0:
        raise usage(f"--cv must be 0 (a validation split) or at least 2 folds, got {args.cv}.")
    if args.data not in sweep.DATASETS:
        raise usage(f"--data must be one of {', '.join(sweep.DATASETS)}, got {args.data!r}.")
    if args.scheduler and args.serial:
        raise usage("--scheduler and --serial exclude each other.")
    if args.scheduler and not sweep.is_scheduler_address(args.scheduler):
        raise usage(f"--scheduler {args.scheduler!r} is not a Dask scheduler address; give "
                    "protocol://host:port, such as tcp://scheduler-host:8786.")
    _study.sizes(args.hidden, 2, 2)  # validates the text
    folder = os.path.dirname(os.path.abspath(args.results))
    space = {"optimizer": [s.name + (":" + ",".join(f"{k}={v}" for k, v in s.given.items())
                                     if s.given else "") for s in chosen],
             "lr": sweep.LogUniform(lo, hi, n=args.grid_points),
             "seed": list(range(args.seeds)), "epochs": args.epochs, "cv": args.cv,
             "dataset": args.data, "n_samples": args.samples, "hidden": args.hidden}
    if args.search == "grid":
        base = sweep.grid_configs({k: v for k, v in space.items() if k != "seed"})
    else:
        base = sweep.random_configs({k: v for k, v in space.items() if k != "seed"},
                                    args.trials, seed=args.seed)
    configs = [dict(c, seed=s) for c in base for s in space["seed"]]
    executor = args.scheduler or ("serial" if args.serial else "process")
    where = (f"Dask cluster at {args.scheduler}" if args.scheduler else
             "this process" if args.serial else
             f"{args.workers or os.cpu_count()} local processes")
    created = _study.new_folders(folder)
    _study.out_dir(folder, "--results")
    if args.fresh and os.path.exists(args.results):
        os.remove(args.results)
    print(f"{args.search} search: {len(configs)} trials on {where}; results in {args.results}")
    try:
        result = sweep.run_sweep(configs, results=args.results, executor=executor,
                                 workers=args.workers, retries=args.retries,
                                 progress=not args.no_progress,
                                 connect_timeout=args.connect_timeout)
    except (sweep.SchedulerError, ValueError) as error:
        _study.remove_empty(created)
        message = str(error).removeprefix("run_sweep: ")
        if isinstance(error, ValueError):
            message = message.replace("pass extend=True to add to it",
                                      "use --fresh to replace it")
        raise usage(message) from None
    print(result.format_table())
    rows = result.summary()
    if rows and rows[0]["mean"] < float("inf"):
        b = rows[0]
        print(f"best configuration: {b['config'].get('optimizer')} lr "
              f"{b['config'].get('lr', float('nan')):.4g}: validation loss {b['mean']:.4f}"
              + (f" ± {b['std']:.4f} over {b['n']} seeds" if b["n"] > 1 else "")
              + f", accuracy {b['val_acc']:.3f}")
        if len(b["fold_scores"]) > b["n"]:
            folds = b["fold_scores"]
            seeds = f"{b['n']} seed" + ("s" if b["n"] > 1 else "")
            print(f"its {len(folds)} fold scores ({len(folds) // b['n']} folds × {seeds}): "
                  + ", ".join(f"{f:.4f}" for f in folds)
                  + f" (mean {sum(folds) / len(folds):.4f} ± {b['fold_std']:.4f} over folds)")
    plots = _study.plots_or_none()
    if plots is not None and len(result):
        path = plots.sweep_scatter(result, os.path.join(folder, "scores.png"))
        print(f"wrote {path}")
    return 0
