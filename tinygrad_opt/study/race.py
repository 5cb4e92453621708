"""Optimizer races on 2-D (and 1-D) landscapes: the same start and budget for every optimizer.

    from tinygrad_opt.study import race
    result = race.race("rosenbrock", ["sgd", "momentum", "adam", "newton", "bfgs", "lbfgs",
                                       "lm"], steps=200)
    print(result.format_table())
    plots.race_contour(result, "race.png")

Each optimizer starts from the same point with the same budget of ``steps``
calls of ``optimizer.step(closure)`` (one iteration each: L-BFGS runs with
``max_iter=1``), optionally capped at ``max_evals`` closure calls. The race
records, per optimizer (:class:`Run`):

* ``path`` -- the iterates x₀, x₁, ..., x_T (an array of shape (T+1, 2), (T+1, 1)
  on a 1-D landscape);
* ``loss`` -- f(x_k), ``gap`` -- f(x_k) - f*, ``dist`` -- ‖x_k - x*‖ to the
  nearest known minimiser (measured for the record, not counted as work);
* ``nfev`` -- closure calls (function and gradient evaluations) spent to reach
  each iterate, cumulative, with nfev[0] = 0;
* ``evals`` -- the points evaluated during each step: a first-order method
  evaluates only its iterate, a line search also the trial points
  x_k + t d it tries (``trial_points()`` lists those that were not accepted).

A run stops early when the optimizer reports convergence, when it diverges
(``"diverged"``: x non-finite or ‖x‖ > 1e6, or f - f* grown to more than 100
times its value at the start -- the table, the JSON and the pictures say
"diverged", never "budget"), or when f drops below the landscape's floor
(``"escaped"``, for functions unbounded below). ``"budget"`` means it ran all
its steps without converging.

``noise=σ`` (the lecture's stochastic-gradient panel) adds seeded Gaussian
noise σ·ξ_k, ξ_k ~ N(0, I), to the gradient at every step k, for every
optimizer: the race minimises f(x) + σ ξ_kᵀx during step k, so first-order
methods see ∇f + σξ_k, Newton and BFGS the same noisy gradient with the exact
Hessian, line searches a consistent function within the step, and
derivative-free methods the same noisy values. Every optimizer of a race gets
the same ξ sequence (``seed``). Gauss-Newton and LM take residuals and are
refused with noise. ``loss`` and ``gap`` stay the noiseless f.

Derivative-free optimizers (``random-search``, ``random-local-search``,
``numerical-gd``, ``annealing``, ``evolution``; see
:mod:`~tinygrad_opt.study.derivative_free`) race beside the gradient methods;
``nfev`` counts their function evaluations -- the "why gradients" race.

``fair=True`` first tunes the learning rate of every first-order optimizer by
a small log-grid search around its default (``lr·10^(k/2)``, k = -4..2): each
candidate runs the same race, and the lr that reaches the tolerance in the
fewest steps (or, if none does, ends lowest) wins -- in the spirit of
jettify/pytorch-optimizer's tuned races, with our own grid instead of TPE.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..tensor import Tensor
from . import landscapes as _landscapes
from . import specs as _specs

__all__ = ["FAIR_FACTORS", "Race", "Run", "race", "run_one", "tune_lr"]

FAIR_FACTORS = tuple(10 ** (k / 2) for k in range(-4, 3))  # 0.01 ... 10, half decades
DIVERGED_NORM = 1e6
DIVERGED_GROWTH = 1e2  # f - f* this many times its start (two orders of magnitude): diverged
GROWTH_FLOOR = 1e-8  # ... measured from at least this (a start on the minimum has gap 0)


@dataclass(repr=False, eq=False)  # arrays inside: compared by identity, as before
class Run:
    """One optimizer's race (see the module doc for the arrays)."""

    label: str
    spec: object
    hyperparameters: dict
    path: np.ndarray
    loss: np.ndarray
    gap: np.ndarray
    dist: np.ndarray
    nfev: np.ndarray
    evals: list
    status: str
    message: str = ""
    record: dict = field(default_factory=dict)
    tuning: list = None  # [(lr, score)] when fair mode tuned it

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
        return np.asarray(out, dtype=np.float64).reshape(-1, self.path.shape[1])

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

    def __init__(self, landscape, start, steps, tol, runs, max_evals=None, fair=False,
                 noise=0.0, seed=0):
        self.landscape, self.start, self.steps, self.tol = landscape, start, steps, tol
        self.runs, self.max_evals, self.fair = runs, max_evals, fair
        self.noise, self.seed = noise, seed

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
        return self.caption() + "\n" + format_rows(head, body)

    def caption(self):
        """One line saying what was raced and how the step sizes were chosen."""
        start = ", ".join(f"{c:g}" for c in self.start)
        parts = [f"race on {self.landscape.title} from ({start}), {self.steps} steps"]
        if self.fair:
            parts.append("lr tuned per optimizer (fair)")
        elif any(_momentum_at_default_lr(run.spec) for run in self.runs):
            parts.append("momentum at lr·(1 - β) = sgd's lr (the same effective step)")
        if self.noise:
            parts.append(f"gradient noise σ = {self.noise:g} (seed {self.seed})")
        return ", ".join(parts)

    def to_dict(self):
        return {"landscape": self.landscape.name, "start": list(self.start),
                "steps": self.steps, "tol": self.tol, "fair": self.fair, "noise": self.noise,
                "seed": self.seed, "caption": self.caption(), "table": self.table(),
                "runs": [r.to_dict() for r in self.runs]}


def _momentum_at_default_lr(spec):
    """Whether the race gave this heavy-ball spec lr·(1 - β) (it named no lr itself)."""
    return spec.family == "gd" and bool(spec.kwargs.get("momentum")) and "lr" not in spec.kwargs


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


def _check_start(landscape, start):
    start = landscape.start if start is None else tuple(float(c) for c in start)
    if len(start) != landscape.dim:
        raise ValueError(f"race: the start {start} has {len(start)} coordinates and the "
                         f"{landscape.name} landscape has {landscape.dim}.")
    return start


def _check_noise(spec, noise):
    if not noise >= 0:
        raise ValueError(f"race: noise={noise} must be >= 0 (the standard deviation σ of the "
                         "gradient noise).")
    if noise and spec.contract == "residual":
        raise ValueError(f"race: noise perturbs the gradient of f, and {spec.name} works on the "
                         "residuals of a least-squares problem instead; race it with noise=0.")


def run_one(landscape, spec, start=None, steps=200, max_evals=None, dtype="float64", noise=0.0,
            seed=0):
    """Race one optimizer: returns a :class:`Run` (see the module doc)."""
    landscape = _landscapes.get(landscape)
    spec = _specs.parse(spec)
    start = _check_start(landscape, start)
    _check_noise(spec, noise)
    if spec.contract == "residual" and not landscape.least_squares:
        landscape.residuals(None)  # raises the one-sentence error
    dim = landscape.dim
    x = Tensor(np.asarray(start, dtype=np.float64), dtype=dtype, requires_grad=True)
    optimizer = spec.build([x], landscape)
    hyper = {k: v for k, v in spec.resolve(landscape).items()}
    current = []
    rng = np.random.default_rng(seed)
    xi = Tensor(np.zeros(dim), dtype=dtype)  # this step's σ·ξ_k

    def on_eval():
        current.append(np.array(x.data, dtype=np.float64))

    def loss():
        return landscape(x) + (x * xi).sum() if noise else landscape(x)

    closure = _specs.closure_for(spec, optimizer, loss, lambda: landscape.residuals(x), on_eval)
    path = [np.array(start, dtype=np.float64)]
    evals, counts = [], [0]
    status, message = "budget", f"ran all {steps} steps"
    growth_base = None
    if landscape.f_min is not None:
        with np.errstate(all="ignore"):
            growth_base = max(float(landscape.gap(landscape.value(*start))), GROWTH_FLOOR)
    for _ in range(steps):
        current = []
        if noise:
            xi.data[...] = noise * rng.standard_normal(dim)
        try:
            with np.errstate(all="ignore"):
                stepped = optimizer.step(closure)
        except (ArithmeticError, np.linalg.LinAlgError, RuntimeError) as error:
            status, message = "failed", f"{type(error).__name__}: {error}"
            break
        point = np.array(x.data, dtype=np.float64)
        path.append(point)
        evals.append(np.asarray(current, dtype=np.float64).reshape(-1, dim))
        counts.append(counts[-1] + len(current))
        if not np.all(np.isfinite(point)) or np.abs(point).max() > DIVERGED_NORM:
            status, message = "diverged", "the iterate left every sane range"
            break
        if growth_base is not None and isinstance(stepped, Tensor):
            # the loss the step reports (at its start, for most optimizers): free, one step late
            gap = float(stepped.item()) - landscape.f_min
            if not gap <= DIVERGED_GROWTH * growth_base:
                status = "diverged"
                message = (f"f - f* grew from {growth_base:.3g} to {gap:.3g}, more than "
                           f"{DIVERGED_GROWTH:g} times")
                break
        record = optimizer.state.get(x, {})
        if record.get("converged"):
            status, message = "converged", record.get("message", "")
            break
        if max_evals is not None and counts[-1] >= max_evals:
            status, message = "max_evals", f"spent {counts[-1]} evaluations"
            break
        if landscape.floor is not None and float(landscape.value(*point)) < landscape.floor:
            status, message = "escaped", f"f fell below {landscape.floor:g}"
            break
    path = np.asarray(path)
    with np.errstate(all="ignore"):
        values = landscape.value(*path.T)
    state = optimizer.state.get(x, {})
    rec = {k: state[k] for k in ("nit", "nfev", "njev", "nhev") if k in state}
    return Run(spec.label, spec, hyper, path, values, landscape.gap(values),
               landscape.distance(path), np.asarray(counts, dtype=np.int64), evals, status,
               message, rec)


def _score(run, tol, f_min):
    """Smaller is better: (steps to tol, or inf) then the final gap (or loss)."""
    k = run.first_below(tol) if f_min is not None else None
    final = float(run.gap[-1]) if f_min is not None else float(run.loss[-1])
    if run.status in ("diverged", "failed") or not math.isfinite(final):
        return (math.inf, math.inf)
    return (math.inf if k is None else k, final)


def tune_lr(landscape, spec, start=None, steps=200, tol=1e-6, factors=FAIR_FACTORS,
            max_evals=None, noise=0.0, seed=0):
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
        run = run_one(landscape, candidate, start, steps, max_evals, noise=noise, seed=seed)
        score = _score(run, tol, landscape.f_min)
        scores.append((lr, score))
        if best_score is None or score < best_score:
            best, best_score = candidate, score
    return best, scores


def race(landscape, optimizers, start=None, steps=200, tol=1e-6, fair=False, max_evals=None,
         progress=None, noise=0.0, seed=0):
    """Race ``optimizers`` (names, ``"name:key=value"`` strings or OptimizerSpecs) on
    ``landscape`` (a name or a Landscape) from ``start``; returns a :class:`Race`.

    ``noise=σ`` adds seeded Gaussian gradient noise (see the module doc).
    ``progress(label)`` is called before each optimizer (the command line's bar).
    """
    landscape = _landscapes.get(landscape)
    specs = _specs.parse_list(optimizers)
    start = _check_start(landscape, start)
    if steps < 1:
        raise ValueError(f"race: steps={steps} must be at least 1.")
    for spec in specs:
        _check_noise(spec, noise)
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
            spec, tuning = tune_lr(landscape, spec, start, steps, tol, max_evals=max_evals,
                                   noise=noise, seed=seed)
        run = run_one(landscape, spec, start, steps, max_evals, noise=noise, seed=seed)
        run.tuning = tuning
        runs.append(run)
    return Race(landscape, start, steps, tol, runs, max_evals, fair, noise, seed)
