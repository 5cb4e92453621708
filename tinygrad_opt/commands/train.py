"""``tinygrad-opt train``: train an MLP on a toy data set (or your own file) with any optimizer.

    tinygrad-opt train                                    # moons, Adam, 30 epochs
    tinygrad-opt train --data spirals --hidden 64-64 --optimizer sgd:momentum=0.9 --lr 0.05 \\
        --epochs 100 --schedule cosine
    tinygrad-opt train --data points.csv --optimizer rmsprop --out runs/mine

Splits the data 60/20/20 (train/validation/test), trains with mini-batches
(``train.fit``), prints one line per epoch and the final table (the test split
is scored once, at the end), and writes into --out: history.json, curves.png
(loss raw and smoothed, train and validation curves), boundary.png for 2-D
classification, and model.npz (``tg.save`` of the model's state_dict).
"""

HELP = "train an MLP on moons/circles/spirals/... or a .csv/.npz file with any optimizer"

SCHEDULES = ("none", "cosine", "step", "exponential", "warmup-cosine", "plateau")


def add_arguments(parser):
    from ._study import DATASETS, add_data_arguments, add_progress

    add_data_arguments(parser, samples=500, hidden="16-16",
                       data_help=f"{', '.join(DATASETS)} (default moons), or a .npz (X, y) or "
                                 ".csv file (last column: the target)",
                       activation_help="relu, tanh (default), sigmoid, leaky_relu")
    parser.add_argument("--optimizer", default="adam", metavar="SPEC",
                        help="name[:key=value,...], e.g. sgd:momentum=0.9 (default adam)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (30)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (32)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="none",
                        help="learning-rate schedule per epoch (default none)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", "-o", default="runs/train", metavar="DIR",
                        help="folder for history.json, pictures and model.npz (runs/train)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    add_progress(parser)


def _scheduler(name, optimizer, epochs):
    from ..optim import lr_scheduler as S

    if name == "cosine":
        return S.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return S.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "exponential":
        return S.ExponentialLR(optimizer, gamma=0.95)
    if name == "warmup-cosine":
        warm = max(1, epochs // 10)
        return S.LinearWarmup(S.CosineAnnealingLR(optimizer, T_max=max(1, epochs - warm)),
                              warmup_steps=warm)
    if name == "plateau":
        return S.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    return None


def run(args):
    import json
    import math
    import os

    import tinygrad_opt as tg

    from .. import nn
    from ..cli import CommandError, UsageError
    from ..data import train_val_test_split
    from ..study.race import format_rows
    from ..train import DivergenceError, evaluate, fit
    from ._study import (
        at_least,
        is_classification,
        loss_for,
        mini_batch,
        mlp_data,
        optimizer,
        out_dir,
        plots_or_none,
        with_lr,
    )

    at_least(args.epochs, 1, "--epochs")
    at_least(args.batch_size, 1, "--batch-size")
    at_least(args.samples, 10, "--samples")
    spec = with_lr(optimizer(args.optimizer), args.lr)
    mini_batch(spec, f"--optimizer {spec.name} needs a closure over the whole data set; train "
                     "uses mini-batches, so pick a first-order optimizer (sgd, momentum, "
                     "adam, ...) or see `tinygrad-opt race`.")
    X, y, layer_sizes = mlp_data(args)
    classify = is_classification(y)
    out_dir(args.out)
    split = train_val_test_split(X, y, seed=args.seed)
    tg.manual_seed(args.seed)
    try:
        model = nn.MLP(layer_sizes, activation=args.activation)
    except ValueError as error:
        raise UsageError(f"--activation: {error}") from None
    opt = spec.build(model.parameters())
    sched = _scheduler(args.schedule, opt, args.epochs)
    loss_fn = loss_for(y)
    print(f"{'-'.join(map(str, layer_sizes))} MLP on {args.data} ({len(split.train[0])} train, "
          f"{len(split.val[0])} val, {len(split.test[0])} test), {spec.label}, lr "
          f"{opt.param_groups[0]['lr']:g}")
    try:
        history = fit(model, loss_fn, opt, split.train, split.val, epochs=args.epochs,
                      batch_size=args.batch_size, seed=args.seed, scheduler=sched,
                      progress=not args.no_progress, verbose=not args.quiet)
    except DivergenceError as error:
        raise CommandError(f"{error} Try a smaller --lr.") from None
    test = evaluate(model, loss_fn, split.test)
    head = ["", "loss"] + (["accuracy"] if classify else [])
    rows = [["train (last epoch)", f"{history.train_loss[-1]:.4f}"]
            + ([f"{history.train_acc[-1]:.3f}"] if classify else []),
            ["validation", f"{history.val_loss[-1]:.4f}"]
            + ([f"{history.val_acc[-1]:.3f}"] if classify else []),
            ["test", f"{test['loss']:.4f}"] + ([f"{test['acc']:.3f}"] if classify else [])]
    print(format_rows(head, rows))
    record = {"data": args.data, "sizes": layer_sizes, "optimizer": spec.label,
              "lr": opt.param_groups[0]["lr"], "epochs": args.epochs,
              "history": {k: [None if isinstance(v, float) and math.isnan(v) else v
                              for v in getattr(history, k)]
                          for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                    "lr", "time")},
              "iteration_loss": history.iteration_loss, "test": test}
    with open(os.path.join(args.out, "history.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    tg.save(model.state_dict(), os.path.join(args.out, "model.npz"))
    written = ["history.json", "model.npz"]
    plots = plots_or_none()
    if plots is not None:
        plots.loss_curves({spec.label: history}, os.path.join(args.out, "loss.png"))
        plots.train_val_curves({spec.label: history}, os.path.join(args.out, "curves.png"))
        written += ["loss.png", "curves.png"]
        if classify and X.shape[1] == 2:
            plots.decision_boundaries({spec.label: model}, X, y,
                                      os.path.join(args.out, "boundary.png"))
            written.append("boundary.png")
    print(f"wrote {', '.join(written)} in {args.out}")
    return 0
