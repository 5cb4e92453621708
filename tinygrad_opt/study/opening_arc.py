"""The lecture's opening arc, run: random search, random local search, the numerical
gradient, and backprop, training the same linear classifier.

The course opens with "Strategy #1: random search" (try random weights, keep the
best: 15.5% on CIFAR-10), then "Strategy #2: follow the slope" -- first by random
local steps, then along a numerical gradient (one forward difference per
dimension, h = 1e-4: slow and approximate) -- and ends with the analytic gradient
by backprop (exact and fast), checked against the numerical one.

CIFAR-10 is not shipped (nothing downloads at run time), so the arc runs on the
bundled 8×8 digits (scikit-learn's 1797 images, 64 pixels, 10 classes; 75% to
train, 25% to test): a linear classifier s = x W + b, 650 parameters, with the
slides' multiclass SVM loss (``nn.functional.svm_loss``; or ``loss="cross_entropy"``).
Every strategy starts from the same W₀ = 0.001·N(0, 1), b₀ = 0 and reports test
accuracy, loss evaluations, gradient evaluations and wall time:

    from tinygrad_opt.study import opening_arc
    result = opening_arc.run()
    print(result.format_table())

(``tinygrad-opt opening-arc`` prints the same.) Gradient descent on the numerical
gradient and on backprop's take the same steps with the same lr, so they end at
nearly the same point; the numerical one pays 651 loss evaluations a step for it.
The gradient check compares backprop's gradient at W₀ with central differences.
"""

import time

import numpy as np

from .. import optim
from ..autograd.numerical import numerical_grad
from ..data import load_digits, train_val_test_split
from ..nn import functional as F
from ..tensor import Tensor
from . import derivative_free as dfo
from .race import format_rows

__all__ = ["LOSSES", "OpeningArc", "run"]

LOSSES = ("svm", "cross_entropy")


class OpeningArc:
    """The rows of the comparison (``rows``: dicts with ``strategy``, ``test_accuracy``,
    ``train_loss``, ``loss_evaluations``, ``gradient_evaluations``, ``seconds``) and
    ``gradient_check`` (the largest relative difference between backprop's gradient
    and central differences at the start)."""

    def __init__(self, rows, gradient_check, loss, n_train, n_test):
        self.rows, self.gradient_check, self.loss = rows, gradient_check, loss
        self.n_train, self.n_test = n_train, n_test

    def __getitem__(self, strategy):
        for row in self.rows:
            if row["strategy"] == strategy:
                return row
        raise KeyError(f"no strategy {strategy!r}; the arc has "
                       f"{', '.join(r['strategy'] for r in self.rows)}.")

    def format_table(self):
        head = ["strategy", "test accuracy", "train loss", "loss evals", "gradient evals",
                "seconds"]
        body = [[r["strategy"], f"{100 * r['test_accuracy']:.1f}%", f"{r['train_loss']:.4f}",
                 str(r["loss_evaluations"]), str(r["gradient_evaluations"]),
                 f"{r['seconds']:.2f}"] for r in self.rows]
        return (f"the opening arc on the digits: a linear classifier (650 parameters), "
                f"{self.loss} loss, {self.n_train} training / {self.n_test} test images\n"
                + format_rows(head, body)
                + f"\ngradient check at the start: backprop vs central differences, max "
                  f"relative difference {self.gradient_check:.1e}")

    def to_dict(self):
        return {"loss": self.loss, "n_train": self.n_train, "n_test": self.n_test,
                "gradient_check": self.gradient_check, "rows": list(self.rows)}


def _problem(loss, seed):
    X, y = load_digits()
    (Xtr, ytr), (Xte, yte) = train_val_test_split(X, y, val_size=0, test_size=0.25,
                                                  seed=seed)[::2]
    Xtr, Xte = (Tensor(np.asarray(a, dtype=np.float64)) for a in (Xtr, Xte))
    ytr, yte = Tensor(np.asarray(ytr)), np.asarray(yte)
    loss_fn = F.svm_loss if loss == "svm" else F.cross_entropy

    def objective(W, b):
        return loss_fn(Xtr @ W + b, ytr)

    def accuracy(W, b):
        scores = Xte.numpy() @ W.numpy() + b.numpy()
        return float(np.mean(scores.argmax(axis=1) == yte))

    return objective, accuracy, Xtr.shape[0], len(yte)


def _start(seed):
    rng = np.random.default_rng(seed)
    W = Tensor(0.001 * rng.standard_normal((64, 10)), requires_grad=True)
    b = Tensor(np.zeros(10), requires_grad=True)
    return W, b


def _row(strategy, objective, accuracy, W, b, loss_evaluations, gradient_evaluations,
         seconds):
    return {"strategy": strategy, "test_accuracy": accuracy(W, b),
            "train_loss": float(objective(W, b).item()), "loss_evaluations": loss_evaluations,
            "gradient_evaluations": gradient_evaluations, "seconds": seconds}


def run(tries=1000, steps=30, lr=0.5, step_size=0.02, loss="svm", seed=0):
    """Train the same linear classifier with each strategy (see the module doc).

    Args:
        tries: loss evaluations for random search and for random local search.
        steps: gradient-descent steps for the numerical gradient and for backprop.
        lr: their learning rate.
        step_size: random local search's perturbation (random search draws W₀ + 0.001·z).
        loss: ``"svm"`` (the slides') or ``"cross_entropy"``.
        seed: the split, the start and every random draw.
    """
    if loss not in LOSSES:
        raise ValueError(f"opening arc: loss must be 'svm' or 'cross_entropy', got {loss!r}.")
    for name, value in (("tries", tries), ("steps", steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"opening arc: {name}={value!r} must be a positive integer.")
    objective, accuracy, n_train, n_test = _problem(loss, seed)
    rows = []
    searches = [("random search", dfo.RandomSearch, dict(scale=0.001)),
                ("random local search", dfo.RandomLocalSearch, dict(step_size=step_size))]
    for strategy, cls, options in searches:
        W, b = _start(seed)
        optimizer = cls([W, b], seed=seed, **options)
        start = time.perf_counter()
        while optimizer.record["nfev"] < tries:
            optimizer.step(lambda W=W, b=b: objective(W, b))
        rows.append(_row(strategy, objective, accuracy, W, b, optimizer.record["nfev"], 0,
                         time.perf_counter() - start))

    W, b = _start(seed)
    optimizer = dfo.NumericalGD([W, b], lr=lr, eps=1e-4, scheme="forward")
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step(lambda: objective(W, b))
    rows.append(_row("numerical gradient (forward, h=1e-4)", objective, accuracy, W, b,
                     optimizer.record["nfev"], 0, time.perf_counter() - start))

    W, b = _start(seed)
    (g_numeric, _), _ = numerical_grad(objective, (W, b), eps=1e-6, scheme="central")
    objective(W, b).backward()
    scale = np.maximum(np.abs(W.grad.numpy()), np.abs(g_numeric.numpy())).max()
    check = float(np.abs(W.grad.numpy() - g_numeric.numpy()).max() / max(scale, 1e-300))
    W, b = _start(seed)
    optimizer = optim.SGD([W, b], lr=lr)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        objective(W, b).backward()
        optimizer.step()
    rows.append(_row("backprop (analytic gradient)", objective, accuracy, W, b, steps, steps,
                     time.perf_counter() - start))
    return OpeningArc(rows, check, loss, n_train, n_test)
