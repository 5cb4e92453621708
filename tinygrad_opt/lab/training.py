"""The live-training panel: a small MLP learning a 2-D toy data set, step by step.

A :class:`Session` holds one training (data, model, optimizer, schedule); the
server advances it in short slices of work (``advance``) and sends a
:meth:`Session.frame` after each -- the losses, the accuracy, the decision
boundary on a grid and, when asked, λmax of the loss Hessian against the
stability edge 2/η of gradient descent (the lecture's "edge of stability").
Nothing runs between slices, so pausing, resetting or closing the tab stops the
work at once. :class:`Registry` keeps the sessions and enforces the cap on
how many run at once.
"""

import itertools
import secrets
import time

import numpy as np

import tinygrad_opt as tg

from .. import data as _data
from .. import nn
from ..optim import lr_scheduler
from ..study import hessian_lab, specs
from . import limits
from .requests import BadRequest, number, text

DATASETS = {"moons": _data.make_moons, "circles": _data.make_circles,
            "spirals": _data.make_spirals, "xor": _data.make_xor}
ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu")
SCHEDULES = {
    "constant": None,
    "step": lambda opt: lr_scheduler.StepLR(opt, step_size=50, gamma=0.5),
    "cosine": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=300),
    "exponential": lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.99),
}
VAL_FRACTION = 0.2
UNCLAIMED_SECONDS = 30  # a session nobody connected to within this long is dropped


def parse_config(body):
    """The training request, checked: every field with its default."""
    hidden = body.get("hidden", [8, 8])
    if not isinstance(hidden, list) or len(hidden) > limits.MAX_TRAIN_LAYERS or not all(
            isinstance(n, int) and not isinstance(n, bool)
            and 1 <= n <= limits.MAX_TRAIN_WIDTH for n in hidden):
        raise BadRequest(f"hidden must be a list of at most {limits.MAX_TRAIN_LAYERS} layer "
                         f"sizes from 1 to {limits.MAX_TRAIN_WIDTH}, got {hidden!r}.")
    config = {
        "dataset": text(body, "dataset", "moons", choices=tuple(DATASETS)),
        "samples": number(body, "samples", 300, 20, limits.MAX_TRAIN_SAMPLES, integer=True),
        "noise": number(body, "noise", 0.1, 0.0, 1.0),
        "hidden": hidden,
        "activation": text(body, "activation", "tanh", choices=ACTIVATIONS),
        "optimizer": text(body, "optimizer", "adam:lr=0.03"),
        "schedule": text(body, "schedule", "constant", choices=tuple(SCHEDULES)),
        "batch_size": number(body, "batch_size", 32, 1, limits.MAX_TRAIN_SAMPLES, integer=True),
        "seed": number(body, "seed", 0, 0, 2**31 - 1, integer=True),
        "lambda_max": bool(body.get("lambda_max", False)),
    }
    try:
        spec = specs.parse(config["optimizer"])
    except ValueError as error:
        raise BadRequest(str(error)) from None
    if spec.contract != "first" or spec.name == "lbfgs":
        raise BadRequest(f"optimizer {spec.name} needs the whole loss at every step; live "
                         "training takes the mini-batch optimizers: "
                         f"{', '.join(n for n in specs.NAMES if minibatch(n))}.")
    config["spec"] = spec
    return config


def minibatch(name):
    """Whether the optimizer ``name`` trains on mini-batches (the live training takes it)."""
    spec = specs.parse(name)
    return spec.contract == "first" and name != "lbfgs"


class Session:
    """One live training (see the module doc); not thread-safe: the server runs one
    slice of it at a time."""

    def __init__(self, config):
        self.config = config
        X, y = DATASETS[config["dataset"]](n_samples=config["samples"], noise=config["noise"],
                                           seed=config["seed"])
        order = np.random.default_rng(config["seed"]).permutation(len(X))
        n_val = max(1, round(VAL_FRACTION * len(X)))
        self.X_val, self.y_val = X[order[:n_val]], y[order[:n_val]]
        self.X_train, self.y_train = X[order[n_val:]], y[order[n_val:]]
        self.n_classes = int(y.max()) + 1
        pad = 0.25 * (X.max(0) - X.min(0))
        self.bounds = [[float(X[:, 0].min() - pad[0]), float(X[:, 0].max() + pad[0])],
                       [float(X[:, 1].min() - pad[1]), float(X[:, 1].max() + pad[1])]]
        gx = np.linspace(*self.bounds[0], limits.GRID)
        gy = np.linspace(*self.bounds[1], limits.GRID)
        GX, GY = np.meshgrid(gx, gy)
        self.grid = np.stack([GX.ravel(), GY.ravel()], axis=1).astype(X.dtype)
        self.reset()

    def reset(self):
        """Fresh weights (the same seed), step 0, paused."""
        config = self.config
        tg.manual_seed(config["seed"])
        self.model = nn.MLP([2, *config["hidden"], self.n_classes],
                            activation=config["activation"])
        self.optimizer = config["spec"].build(self.model.parameters())
        make = SCHEDULES[config["schedule"]]
        self.scheduler = make(self.optimizer) if make else None
        loader = _data.DataLoader(_data.TensorDataset(self.X_train, self.y_train),
                                  batch_size=config["batch_size"], shuffle=True,
                                  seed=config["seed"])
        self.batches = self._batches(loader)
        self.step, self.epoch, self.running, self.diverged = 0, 0, False, False
        self.stopped = False  # set by Registry.remove: its socket closes

    def _batches(self, loader):
        """Mini-batches forever, stepping the schedule after every epoch."""
        for epoch in itertools.count():
            loader.set_epoch(epoch)
            yield from loader
            self.epoch = epoch + 1
            if self.scheduler is not None:
                self.scheduler.step()

    def _loss(self, X, y):
        return nn.functional.cross_entropy(self.model(X), y)

    def advance(self, seconds):
        """Train for about ``seconds`` (at least one step); stops at the step cap or
        when the loss stops being finite."""
        stop = time.perf_counter() + seconds
        while self.step < limits.MAX_TRAIN_STEPS and not self.diverged:
            X, y = next(self.batches)
            self.optimizer.zero_grad()
            loss = self._loss(X, y)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            if not np.isfinite(loss.item()):
                self.diverged = True
            if time.perf_counter() >= stop:
                break
        if self.step >= limits.MAX_TRAIN_STEPS or self.diverged:
            self.running = False

    def _evaluate(self, X, y):
        with tg.no_grad():
            logits = self.model(tg.Tensor(X))
            loss = float(nn.functional.cross_entropy(logits, tg.Tensor(y)).item())
            accuracy = float((logits.numpy().argmax(1) == y).mean())
        return loss, accuracy

    def _boundary(self):
        """Per grid point: the predicted class and its probability (2 decimals)."""
        with tg.no_grad():
            probs = nn.functional.softmax(self.model(tg.Tensor(self.grid)), dim=1).numpy()
        return {"n": limits.GRID, "cls": probs.argmax(1).tolist(),
                "p": np.round(probs.max(1), 2).tolist()}

    def _lambda_max(self):
        """The largest eigenvalue of the full-batch training loss Hessian (Lanczos)."""
        params = list(self.model.parameters())
        X, y = tg.Tensor(self.X_train), tg.Tensor(self.y_train)
        hvp = hessian_lab.HVP(lambda: self._loss(X, y), params)
        return float(hessian_lab.lanczos(hvp, hvp.n, k=1, max_iter=20).eigenvalues[0])

    def points(self):
        """The data set, for the picture: x, y and class of every point, and which is val."""
        X = np.concatenate([self.X_train, self.X_val])
        y = np.concatenate([self.y_train, self.y_val])
        return {"x": np.round(X, 4).tolist(), "cls": y.tolist(),
                "val_from": len(self.X_train), "bounds": self.bounds,
                "classes": self.n_classes}

    def frame(self):
        """What the page shows now (see the module doc)."""
        train_loss, train_acc = self._evaluate(self.X_train, self.y_train)
        val_loss, val_acc = self._evaluate(self.X_val, self.y_val)
        lr = float(self.optimizer.param_groups[0]["lr"])
        out = {"step": self.step, "epoch": self.epoch, "train_loss": train_loss,
               "val_loss": val_loss, "train_accuracy": train_acc, "val_accuracy": val_acc,
               "lr": lr, "running": self.running, "diverged": self.diverged,
               "done": self.step >= limits.MAX_TRAIN_STEPS, "boundary": self._boundary()}
        if self.config["lambda_max"]:
            out["lambda_max"] = self._lambda_max()
            out["edge"] = 2.0 / lr if lr > 0 else None
        return out


class Registry:
    """The sessions of one server, by id, at most ``MAX_TRAININGS`` at once."""

    def __init__(self):
        self.sessions, self.created = {}, {}

    def create(self, config):
        now = time.monotonic()
        for key in [k for k, t in self.created.items()
                    if t is not None and now - t > UNCLAIMED_SECONDS]:
            self.remove(key)  # created and never connected: its tab is gone
        if len(self.sessions) >= limits.MAX_TRAININGS:
            raise BadRequest(f"{len(self.sessions)} trainings are running, the most this "
                             "server runs at once; stop one (Reset or close its tab) first.",
                             status=429)
        key = secrets.token_urlsafe(8)
        self.sessions[key] = Session(config)
        self.created[key] = now
        return key

    def claim(self, key):
        """The session ``key`` for its socket (None if unknown); it now lives as long as
        the socket does."""
        if key in self.sessions:
            self.created[key] = None
        return self.sessions.get(key)

    def remove(self, key):
        """Forget the session ``key`` and stop it; whether it existed."""
        self.created.pop(key, None)
        session = self.sessions.pop(key, None)
        if session is None:
            return False
        session.running, session.stopped = False, True
        return True
