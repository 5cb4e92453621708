"""``tinygrad-opt demo``: the course's pictures, made live, in one HTML report.

    from tinygrad_opt.study.demo import run_demo
    summary = run_demo("runs/demo")          # writes runs/demo/report.html

In about half a minute on two cores it

1. trains an MLP on the two moons with several optimizers (loss curves raw and
   smoothed, train/validation curves, decision boundaries; the test split is
   scored once, for the model the validation loss picks);
2. draws the compute graph of the loss (SVG when Graphviz's ``dot`` is there, the
   DOT text otherwise);
3. races first- and second-order optimizers on Rosenbrock and on an
   ill-conditioned quadratic (κ = 50, rotated 30°, started where exact-line-search
   GD zigzags longest), with learning rates tuned by a small grid search ("fair"
   races): contours with paths and line-search trials, convergence curves, an
   animated GIF, the steps-to-tolerance table;
4. runs the Hessian lab on the trained network (exact spectrum, rank, κ where a
   spectral gap defines it, negative eigenvalues, Lanczos, Hutchinson) and the
   edge-of-stability experiment;
5. runs the learning-rate range test and draws every schedule;

and writes ``report.html`` (pictures embedded) plus the pictures themselves into
``out``. Every sentence of the report that states a result is built from the
numbers just measured (``hessian_lab.describe_edge_of_stability``, the race
tables, the lab's summary), so the text cannot claim what the run did not show.
``quick=True`` shrinks every budget (for tests).
"""

import dataclasses
import math
import os
import sys
import time

import numpy as np

import tinygrad_opt as tg

from .. import draw, nn, optim
from ..data import make_moons, train_val_test_split
from ..train import evaluate, fit, progress_bar
from . import hessian_lab, lr_finder, plots, race, specs
from .hessian_lab import GRAD_TOL
from .race import format_rows
from .report import Report

__all__ = ["STAGES", "run_demo"]

STAGES = ("training", "graph", "races", "hessian", "learning rates", "report")

# The ill-conditioned race: κ = 50 rotated 30°, started at (u, v) = (-5, -0.2) in the
# eigenbasis (v = 2u/κ, near the worst case v = u/κ), where GD with exact line search
# zigzags across the valley for over a hundred steps; Newton-CG and BFGS need a few.
QUADRATIC = "quadratic:kappa=50,angle=30"
QUADRATIC_START = (-4.23, -2.67)
EOS_LR = 0.4  # a fresh 2-32-32-2 tanh net starts at λmax ≈ 2, well below 2/η = 5


class _Stages:
    """A tqdm bar over the stages (on a terminal), else nothing."""

    def __init__(self, enabled):
        self.bar = progress_bar(enabled, len(STAGES))
        self.times = {}
        self._name, self._start = None, None

    def start(self, name):
        self._finish()
        self._name, self._start = name, time.perf_counter()
        if self.bar is not None:
            self.bar.set_description(name)

    def _finish(self):
        if self._name is not None:
            self.times[self._name] = time.perf_counter() - self._start
            if self.bar is not None:
                self.bar.update(1)
        self._name = None

    def close(self):
        self._finish()
        if self.bar is not None:
            self.bar.close()


def _moons(n, seed):
    X, y = make_moons(n, noise=0.25, seed=seed)
    return train_val_test_split(X, y, seed=seed)


def _train(split, quick, seed):
    """{label: (model, history)} for the moons, one per optimizer."""
    # momentum at lr·(1−β) = SGD's lr: the same effective step, so the comparison
    # shows what the velocity adds, not a ten times larger step
    runs = {"sgd": "sgd:lr=0.1", "momentum": "momentum:lr=0.01", "rmsprop": "rmsprop:lr=0.01",
            "adam": "adam:lr=0.01"}
    epochs = 3 if quick else 60
    out = {}
    for label, text in runs.items():
        tg.manual_seed(seed)
        model = nn.MLP([2, 16, 16, 2], activation="tanh")
        optimizer = specs.parse(text).build(model.parameters())
        history = fit(model, nn.functional.cross_entropy, optimizer, split.train, split.val,
                      epochs=epochs, batch_size=32, seed=seed, progress=False)
        out[f"{label} (lr {optimizer.param_groups[0]['lr']:g})"] = (model, history)
    return out


def _graph(model, split, folder):
    """Render the loss graph of a 4-sample batch: (path or None, the report's figure
    HTML or None, DOT text, stats)."""
    X, y = split.train
    loss = nn.functional.cross_entropy(model(tg.Tensor(X[:4])), tg.Tensor(y[:4]))
    loss.name = "loss"
    digraph = tg.draw_graph(loss, params=model, mode="forward", show_data=False, fit=True)
    path = figure = None
    if draw.dot_available():
        path = draw.render(digraph, os.path.join(folder, "graph.svg"))
        figure = draw.html_figure(loss, params=model, show_data=False, caption=(
            f"{digraph.stats['tensors']} tensors, {digraph.stats['ops']} ops."))
    return path, figure, digraph.source, digraph.stats


@dataclasses.dataclass
class _Demo:
    """What the demo's parts share: the options, the report being written, the summary
    being filled, and what one part leaves for the next (the data, the chosen model)."""

    folder: str
    quick: bool
    seed: int
    report: Report
    summary: dict
    split: object = None  # the moons' train/validation/test split (from the training)
    best_model: object = None  # the network the validation loss picked (from the training)

    def path(self, name):
        """Where the picture ``name`` goes."""
        return os.path.join(self.folder, name)


def run_demo(out="runs/demo", quick=False, seed=0, progress=True, echo=print):
    """Run the demo; returns a summary dict (times, tables, numbers, the report's path)."""
    began = time.perf_counter()
    folder = os.fspath(out)
    os.makedirs(folder, exist_ok=True)
    report = Report("tinygrad_opt: optimizers, live",
                    "Every picture below was computed just now by tinygrad_opt's own "
                    "autograd engine and optimizers.")
    demo = _Demo(folder, quick, seed, report, summary={"out": folder})
    parts = (_training_part, _graph_part, _races_part, _hessian_part, _learning_rates_part,
             _report_part)
    stages = _Stages(progress)
    try:
        for name, part in zip(STAGES, parts, strict=True):
            stages.start(name)
            part(demo)
    finally:
        stages.close()
    summary = demo.summary
    summary["times"] = stages.times
    summary["seconds"] = time.perf_counter() - began
    if echo is not None:
        echo(format_summary(summary))
    return summary


# 1. training ---------------------------------------------------------------------------------

def _training_part(demo):
    """Train one MLP per optimizer, pick one by validation loss, score it once on the test
    split, and write section 1; leaves the split and the chosen model on ``demo``."""
    split = demo.split = _moons(150 if demo.quick else 500, demo.seed)
    trained = _train(split, demo.quick, demo.seed)
    rows = [[label, h.train_loss[-1], h.val_loss[-1], h.val_acc[-1]]
            for label, (model, h) in trained.items()]
    best_label = min(trained, key=lambda k: trained[k][1].val_loss[-1])
    demo.best_model = trained[best_label][0]
    test = evaluate(demo.best_model, nn.functional.cross_entropy, split.test)
    demo.summary["training"] = {"rows": rows, "best": best_label, "test_acc": test["acc"]}
    pictures = _training_pictures(trained, split, demo)
    s = demo.report.section("1. Training an MLP on the two moons",
                            f"An MLP 2-16-16-2 (tanh) trained with mini-batches of 32 on "
                            f"{len(split.train[0])} points, validated on {len(split.val[0])}. "
                            "Momentum (β = 0.9) runs at lr·(1−β) = 0.01, the effective step of "
                            "SGD's lr = 0.1, so the two are compared fairly.")
    s.table(["Optimizer", "Train loss", "Validation loss", "Validation accuracy"], rows)
    s.text(f"The validation loss picks {best_label}; on the {len(split.test[0])} test "
           f"points it scores an accuracy of {test['acc']:.3f} (the test split is used "
           "once, for the chosen model only).")
    p_loss, p_tv, p_db = pictures
    s.image(p_loss, "Training loss per iteration: raw (faint) and exponentially smoothed.")
    s.image(p_tv, "Train (solid) and validation (dashed) curves per epoch.")
    s.image(p_db, "Decision boundaries: the predicted probability of class 1 (colour "
                  "key on the right, black line at p = 0.5); circles and squares are the "
                  "two classes, black rings the misclassified points.")


def _training_pictures(trained, split, demo):
    """The loss curves, the train/validation curves and the decision boundaries (over the
    train and validation points; the test split stays unseen): their paths."""
    histories = {k: h for k, (m, h) in trained.items()}
    p_loss = plots.loss_curves(histories, demo.path("loss_curves.png"))
    p_tv = plots.train_val_curves(histories, demo.path("train_val.png"))
    X_all = np.concatenate([split.train[0], split.val[0]])
    y_all = np.concatenate([split.train[1], split.val[1]])
    p_db = plots.decision_boundaries({k: m for k, (m, h) in trained.items()}, X_all, y_all,
                                     demo.path("decision_boundaries.png"))
    return p_loss, p_tv, p_db


# 2. graph ------------------------------------------------------------------------------------

def _graph_part(demo):
    """Section 2: the compute graph of the chosen network's loss (SVG, else DOT text)."""
    g_path, g_figure, g_source, g_stats = _graph(demo.best_model, demo.split, demo.folder)
    s = demo.report.section("2. The compute graph of the loss",
                            "The forward graph of the cross-entropy loss of the chosen "
                            "network on a batch of 4 points; modules are grouped.")
    if g_figure is not None:
        s.raw(g_figure)  # the SVG at 100%, legible; the whole graph one click away
    else:
        s.note("Graphviz's dot is not installed, so here is the DOT text instead "
               "(sudo apt-get install graphviz renders it).")
        s.pre(g_source)
    demo.summary["graph"] = {"path": g_path, **{k: g_stats[k] for k in ("tensors", "ops")}}


# 3. races ------------------------------------------------------------------------------------

def _races_part(demo):
    """Sections 3a and 3b: first- and second-order optimizers raced on Rosenbrock and on
    the ill-conditioned quadratic, learning rates tuned unless ``quick``."""
    steps = 30 if demo.quick else 300
    races = {
        "rosenbrock": race.race("rosenbrock", ["sgd", "momentum", "nesterov", "adam",
                                               "rmsprop", "newton", "bfgs", "lbfgs", "lm"],
                                steps=steps, fair=not demo.quick),
        "quadratic": race.race(QUADRATIC, ["sgd", "momentum", "gd-exact", "newton-cg", "bfgs"],
                               start=QUADRATIC_START, steps=steps, fair=not demo.quick),
    }
    demo.summary["races"] = {}
    for letter, (name, result) in zip("ab", races.items()):
        _race_section(demo, f"3{letter}", name, result)
        demo.summary["races"][name] = result.table()


def _race_section(demo, number, name, result):
    """One race's section: its table, contours with the paths, convergence curves, and
    the zigzag sentence (quadratic) or the animation (Rosenbrock)."""
    p_c = plots.race_contour(result, demo.path(f"race_{name}.png"))
    p_k = plots.race_curves(result, demo.path(f"race_{name}_curves.png"))
    s = demo.report.section(f"{number}. Race on {result.landscape.title}",
                            f"{_capital(result.landscape.note)}. Every optimizer starts at "
                            f"({result.start[0]:g}, {result.start[1]:g}) with "
                            f"{result.steps} steps; first-order learning rates were "
                            + ("tuned by a grid search over lr·10^(k/2), k = -4..2."
                               if result.fair else "left at the landscape's default."))
    s.table(["Optimizer", "Learning rate", f"Steps to f − f* ≤ {result.tol:g}",
             "Evaluations to tolerance", "Final f − f*", "Status"],
            [[r["optimizer"], r["lr"], r["steps_to_tol"], r["evals_to_tol"],
              r["final_loss"], r["status"]] for r in result.table()])
    if name == "quadratic":
        s.text(_zigzag_sentence(result))
    s.image(p_c, "Paths: one colour, line style and marker per optimizer (markers "
                 "thinned on long paths); crosses are line-search trial points, the "
                 "white dot the start, the star the minimum.")
    s.image(p_k, "The gap f − f* and the distance to the minimum, per step and per "
                 "function evaluation.")
    if name == "rosenbrock":
        p_g = plots.race_gif(result, demo.path("race_rosenbrock.gif"),
                             frames=6 if demo.quick else 30)
        s.image(p_g, "The race, animated (log-spaced steps: the early ones get more "
                     "frames).")


# 4. Hessian lab ------------------------------------------------------------------------------

def _hessian_part(demo):
    """Section 4: the Hessian lab on the chosen network, then the edge-of-stability run
    on a fresh one."""
    X_tr, y_tr = demo.split.train
    lab = hessian_lab.analyze(demo.best_model, nn.functional.cross_entropy, X_tr, y_tr, k=5,
                              samples=20 if demo.quick else 100, seed=demo.seed)
    p_sp = plots.spectrum(lab, demo.path("spectrum.png"))
    tg.manual_seed(demo.seed)
    fresh = nn.MLP([2, 32, 32, 2], activation="tanh")
    eos = hessian_lab.edge_of_stability(fresh, nn.functional.cross_entropy, X_tr, y_tr,
                                        lr=EOS_LR, steps=100 if demo.quick else 1500,
                                        every=25, seed=demo.seed)
    p_eos = plots.sharpness(eos, demo.path("edge_of_stability.png"))
    s = demo.report.section("4. The Hessian lab",
                            f"The exact Hessian of the training loss of the chosen network "
                            f"({lab.n} parameters) by double backward, its eigenvalues, and "
                            "what Hessian-vector products alone find.")
    s.table(["Quantity", "Value"], lab.rows())
    s.text(_curvature_sentence(lab))
    s.text(_lanczos_sentence(lab))
    s.image(p_sp, "Left: a histogram of log10|λ| over all eigenvalues (blue λ > 0, red "
                  "λ < 0 by |λ|; the dashed line is the float64 zero cutoff). Right: the "
                  "top eigenvalues, exact against Lanczos.")
    eos_sentences, eos_numbers = hessian_lab.describe_edge_of_stability(eos)
    s.text("Edge of stability (Cohen et al., 2021), on a fresh 2-32-32-2 tanh network. "
           + " ".join(eos_sentences))
    s.image(p_eos, f"Sharpness (λmax by Lanczos every {int(eos.steps[1] - eos.steps[0])} "
                   "steps) against 2/η (red dashed line; shaded above it), and the "
                   "training loss.")
    demo.summary["hessian"] = _hessian_summary(lab, eos, eos_sentences, eos_numbers)


def _hessian_summary(lab, eos, eos_sentences, eos_numbers):
    """The Hessian lab's and the edge-of-stability run's numbers for the summary dict."""
    summary = {k: getattr(lab, k) for k in
               ("n", "lam_max", "lam_min", "condition", "n_negative", "kind", "trace",
                "trace_estimate")}
    summary["lanczos_top"] = float(lab.lanczos.eigenvalues[0])
    summary["condition_note"] = lab.condition_note
    summary["eos_max_sharpness"] = float(np.max(eos.sharpness))
    summary["eos_threshold"] = eos.threshold
    summary["eos_sentences"] = eos_sentences
    summary["eos_numbers"] = eos_numbers
    return summary


# 5. learning rates ---------------------------------------------------------------------------

def _learning_rates_part(demo):
    """Section 5: the learning-rate range test on a fresh network, and every schedule."""
    tg.manual_seed(demo.seed)
    model = nn.MLP([2, 16, 16, 2], activation="tanh")
    finder = lr_finder.lr_range_test(model, nn.functional.cross_entropy,
                                     optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                     demo.split.train, start_lr=1e-4, end_lr=10,
                                     num_iter=30 if demo.quick else 150, seed=demo.seed)
    p_lr = plots.lr_finder(finder, demo.path("lr_finder.png"))
    curves = lr_finder.schedule_curves(100)
    p_sched = plots.schedule_gallery(curves, demo.path("schedules.png"))
    s = demo.report.section("5. Learning rates",
                            f"The range test (Smith 2017) raises the learning rate "
                            f"exponentially from {finder.lrs[0]:g} while training a fresh "
                            "network with SGD and momentum, and suggests the lr where the "
                            "smoothed loss falls fastest.")
    s.text(_range_test_sentence(finder))
    s.image(p_lr, "Loss against learning rate (log scale): faint per batch, bold "
                  "smoothed; the dashed red line (upper half) and the dotted purple line "
                  "(lower half) are the two suggestions, with a dot on the curve each.")
    s.image(p_sched, f"All {len(curves)} schedules of optim.lr_scheduler, over 100 epochs "
                     "from lr = 0.1.")
    demo.summary["lr_finder"] = {"suggestion": finder.suggestion,
                                 "min_loss_lr": finder.min_loss_lr}


# 6. the report -------------------------------------------------------------------------------

def _report_part(demo):
    """The closing section (how to reproduce the run), then ``report.html`` itself."""
    s = demo.report.section("How this was made")
    s.text("Made by tinygrad-opt demo" + (" --quick" if demo.quick else "")
           + f" (seed {demo.seed}); every number above is reproducible with the same command. "
           f"Python {sys.version.split()[0]}, NumPy {np.__version__}.")
    demo.summary["report"] = demo.report.write(demo.path("report.html"))


def _capital(text):
    """``text`` with its first letter capitalised (a sentence of the report)."""
    return text[:1].upper() + text[1:]


def _zigzag_sentence(result):
    """What the ill-conditioned race shows about exact-line-search GD, from its table."""
    rows = {r["optimizer"]: r for r in result.table()}
    gd = rows.get("gd-exact")
    fast = {k: rows[k]["steps_to_tol"] for k in ("newton-cg", "bfgs")
            if k in rows and rows[k]["steps_to_tol"]}
    if gd is None or not fast:
        return "Exact-line-search GD and Newton-CG/BFGS were not all in this race."
    quick = max(fast.values())
    named = " and ".join(f"{k} {v}" for k, v in fast.items())
    if gd["steps_to_tol"] is None:
        return (f"Gradient descent with exact line search zigzags across the valley and does "
                f"not reach the tolerance in {result.steps} steps; {named} steps suffice "
                "for the others.")
    return (f"Gradient descent with exact line search zigzags across the valley: it needs "
            f"{gd['steps_to_tol']} steps to the tolerance where {named} suffice "
            f"({gd['steps_to_tol'] / quick:.0f}× as many as the slower of them).")


def _curvature_sentence(lab):
    """The lab's verdict in words, from its numbers."""
    where = ("a critical point" if lab.critical else "not a critical point")
    return (f"The gradient norm is {lab.grad_norm:.3g}, so this is {where} (the lab "
            f"calls ‖∇L‖ ≤ {GRAD_TOL:g} critical); the curvature reads "
            f"\"{lab.kind}\". The numerical rank is {lab.rank} of {lab.n} (eigenvalues above "
            f"n·ε·λmax = {lab.zero_tol:.1e}); κ = λmax/λmin⁺ is {lab.condition_note}.")


def _lanczos_sentence(lab):
    """What Hessian-vector products alone found, against the exact spectrum."""
    error = float(np.abs(lab.lanczos.eigenvalues[0] - lab.lam_max))
    return (f"Lanczos finds λmax = {lab.lanczos.eigenvalues[0]:.8g} with "
            f"{lab.lanczos.iterations} Hessian-vector products (error {error:.1e} "
            f"against the exact spectrum); Hutchinson estimates the trace "
            f"{lab.trace_estimate:.4g} ± {lab.trace_stderr:.2g} (exact {lab.trace:.4g}).")


def _range_test_sentence(finder):
    """How the range test ended and what it suggests (or why it suggests nothing)."""
    return (f"It ran {len(finder.lrs)} mini-batches up to lr {finder.lrs[-1]:.3g} and "
            f"ended because {finder.stop_reason}. "
            + (_capital(finder.message) if finder.message else
               f"Suggested lr: {finder.suggestion:.3g} (steepest descent of the smoothed "
               f"loss); the lr of the smoothed minimum divided by ten gives "
               f"{finder.min_loss_lr:.3g}."))


def format_summary(summary):
    """The terminal summary: one small table per part, and where the report is."""
    lines = []
    t = summary.get("training")
    if t:
        lines.append("Training on the moons (MLP 2-16-16-2):")
        lines.append(format_rows(["optimizer", "train loss", "val loss", "val acc"],
                                 [[r[0], f"{r[1]:.4f}", f"{r[2]:.4f}", f"{r[3]:.3f}"]
                                  for r in t["rows"]]))
        lines.append(f"chosen by validation loss: {t['best']}; test accuracy "
                     f"{t['test_acc']:.3f}")
    for name, rows in summary.get("races", {}).items():
        lines.append("")
        lines.append(f"Race on {name}:")
        lines.append(format_rows(
            ["optimizer", "lr", "steps→tol", "evals→tol", "final f"],
            [[r["optimizer"], "—" if r["lr"] is None else f"{r['lr']:.3g}",
              "—" if r["steps_to_tol"] is None else r["steps_to_tol"],
              "—" if r["evals_to_tol"] is None else r["evals_to_tol"],
              f"{r['final_loss']:.3e}"] for r in rows]))
    h = summary.get("hessian")
    if h:
        lines.append("")
        lines.append(f"Hessian lab: {h['n']} parameters, λmax {h['lam_max']:.6g} (Lanczos "
                     f"{h['lanczos_top']:.6g}), κ {h['condition_note']}, {h['n_negative']} "
                     f"negative eigenvalues ({h['kind']}), trace {h['trace']:.4g} "
                     f"(Hutchinson {h['trace_estimate']:.4g})")
        lines.append(f"Edge of stability: max sharpness {h['eos_max_sharpness']:.3g} against "
                     f"2/η = {h['eos_threshold']:.3g}")
    lf = summary.get("lr_finder")
    if lf:
        lines.append(f"LR range test: suggested lr {lf['suggestion']:.3g}")
    if "report" in summary:
        lines.append("")
        lines.append(f"report: {summary['report']}  ({summary.get('seconds', math.nan):.1f} s)")
    return "\n".join(lines)
