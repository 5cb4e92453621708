"""Optimizer races on 2-D landscapes: the same start and budget for every optimizer.

    from tinygrad_opt.study import race
    result = race.race("rosenbrock", ["sgd", "momentum", "adam", "newton", "bfgs", "lbfgs",
                                       "lm"], steps=200)
    print(result.format_table())
    plots.race_contour(result, "race.png")

Each optimizer starts from the same point with the same budget of ``steps``
calls of ``optimizer.step(closure)`` (one iteration each: L-BFGS runs with
``max_iter=1``), optionally capped at ``max_evals`` closure calls. The race
records, per optimizer (:class:`Run`):

* ``path`` -- the iterates x₀, x₁, ..., x_T (an array of shape (T+1, 2));
* ``loss`` -- f(x_k), ``gap`` -- f(x_k) - f*, ``dist`` -- ‖x_k - x*‖ to the
  nearest known minimiser (measured for the record, not counted as work);
* ``nfev`` -- closure calls (function and gradient evaluations) spent to reach
  each iterate, cumulative, with nfev[0] = 0;
* ``evals`` -- the points evaluated during each step: a first-order method
  evaluates only its iterate, a line search also the trial points
  x_k + t d it tries (``trial_points()`` lists those that were not accepted).

A run stops early when the optimizer reports convergence, when the point
leaves every sane range (``"diverged"``: non-finite or ‖x‖ > 1e6), or when f
drops below the landscape's floor (``"escaped"``, for functions unbounded below).

``fair=True`` first tunes the learning rate of every first-order optimizer by
a small log-grid search around its default (``lr·10^(k/2)``, k = -4..2): each
candidate runs the same race, and the lr that reaches the tolerance in the
fewest steps (or, if none does, ends lowest) wins -- in the spirit of
jettify/pytorch-optimizer's tuned races, with our own grid instead of TPE.
"""

import math

import numpy as np

from ..tensor import Tensor
from . import landscapes as _landscapes
from . import specs as _specs

__all__ = ["FAIR_FACTORS", "Race", "Run", "race", "run_one", "tune_lr"]

FAIR_FACTORS = tuple(10 ** (k / 2) for k in range(-4, 3))  # 0.01 ... 10, half decades
DIVERGED_NORM = 1e6


class Run:
    """One optimizer's race (see the module doc for the arrays)."""

    def __init__(self, label, spec, hyperparameters, path, loss, gap, dist, nfev, evals, status,
                 message="", record=None, tuning=None):
        self.label, self.spec, self.hyperparameters = label, spec, hyperparameters
        self.path, self.loss, self.gap, self.dist = path, loss, gap, dist
        self.nfev, self.evals = nfev, evals
        self.status, self.message = status, message
        self.record = record or {}
        self.tuning = tuning  # [(lr, score)] when fair mode tuned it

    @property
    def steps(self):
        """Steps taken (len(path) - 1)."""
        return len(self.path) - 1

    def first_below(self, tol, on="gap"):
        """The first step k with gap (or dist) <= tol, or None."""
        values = self.gap if on == "gap" else self.dist
        hit = np.flatnonzero(np.asarray(values) <= tol)
        return int(hit[0]) if hit.size else None

    def trial_points(self):
        """Points evaluated by line searches that did not become iterates: an (m, 2) array."""
        out = []
        for k, points in enumerate(self.evals):
            for p in points:
                if not (np.array_equal(p, self.path[k]) or np.array_equal(p, self.path[k + 1])):
                    out.append(p)
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)

    def to_dict(self):
        """Plain lists and numbers (for JSON)."""
        return {"label": self.label, "optimizer": self.spec.name,
                "hyperparameters": _plain(self.hyperparameters),
                "path": self.path.tolist(), "loss": _nan_none(self.loss),
                "dist": _nan_none(self.dist), "nfev": self.nfev.tolist(),
                "status": self.status, "message": self.message}

    def __repr__(self):
        return f"Run({self.label!r}, steps={self.steps}, status={self.status!r})"


def _plain(d):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _nan_none(a):
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


class Race:
    """All runs of one race, with the table of steps and evaluations to a tolerance."""

    def __init__(self, landscape, start, steps, tol, runs, max_evals=None, fair=False):
        self.landscape, self.start, self.steps, self.tol = landscape, start, steps, tol
        self.runs, self.max_evals, self.fair = runs, max_evals, fair

    def __iter__(self):
        return iter(self.runs)

    def __getitem__(self, label):
        for run in self.runs:
            if run.label == label or run.spec.name == label:
                return run
        raise KeyError(f"no run named {label!r}; the race has "
                       f"{', '.join(r.label for r in self.runs)}.")

    def table(self):
        """One row per optimizer: label, lr, steps and evaluations to reach gap <= tol
        (None if never), final f, final gap and distance, total evaluations, status."""
        rows = []
        for run in self.runs:
            k = run.first_below(self.tol) if self.landscape.f_min is not None else None
            lr = run.hyperparameters.get("lr")
            rows.append({
                "optimizer": run.label, "lr": lr,
                "steps_to_tol": k, "evals_to_tol": None if k is None else int(run.nfev[k]),
                "final_loss": float(run.loss[-1]), "final_gap": float(run.gap[-1]),
                "final_dist": float(run.dist[-1]), "steps": run.steps,
                "evals": int(run.nfev[-1]), "status": run.status})
        return rows

    def format_table(self):
        """The table as aligned text (what the command line prints)."""
        head = ["optimizer", "lr", f"steps→{self.tol:g}", "evals→tol", "final f", "‖x-x*‖",
                "evals", "status"]
        body = []
        for r in self.table():
            body.append([r["optimizer"], "—" if r["lr"] is None else f"{r['lr']:.3g}",
                         "—" if r["steps_to_tol"] is None else str(r["steps_to_tol"]),
                         "—" if r["evals_to_tol"] is None else str(r["evals_to_tol"]),
                         _fmt(r["final_loss"]), _fmt(r["final_dist"]), str(r["evals"]),
                         r["status"]])
        title = (f"race on {self.landscape.title} from ({self.start[0]:g}, {self.start[1]:g}),"
                 f" {self.steps} steps" + (", lr tuned (fair)" if self.fair else ""))
        return title + "\n" + format_rows(head, body)

    def to_dict(self):
        return {"landscape": self.landscape.name, "start": list(self.start),
                "steps": self.steps, "tol": self.tol, "fair": self.fair,
                "table": self.table(), "runs": [r.to_dict() for r in self.runs]}


def _fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3e}"


def format_rows(head, body):
    """Columns aligned on the widest cell: a plain-text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)] if body else \
        [len(h) for h in head]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in body:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def run_one(landscape, spec, start=None, steps=200, max_evals=None, dtype="float64"):
    """Race one optimizer: returns a :class:`Run` (see the module doc)."""
    landscape = _landscapes.get(landscape)
    spec = _specs.parse(spec)
    start = landscape.start if start is None else tuple(float(c) for c in start)
    if spec.contract == "residual" and not landscape.least_squares:
        landscape.residuals(None)  # raises the one-sentence error
    x = Tensor(np.asarray(start, dtype=np.float64), dtype=dtype, requires_grad=True)
    optimizer = spec.build([x], landscape)
    hyper = {k: v for k, v in spec.resolve(landscape).items()}
    current = []

    def on_eval():
        current.append(np.array(x.data, dtype=np.float64))

    closure = _specs.closure_for(spec, optimizer, lambda: landscape(x),
                                 lambda: landscape.residuals(x), on_eval)
    path = [np.array(start, dtype=np.float64)]
    evals, counts = [], [0]
    status, message = "budget", f"ran all {steps} steps"
    for _ in range(steps):
        current = []
        try:
            with np.errstate(all="ignore"):
                optimizer.step(closure)
        except (ArithmeticError, np.linalg.LinAlgError, RuntimeError) as error:
            status, message = "failed", f"{type(error).__name__}: {error}"
            break
        point = np.array(x.data, dtype=np.float64)
        path.append(point)
        evals.append(np.asarray(current, dtype=np.float64).reshape(-1, 2))
        counts.append(counts[-1] + len(current))
        if not np.all(np.isfinite(point)) or np.abs(point).max() > DIVERGED_NORM:
            status, message = "diverged", "the iterate left every sane range"
            break
        record = optimizer.state.get(x, {})
        if record.get("converged"):
            status, message = "converged", record.get("message", "")
            break
        if max_evals is not None and counts[-1] >= max_evals:
            status, message = "max_evals", f"spent {counts[-1]} evaluations"
            break
        if landscape.floor is not None \
                and float(landscape.value(point[0], point[1])) < landscape.floor:
            status, message = "escaped", f"f fell below {landscape.floor:g}"
            break
    path = np.asarray(path)
    with np.errstate(all="ignore"):
        loss = landscape.value(path[:, 0], path[:, 1])
    state = optimizer.state.get(x, {})
    rec = {k: state[k] for k in ("nit", "nfev", "njev", "nhev") if k in state}
    return Run(spec.label, spec, hyper, path, loss, landscape.gap(loss), landscape.distance(path),
               np.asarray(counts, dtype=np.int64), evals, status, message, rec)


def _score(run, tol, f_min):
    """Smaller is better: (steps to tol, or inf) then the final gap (or loss)."""
    k = run.first_below(tol) if f_min is not None else None
    final = float(run.gap[-1]) if f_min is not None else float(run.loss[-1])
    if run.status in ("diverged", "failed") or not math.isfinite(final):
        return (math.inf, math.inf)
    return (math.inf if k is None else k, final)


def tune_lr(landscape, spec, start=None, steps=200, tol=1e-6, factors=FAIR_FACTORS,
            max_evals=None):
    """The lr of ``spec`` that races best among ``default·factor`` (see the module doc).

    Returns (best spec with its lr set, [(lr, score), ...])."""
    landscape = _landscapes.get(landscape)
    spec = _specs.parse(spec)
    base = spec.resolve(landscape).get("lr")
    if base is None or not spec.tunable:
        return spec, []
    scores = []
    best, best_score = None, None
    for factor in factors:
        lr = float(f"{base * factor:.3g}")
        candidate = spec.with_lr(lr)
        run = run_one(landscape, candidate, start, steps, max_evals)
        score = _score(run, tol, landscape.f_min)
        scores.append((lr, score))
        if best_score is None or score < best_score:
            best, best_score = candidate, score
    return best, scores


def race(landscape, optimizers, start=None, steps=200, tol=1e-6, fair=False, max_evals=None,
         progress=None):
    """Race ``optimizers`` (names, ``"name:key=value"`` strings or OptimizerSpecs) on
    ``landscape`` (a name or a Landscape) from ``start``; returns a :class:`Race`.

    ``progress(label)`` is called before each optimizer (the command line's bar).
    """
    landscape = _landscapes.get(landscape)
    specs = _specs.parse_list(optimizers)
    start = landscape.start if start is None else tuple(float(c) for c in start)
    if steps < 1:
        raise ValueError(f"race: steps={steps} must be at least 1.")
    for spec in specs:
        if spec.contract == "residual" and not landscape.least_squares:
            raise ValueError(f"{spec.name} needs a least-squares landscape, and "
                             f"{landscape.name} is not a sum of squares; use one of "
                             f"{', '.join(_landscapes.least_squares_names())}.")
    runs = []
    for spec in specs:
        if progress is not None:
            progress(spec.label)
        tuning = None
        if fair and spec.tunable:
            spec, tuning = tune_lr(landscape, spec, start, steps, tol, max_evals=max_evals)
        run = run_one(landscape, spec, start, steps, max_evals)
        run.tuning = tuning
        runs.append(run)
    return Race(landscape, start, steps, tol, runs, max_evals, fair)
