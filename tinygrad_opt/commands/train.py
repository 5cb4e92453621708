"""``tinygrad-opt train``: train an MLP on a toy data set (or your own file) with any optimizer.

    tinygrad-opt train                                    # moons, Adam, 30 epochs
    tinygrad-opt train --data spirals --hidden 64-64 --activation relu \\
        --optimizer sgd:momentum=0.9 --lr 0.1 --epochs 100 --schedule cosine
    tinygrad-opt train --data spirals --optimizer lbfgs,adam --batch-size full,32
    tinygrad-opt train --data points.csv --optimizer rmsprop --schedule warmup:3+linear
    tinygrad-opt train --resume runs/train                # continue an interrupted run

Splits the data 60/20/20 (train/validation/test) and trains with ``train.fit``:
first-order optimizers on mini-batches, and L-BFGS, BFGS, Newton-CG, Newton,
Gauss-Newton and LM (those two on regression: they need the residual form of the
MSE) on mini-batches or the whole training set (``--batch-size full``). Several
optimizers and batch sizes train one run each, from the same initial weights, and
are compared in one table and one picture.

The table reports the validation split. The test split is scored only with
``--test``: the lecture's rule is to choose everything (optimizer, lr, epochs) on
validation and to touch the test set once, at the end.

Writes into --out (runs/train by default; one folder per run when there are
several): run.json (the settings), checkpoint.npz (after every epoch),
history.json, model.npz, and the pictures curves.png, loss.png and, for 2-D
classification, boundary.png. Ctrl-C keeps what exists (history, model, the
checkpoint of the last epoch); ``--resume DIR`` continues exactly.
"""

import argparse
import json
import math
import os
import re

import tinygrad_opt as tg

from .. import train as training  # fit looked up at call time: tests wrap it
from ..capture import CaptureError
from ..data import first_non_finite, train_val_test_split
from ..study.race import format_rows
from ..train import DivergenceError, TrainingInterrupted, evaluate
from ..train_step import closure_contract, residual_form
from . import CommandError, _schedules, _study
from ._study import usage

HELP = "train an MLP on moons/circles/spirals/... or a .csv/.npz file with any optimizer"

EPOCHS = 30
RUN_FILE, CHECKPOINT_FILE = "run.json", "checkpoint.npz"
TEST_REMINDER = ("test: scored on request (--test); choose nothing by it (the lecture: never "
                 "touch the test set during development).")


def add_arguments(parser):
    _study.add_data_arguments(
        parser, samples=500, hidden="16-16",
        data_help=f"{', '.join(_study.DATASETS)} (default moons), or a .npz (X, y) or .csv file "
                  "(last column: the target)",
        activation_help="relu, tanh (default), sigmoid, leaky_relu")
    parser.add_argument("--optimizer", default="adam", metavar="SPEC[,SPEC]",
                        help="name[:key=value,...], e.g. sgd:momentum=0.9 (the names: "
                             "tinygrad-opt race --list); first- and second-order alike: lbfgs, "
                             "bfgs, newton-cg, newton, and on regression gauss-newton and lm; "
                             "several (lbfgs,adam) train one run each from the same weights "
                             "(default adam)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    parser.add_argument("--epochs", type=int,
                        help=f"epochs (default {EPOCHS}; with --resume the saved run's, or more "
                             "to extend it)")
    parser.add_argument("--batch-size", default="32", metavar="N|full[,...]",
                        help="mini-batch size, or full for the whole training set (one step "
                             "per epoch); several, comma-separated, train one run each "
                             "(default 32)")
    parser.add_argument("--schedule", default="none", metavar="SPEC", help=_schedules.HELP)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--test", action="store_true",
                        help="also score the test split, once, at the end (default: report "
                             "validation only)")
    parser.add_argument("--out", "-o", default="runs/train", metavar="DIR",
                        help="folder for run.json, checkpoint.npz, history.json, model.npz and "
                             "the pictures (default runs/train)")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the run saved in DIR exactly, with its settings (only "
                             "--epochs, --test, --quiet and --no-progress apply)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--jit", action="store_true",
                        help="capture each first-order training step with tg.jit and replay "
                             "it (the same numbers, faster on small models)")
    _study.add_progress(parser)


# -- settings -----------------------------------------------------------------------------------


def _batch_sizes(text):
    """``"full,32"`` -> [None, 32] (None: the whole training set)."""
    sizes = []
    for item in (part.strip().lower() for part in str(text).split(",")):
        if item == "full":
            sizes.append(None)
        elif item.isdigit() and int(item) >= 1:
            sizes.append(int(item))
        else:
            raise usage(f"--batch-size expects sizes of at least 1 or 'full', comma-separated; "
                        f"got {text!r}.")
    return sizes


def spec_text(spec):
    """The ``--optimizer`` text that parses back into ``spec``."""
    if not spec.given:
        return spec.name

    def show(value):  # repr keeps every digit of a float; betas are written 0.9/0.999
        if isinstance(value, (tuple, list)):
            return "/".join(map(repr, value))
        return value if isinstance(value, str) else repr(value)

    return spec.name + ":" + ",".join(f"{k}={show(v)}" for k, v in spec.given.items())


def _check_data(name, X, y):
    """Refuse NaN/inf in the data file, naming the row as the file counts it."""
    for array, what in ((X, "inputs"), (y, "target column")):
        found = first_non_finite(array)
        if found is not None:
            row, value = found
            raise usage(f"--data {name}: data row {row + 1} (counting from 1, header excluded) "
                        f"holds {value} in its {what}; drop or fill that row, since with it "
                        "every loss is nan whatever the learning rate.")


def _run_label(spec, batch, several_batches):
    if not several_batches:
        return spec.label
    return f"{spec.label}, {'full batch' if batch is None else f'batch {batch}'}"


def _folder_name(label):
    """``"sgd lr=0.1, batch 32"`` -> ``"sgd-lr=0.1-batch-32"``: a safe folder name."""
    return re.sub(r"[^\w.=]+", "-", label).strip("-")


# -- one run ------------------------------------------------------------------------------------


class _Run:
    """One training run: built (and checked) from its settings first, trained later, so
    that a bad setting fails before anything is written."""

    def __init__(self, settings, folder):
        self.settings, self.folder, self.label = settings, folder, settings["label"]
        X, y, self.layer_sizes = _study.mlp_data(argparse.Namespace(**settings))
        self.split = train_val_test_split(X, y, seed=settings["seed"])
        self.model = _study.seeded_mlp(self.layer_sizes, settings["activation"], settings["seed"])
        spec = _study.optimizer(settings["optimizer"])
        self.optimizer = spec.build(self.model.parameters())
        self.loss_fn = _study.loss_for(y)
        if closure_contract(self.optimizer) == "residual" and residual_form(self.loss_fn) is None:
            raise usage(f"--optimizer {spec.name}: {type(self.optimizer).__name__} fits a sum of "
                        "squares and the cross entropy of a classifier has no residual form; "
                        "use it on a regression (--data sine, or a file with real targets) or "
                        "pick lbfgs, bfgs or newton-cg.")
        self.scheduler = _schedules.build(settings["schedule"], self.optimizer,
                                          settings["epochs"])
        self.history = None

    def describe(self):
        s = self.settings
        lr = self.optimizer.param_groups[0].get("lr")
        return (f"{self.label}: {'-'.join(map(str, self.layer_sizes))} MLP on {s['data']} "
                f"({len(self.split.train[0])} train, {len(self.split.val[0])} val), "
                + ("full batch" if s["batch_size"] is None else f"batch {s['batch_size']}")
                + ("" if lr is None else f", lr {lr:g}")
                + ("" if s["schedule"] == "none" else f", schedule {s['schedule']}"))

    def train(self, args, resume=False):
        """Train (or resume from the folder's checkpoint), writing the run's files."""
        print(self.describe())
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, RUN_FILE), "w", encoding="utf-8") as handle:
            json.dump(self.settings, handle, indent=1)
        checkpoint = os.path.join(self.folder, CHECKPOINT_FILE)
        try:
            self.history = training.fit(
                self.model, self.loss_fn, self.optimizer, self.split.train, self.split.val,
                epochs=self.settings["epochs"], batch_size=self.settings["batch_size"],
                seed=self.settings["seed"], scheduler=self.scheduler,
                progress=not args.no_progress, verbose=not args.quiet,
                resume=checkpoint if resume else None, checkpoint_path=checkpoint,
                jit=args.jit)
        except DivergenceError as error:
            raise CommandError(f"{error} Try a smaller --lr.") from None
        except CaptureError as error:
            raise CommandError(f"{error} (or train without --jit)") from None
        except TrainingInterrupted as stop:
            _save(self.folder, self.settings, stop.history, self.model)
            print(f"interrupted in epoch {stop.epoch}: wrote history.json "
                  f"({stop.history.epochs} epochs) and model.npz in {self.folder}; "
                  f"{CHECKPOINT_FILE} holds epoch {stop.saved_epochs}, and `tinygrad-opt train "
                  f"--resume {self.folder}` continues from there exactly.")
            raise
        _save(self.folder, self.settings, self.history, self.model)
        return self


def _save(folder, settings, history, model):
    clean = lambda values: [None if isinstance(v, float) and math.isnan(v) else v
                            for v in values]
    record = dict(settings, history={k: clean(getattr(history, k)) for k in (
        "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time")},
        iteration_loss=clean(history.iteration_loss), stop_reason=history.stop_reason)
    with open(os.path.join(folder, "history.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    tg.save(model.state_dict(), os.path.join(folder, "model.npz"))


# -- the command --------------------------------------------------------------------------------


def run(args):
    if args.resume:
        path = os.path.join(args.resume, RUN_FILE)
        if not os.path.exists(os.path.join(args.resume, CHECKPOINT_FILE)) or \
                not os.path.exists(path):
            raise usage(f"--resume {args.resume}: no {RUN_FILE} and {CHECKPOINT_FILE} there; "
                        "give the folder of a train run (its --out).")
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle)
        if args.epochs is not None:
            settings["epochs"] = _study.at_least(args.epochs, 1, "--epochs")
        runs = [_Run(settings, args.resume).train(args, resume=True)]
        _report(runs, args, args.resume)
        return 0

    epochs = _study.at_least(EPOCHS if args.epochs is None else args.epochs, 1, "--epochs")
    _study.at_least(args.samples, 10, "--samples")
    specs = [_study.with_lr(spec, args.lr)
             for spec in _study.optimizers(args.optimizer, "--optimizer")]
    batches = _batch_sizes(args.batch_size)
    _schedules.check(args.schedule, epochs)
    X, y, _ = _study.mlp_data(args)
    _check_data(args.data, X, y)
    base = {"data": args.data, "samples": args.samples, "noise": args.noise,
            "hidden": args.hidden, "activation": args.activation, "seed": args.seed,
            "epochs": epochs, "schedule": args.schedule}
    several = len(specs) * len(batches) > 1
    runs = []
    for spec in specs:
        for batch in batches:
            label = _run_label(spec, batch, len(batches) > 1)
            folder = os.path.join(args.out, _folder_name(label)) if several else args.out
            runs.append(_Run(dict(base, optimizer=spec_text(spec), batch_size=batch,
                                  label=label), folder))
    _study.out_dir(args.out)
    _report([run.train(args) for run in runs], args, args.out)
    return 0


def _report(runs, args, folder):
    """The table (validation; test with --test) and the pictures of all runs."""
    first = runs[0]
    classify = _study.is_classification(first.split.train[1])
    head = ["run", "train loss", "val loss"] + (["val acc"] if classify else [])
    if args.test:
        head += ["test loss"] + (["test acc"] if classify else [])
    rows = []
    for run in runs:
        h = run.history
        row = [run.label, f"{h.train_loss[-1]:.4f}", f"{h.val_loss[-1]:.4f}"]
        row += [f"{h.val_acc[-1]:.3f}"] if classify else []
        if args.test:
            test = evaluate(run.model, run.loss_fn, run.split.test)
            row += [f"{test['loss']:.4f}"] + ([f"{test['acc']:.3f}"] if classify else [])
        rows.append(row)
    print(format_rows(head, rows))
    if args.test:
        print(TEST_REMINDER)
    written = _study.Outputs(folder, [f"{os.path.basename(r.folder) or r.folder}/" for r in runs]
                             if len(runs) > 1 else [RUN_FILE, CHECKPOINT_FILE, "history.json",
                                                    "model.npz"])
    plots = _study.plots_or_none()
    if plots is not None:
        histories = {r.label: r.history for r in runs}
        plots.loss_curves(histories, written.path("loss.png"))
        plots.train_val_curves(histories, written.path("curves.png"))
        X, y = first.split.train
        if classify and X.shape[1] == 2:
            plots.decision_boundaries({r.label: r.model for r in runs}, X, y,
                                      written.path("boundary.png"))
    written.report()
