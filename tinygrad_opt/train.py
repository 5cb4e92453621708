"""The fit loop: train a model, watch it learn, stop it when it diverges, resume it exactly.

    from tinygrad_opt import nn, optim
    from tinygrad_opt.data import make_moons, train_val_test_split
    from tinygrad_opt.train import fit, evaluate

    train, val, test = train_val_test_split(*make_moons(1000, noise=0.2))
    model = nn.MLP([2, 32, 32, 2])
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    history = fit(model, nn.functional.cross_entropy, optimizer, train, val, epochs=20)
    history.val_acc[-1], evaluate(model, nn.functional.cross_entropy, test)

One *iteration* is one mini-batch and one optimizer step; one *epoch* is one pass
over the training set (``len(loader)`` iterations). :class:`History` records the
loss of every iteration and, per epoch, the train loss and accuracy (averaged over
that epoch's mini-batches, as the lecture's training curve), the validation loss and
accuracy (measured after the epoch), the learning rate and the wall time.

Accuracy is measured when the targets are integer class labels (``accuracy="auto"``):
the predicted class is the argmax of the outputs, or ``output > 0`` for a single
output column (a logit).

Every optimizer trains: first-order ones step on ``.grad``; L-BFGS, BFGS, Newton,
Newton-CG, Gauss-Newton, Levenberg-Marquardt and Hessian-free get the closure they want
(``train_step``), on mini-batches or on the whole training set (``batch_size=None``).

Inputs and targets holding NaN or inf are refused before training, naming the array and
the row: with them every loss is NaN whatever the learning rate. A NaN or infinite loss
on finite data raises :class:`DivergenceError` before the step that would spread it into
the weights. ``checkpoint(...)`` packs model, optimizer, scheduler, history, the state of
the callbacks and the random state into a dict for ``tg.save``; ``fit(..., resume=...)``
continues from it bit for bit, because the loader's shuffle depends on ``(seed, epoch)``
only. Ctrl-C raises :class:`TrainingInterrupted` (a KeyboardInterrupt) carrying the
history; the checkpoint of ``checkpoint_path`` then holds the last epoch saved.
"""

import math
import sys
import time

import numpy as np

from . import backend
from .creation import generator
from .data import DataLoader, as_dataset, first_non_finite
from .op import no_grad
from .serialization import load, save
from .tensor import Tensor
from .train_step import TrainStep

__all__ = [
    "DivergenceError",
    "EarlyStopping",
    "History",
    "TrainingInterrupted",
    "accuracy",
    "checkpoint",
    "evaluate",
    "fit",
    "load_checkpoint",
    "predict",
]


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite. ``.history`` holds what was recorded up to then;
    ``.epoch``, ``.iteration`` (both 1-based) and ``.lr`` say where."""

    def __init__(self, message, history=None, epoch=None, iteration=None, lr=None):
        super().__init__(message)
        self.history, self.epoch, self.iteration, self.lr = history, epoch, iteration, lr


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a KeyboardInterrupt from a callback) during :func:`fit`. A KeyboardInterrupt,
    so it still stops a script; ``.history`` holds what was recorded, ``.epoch`` (1-based) the
    epoch it interrupted, ``.saved_epochs`` how many epochs the checkpoint of
    ``checkpoint_path`` holds (``fit(resume=...)`` continues from there exactly)."""

    def __init__(self, message, history, epoch, saved_epochs):
        super().__init__(message)
        self.history, self.epoch, self.saved_epochs = history, epoch, saved_epochs


# -- history ------------------------------------------------------------------------------------


_EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time")


class History:
    """What a training run recorded.

    Per iteration: ``iteration_loss`` (the mini-batch loss before each step).
    Per epoch (lists of equal length): ``epoch`` (1, 2, ...), ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc`` (NaN where not measured), ``lr``
    (of the first param group, during the epoch), ``time`` (wall seconds since the
    start of training, at the end of the epoch), and ``metrics``: the extra
    ``train_<name>`` / ``val_<name>`` columns of ``fit(metrics=...)``.
    """

    def __init__(self):
        self.iteration_loss = []
        for name in _EPOCH_COLUMNS:
            setattr(self, name, [])
        self.metrics = {}
        self.stop_reason = None

    @property
    def epochs(self):
        """Epochs completed."""
        return len(self.epoch)

    @property
    def iterations(self):
        """Iterations (optimizer steps) completed."""
        return len(self.iteration_loss)

    def smoothed(self, beta=0.98):
        """The per-iteration loss as an exponential moving average with bias correction:
        s_t = β·s_{t-1} + (1-β)·loss_t, shown as s_t / (1 - β^t) (a NumPy array)."""
        if not 0 <= beta < 1:
            raise ValueError(f"smoothed: beta={beta} must be in [0, 1).")
        losses = np.asarray(self.iteration_loss, dtype=np.float64)
        out = np.empty_like(losses)
        average = 0.0
        for t, value in enumerate(losses, 1):
            average = beta * average + (1 - beta) * value
            out[t - 1] = average / (1 - beta ** t)
        return out

    def _append(self, row):
        for name in _EPOCH_COLUMNS:
            getattr(self, name).append(row.pop(name, math.nan))
        for name, value in row.items():
            self.metrics.setdefault(name, [math.nan] * (self.epochs - 1)).append(value)

    def to_dict(self):
        """Plain NumPy arrays (float64; ``epoch`` int64), ready for ``tg.save``."""
        out = {"iteration_loss": np.asarray(self.iteration_loss, dtype=np.float64)}
        for name in _EPOCH_COLUMNS:
            out[name] = np.asarray(getattr(self, name),
                                   dtype=np.int64 if name == "epoch" else np.float64)
        for name, values in self.metrics.items():
            out["metric_" + name] = np.asarray(values, dtype=np.float64)
        return out

    @classmethod
    def from_dict(cls, state):
        history = cls()
        history.iteration_loss = [float(v) for v in np.asarray(state["iteration_loss"])]
        for name in _EPOCH_COLUMNS:
            cast = int if name == "epoch" else float
            setattr(history, name, [cast(v) for v in np.asarray(state[name])])
        for key, values in state.items():
            if key.startswith("metric_"):
                history.metrics[key[7:]] = [float(v) for v in np.asarray(values)]
        return history

    def __repr__(self):
        if not self.epochs:
            return f"History({self.iterations} iterations)"
        last = [f"train_loss={self.train_loss[-1]:.4g}"]
        for name in ("train_acc", "val_loss", "val_acc"):
            value = getattr(self, name)[-1]
            if not math.isnan(value):
                last.append(f"{name}={value:.4g}")
        return f"History({self.epochs} epochs, {self.iterations} iterations, {', '.join(last)})"


# -- metrics ------------------------------------------------------------------------------------


def _correct(outputs, targets):
    """How many predictions in a batch are right (a host int)."""
    out, y = outputs.data, targets.data
    if out.ndim == 2 and out.shape[1] > 1:
        predicted = out.argmax(axis=1)
    else:
        predicted = out.reshape(-1) > 0
    return int((predicted == y.reshape(-1)).sum())


def accuracy(outputs, targets):
    """The fraction of correct predictions: argmax over classes of ``outputs`` (N, C), or
    ``outputs > 0`` for one column of logits (N,) or (N, 1); ``targets`` hold labels."""
    outputs = outputs if isinstance(outputs, Tensor) else Tensor(outputs)
    targets = targets if isinstance(targets, Tensor) else Tensor(targets)
    return _correct(outputs, targets) / max(len(targets), 1)


def _wants_accuracy(setting, dataset):
    if setting == "auto":
        return len(dataset.arrays) > 1 and dataset.arrays[1].dtype.kind in "iub"
    return bool(setting)


class _Meter:
    """Sums of loss, correct predictions and extra metrics over the batches of an epoch."""

    def __init__(self, metrics, with_accuracy):
        self.metrics, self.with_accuracy = metrics or {}, with_accuracy
        self.n = self.loss = self.correct = 0
        self.extra = dict.fromkeys(self.metrics, 0.0)

    def add(self, outputs, targets, loss_value):
        size = len(targets)
        self.n += size
        self.loss += loss_value * size
        if self.with_accuracy:
            self.correct += _correct(outputs, targets)
        for name, fn in self.metrics.items():
            self.extra[name] += float(fn(outputs, targets)) * size

    def result(self, prefix):
        n = max(self.n, 1)
        row = {prefix + "loss": self.loss / n}
        if self.with_accuracy:
            row[prefix + "acc"] = self.correct / n
        row.update({prefix + name: total / n for name, total in self.extra.items()})
        return row


def _batches(data, batch_size):
    if isinstance(data, DataLoader):
        return data
    return DataLoader(as_dataset(data), batch_size=batch_size, shuffle=False, seed=0)


class _Mode:
    """Put a model in eval (or train) mode for a while, then restore it."""

    def __init__(self, model, training):
        self.model, self.training = model, training

    def __enter__(self):
        self.was = getattr(self.model, "training", None)
        if self.was is not None:
            self.model.train(self.training)

    def __exit__(self, *exc):
        if self.was is not None:
            self.model.train(self.was)


def evaluate(model, loss_fn, data, batch_size=1024, accuracy="auto", metrics=None):
    """Mean loss (and accuracy, and ``metrics``) of ``model`` over ``data`` — an
    ``(X, y)`` pair, a TensorDataset or a DataLoader — in eval mode, without gradients.
    Returns a dict: ``{"loss": ..., "acc": ...}``. ``loss_fn`` must average over the
    batch (``reduction="mean"``, the default)."""
    loader = _batches(data, batch_size)
    meter = _Meter(metrics, _wants_accuracy(accuracy, loader.dataset))
    with no_grad(), _Mode(model, False):
        for X, y in loader:
            outputs = model(X)
            value = float(loss_fn(outputs, y).item()) if loss_fn is not None else math.nan
            meter.add(outputs, y, value)
    return meter.result("")


def predict(model, X, batch_size=None):
    """The model's outputs for ``X`` (array or Tensor) in eval mode, without gradients,
    as one Tensor; ``batch_size`` bounds the memory of one forward pass."""
    X = X if isinstance(X, Tensor) else Tensor(X)
    with no_grad(), _Mode(model, False):
        if batch_size is None or len(X) <= batch_size:
            return model(X)
        outputs = [model(X[i:i + batch_size]).data for i in range(0, len(X), batch_size)]
    xp = backend.xp_of(outputs)
    return Tensor.constant(xp.concatenate(outputs))


# -- callbacks ----------------------------------------------------------------------------------


class EarlyStopping:
    """Stop when ``monitor`` (a History column: "val_loss", "val_acc", ...) has not improved
    by more than ``min_delta`` for ``patience`` epochs; with ``restore_best`` the model gets
    back its weights from the best epoch. Pass it in ``fit(callbacks=[...])``."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode=None,
                 restore_best=True):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = mode or ("max" if monitor.endswith("acc") else "min")
        self.restore_best = restore_best
        self.best, self.best_epoch, self.best_state = None, None, None

    def __call__(self, history, model, optimizer):
        values = getattr(history, self.monitor, None)
        if values is None:
            values = history.metrics[self.monitor]
        value = values[-1]
        if math.isnan(value):
            raise ValueError(f"EarlyStopping: {self.monitor} was not measured (pass val= to "
                             "fit, or monitor a train column).")
        sign = 1 if self.mode == "min" else -1
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.best_epoch = value, history.epoch[-1]
            if self.restore_best:
                self.best_state = {k: v.detach().clone() if isinstance(v, Tensor) else v
                                   for k, v in model.state_dict().items()}
            return False
        if history.epoch[-1] - self.best_epoch < self.patience:
            return False
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
        history.stop_reason = (f"early stopping: {self.monitor} has not improved for "
                               f"{self.patience} epochs (best {self.best:.4g} at epoch "
                               f"{self.best_epoch})")
        return True

    def state_dict(self):
        """What it has seen: the best value, its epoch and (with ``restore_best``) the
        weights of that epoch; saved in every :func:`checkpoint`."""
        return {"monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
                "best_state": self.best_state}

    def load_state_dict(self, state):
        if state["monitor"] != self.monitor:
            raise ValueError(f"EarlyStopping.load_state_dict: the saved state monitors "
                             f"{state['monitor']!r}, this callback {self.monitor!r}; resume "
                             "with the callback the run was started with.")
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        saved = state["best_state"]
        self.best_state = None if saved is None else {
            k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in saved.items()}


# -- checkpoints --------------------------------------------------------------------------------


def _rng_state():
    state = generator().bit_generator.state
    if state.get("bit_generator") != "PCG64":
        return None
    words = [state["state"]["state"], state["state"]["inc"]]
    mask = (1 << 64) - 1
    return np.array([w >> 64 & mask for w in words] + [w & mask for w in words]
                    + [state["has_uint32"], state["uinteger"]], dtype=np.uint64)


def _set_rng_state(array):
    hi_state, hi_inc, lo_state, lo_inc, has_uint32, uinteger = (int(v) for v in array)
    generator().bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": hi_state << 64 | lo_state, "inc": hi_inc << 64 | lo_inc},
        "has_uint32": has_uint32, "uinteger": uinteger}


def _stateful(callbacks):
    """The callbacks that keep state between epochs (they have ``state_dict``)."""
    return [cb for cb in callbacks
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict")]


def checkpoint(model, optimizer, scheduler=None, history=None, loader=None, callbacks=()):
    """Everything a run needs to continue exactly: a dict of the model's, optimizer's and
    scheduler's state dicts, the history, the loader's seed, the state of every callback
    that has one (``state_dict()``, as :class:`EarlyStopping`) and the random generator's
    state (for Dropout). Save it with ``tg.save(state, path)``; resume with
    ``fit(..., resume=path_or_state, callbacks=<the same callbacks>)``."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    stateful = _stateful(callbacks)
    if stateful:
        state["callbacks"] = [{"type": type(cb).__name__, "state": cb.state_dict()}
                              for cb in stateful]
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if history is not None:
        state["history"] = history.to_dict()
    if loader is not None:
        state["loader_seed"] = np.int64(loader.seed)
    rng = _rng_state()
    if rng is not None:
        state["rng"] = rng
    return state


def _load_callbacks(saved, callbacks):
    """Give each stateful callback its saved state, matched by position and type."""
    stateful = _stateful(callbacks)
    names = [type(cb).__name__ for cb in stateful]
    saved_names = [entry["type"] for entry in saved]
    if names != saved_names:
        raise ValueError(f"load_checkpoint: the checkpoint holds the state of the callbacks "
                         f"{saved_names} but {names} were given; resume with the callbacks "
                         "the run was started with, in the same order.")
    for cb, entry in zip(stateful, saved):
        cb.load_state_dict(entry["state"])


def load_checkpoint(state, model, optimizer, scheduler=None, loader=None, callbacks=()):
    """Put a :func:`checkpoint` (a dict, or a path for ``tg.load``) back into the model,
    optimizer, scheduler, loader and callbacks; returns the saved History (empty if none)."""
    if not isinstance(state, dict):
        state = load(state)
    _load_callbacks(state.get("callbacks", []), callbacks)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if "scheduler" not in state:
            raise ValueError("load_checkpoint: the checkpoint has no scheduler state, but a "
                             "scheduler was given; resume without it or save one.")
        scheduler.load_state_dict(state["scheduler"])
    if loader is not None and "loader_seed" in state:
        loader.seed = int(state["loader_seed"])
    if "rng" in state:
        _set_rng_state(np.asarray(state["rng"]))
    return History.from_dict(state["history"]) if "history" in state else History()


# -- the loop -----------------------------------------------------------------------------------


def progress_bar(enabled, total):
    """A tqdm bar, or None when not ``enabled``, without tqdm, or not on a terminal."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm  # optional (the progress extra)
    except ImportError:
        return None
    bar = tqdm(total=total, disable=None, unit="it", dynamic_ncols=True,
               leave=True, file=sys.stderr)
    if bar.disable:  # not a terminal
        bar.close()
        return None
    return bar


class _Progress:
    """fit's progress bar (see :func:`progress_bar`), showing the loss smoothed by an
    exponential moving average (β = 0.98, bias-corrected); ``write`` prints above it, or
    plainly when there is no bar."""

    BETA = 0.98

    def __init__(self, enabled, total):
        self.bar = progress_bar(enabled, total)
        self.ema, self.steps = 0.0, 0
        self.write = print if self.bar is None else self.bar.write

    def update(self, value, i, iterations, epoch, epochs):
        """One iteration done (the i-th of ``iterations`` in 0-based ``epoch``) with loss ``value``."""
        if self.bar is None:
            return
        self.ema, self.steps = self.BETA * self.ema + (1 - self.BETA) * value, self.steps + 1
        self.bar.update()
        if i % 10 == 0 or i == iterations:
            smooth = self.ema / (1 - self.BETA ** self.steps)
            self.bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {smooth:.4f}",
                                     refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _is_plateau(scheduler):
    return any(cls.__name__ == "ReduceLROnPlateau" for cls in type(scheduler).__mro__)


def _format_epoch(history, total):
    width = len(str(total))
    parts = [f"epoch {history.epoch[-1]:>{width}}/{total}"]
    for name, label in (("train_loss", "loss"), ("train_acc", "acc"), ("val_loss", "val_loss"),
                        ("val_acc", "val_acc")):
        value = getattr(history, name)[-1]
        if not math.isnan(value):
            parts.append(f"{label} {value:.2%}" if name.endswith("acc") else
                         f"{label} {value:.4f}")
    if not math.isnan(history.lr[-1]):
        parts.append(f"lr {history.lr[-1]:.3g}")
    parts.append(f"{history.time[-1]:.2f}s")
    return "  ".join(parts)


def _check_finite(dataset, part):
    """Refuse NaN/inf in a data set's arrays, naming the array and the first bad row."""
    for array, name in zip(dataset.arrays, ("inputs X", "targets y")):
        found = first_non_finite(array)
        if found is not None:
            row, value = found
            raise ValueError(f"fit: the {part} {name} hold {value} at row {row} (counting from "
                             f"0, shape {tuple(array.shape)}); drop or fill the non-finite "
                             "values before training, since with them every loss is nan "
                             "whatever the learning rate.")


def _train_loader(train, batch_size, shuffle, seed):
    if isinstance(train, DataLoader):
        return train
    dataset = as_dataset(train)
    if batch_size is None:  # the whole training set: one deterministic function per step
        return DataLoader(dataset, batch_size=len(dataset), shuffle=False, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed)


def fit(model, loss_fn, optimizer, train, val=None, *, epochs=10, batch_size=32, shuffle=True,
        seed=0, scheduler=None, scheduler_interval="epoch", accuracy="auto", metrics=None,
        progress=True, verbose=False, callbacks=(), resume=None, checkpoint_path=None,
        clip_grad_norm=None, jit=False):
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    Args:
        model: a callable Module: ``model(X_batch)`` gives the outputs.
        loss_fn: ``loss_fn(outputs, y_batch)`` gives a scalar Tensor, averaged over the batch.
        optimizer: any ``optim`` optimizer over the model's parameters. First-order ones
            step on ``.grad``; the closure optimizers (LBFGS, BFGS, Newton, NewtonCG, GD,
            GaussNewton, LevenbergMarquardt, HessianFree) get the closure they want
            (see ``train_step``): Gauss-Newton and LM the residual form of the MSE.
        train: ``(X, y)`` arrays or Tensors, a TensorDataset, or a DataLoader (then
            ``batch_size``, ``shuffle`` and ``seed`` are the loader's own).
        val: the same forms; measured after every epoch, in eval mode, without gradients.
        epochs: the total number of epochs (a resumed run counts the ones already done).
        batch_size, shuffle, seed: the DataLoader built for ``train``; the order of
            epoch e depends on ``(seed, e)`` only. ``batch_size=None``: the whole training
            set in every step (full batch: one step per epoch).
        scheduler: a learning-rate scheduler, stepped after every epoch
            (``ReduceLROnPlateau`` gets the validation loss, or the train loss without
            ``val``), or after every iteration with ``scheduler_interval="iteration"``.
        accuracy: ``"auto"`` (measured when the targets are integer labels), True, False.
        metrics: ``{name: fn(outputs, targets) -> float}``, averaged over samples like the
            loss, recorded as ``history.metrics["train_<name>"]`` and ``["val_<name>"]``.
        progress: show a tqdm bar (only on a terminal, and only with tqdm installed).
        verbose: print one line per epoch (loss, accuracy, learning rate, time).
        callbacks: callables ``cb(history, model, optimizer)`` run after every epoch; one
            that returns True stops training (see :class:`EarlyStopping`). Their state
            (``state_dict()``) goes into every checkpoint.
        resume: a :func:`checkpoint` dict or a path to one saved with ``tg.save``: the run
            continues exactly where it stopped (pass the same callbacks).
        checkpoint_path: ``tg.save`` a checkpoint there after every epoch.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        jit: capture the training step of a first-order optimizer with ``tg.jit`` and
            replay it (the same History bit for bit, faster on small models; a model with
            dropout is refused with one sentence). Other optimizers run as usual.

    Raises:
        ValueError: the training or validation data hold NaN or inf (before any step).
        DivergenceError: the loss became NaN or infinite (nothing is stepped with it).
        TrainingInterrupted: Ctrl-C; it carries the history.
    """
    return _Training(model, loss_fn, optimizer, train, val, epochs=epochs,
                     batch_size=batch_size, shuffle=shuffle, seed=seed, scheduler=scheduler,
                     scheduler_interval=scheduler_interval, accuracy=accuracy,
                     metrics=metrics, progress=progress, verbose=verbose, callbacks=callbacks,
                     resume=resume, checkpoint_path=checkpoint_path,
                     clip_grad_norm=clip_grad_norm, jit=jit).run()


class _Training:
    """One :func:`fit` call, in pieces that each read alone: the set-up (``__init__``),
    one epoch (``_epoch``), what follows an epoch (``_end_epoch``: validation, the
    scheduler, the callbacks, the checkpoint) and the divergence check (``_check``)."""

    def __init__(self, model, loss_fn, optimizer, train, val, *, epochs, batch_size, shuffle,
                 seed, scheduler, scheduler_interval, accuracy, metrics, progress, verbose,
                 callbacks, resume, checkpoint_path, clip_grad_norm, jit):
        if scheduler_interval not in ("epoch", "iteration"):
            raise ValueError(f"fit: scheduler_interval={scheduler_interval!r} must be 'epoch' "
                             "or 'iteration'.")
        self.loader = _train_loader(train, batch_size, shuffle, seed)
        self.val_loader = None if val is None else _batches(val, max(1024,
                                                                     self.loader.batch_size))
        _check_finite(self.loader.dataset, "training")
        if self.val_loader is not None:
            _check_finite(self.val_loader.dataset, "validation")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_step = TrainStep(model, loss_fn, optimizer, clip_grad_norm, jit)
        self.with_accuracy = _wants_accuracy(accuracy, self.loader.dataset)
        self.metrics, self.verbose, self.epochs = metrics, verbose, epochs
        self.callbacks, self.checkpoint_path = callbacks, checkpoint_path
        self.history = History() if resume is None else load_checkpoint(
            resume, model, optimizer, scheduler, self.loader, callbacks)
        self.start = self.saved_epochs = self.history.epochs
        self.scheduler = scheduler
        self.per_iteration_scheduler = scheduler is not None and scheduler_interval == "iteration"
        self.plateau = scheduler is not None and _is_plateau(scheduler)
        if self.plateau and self.per_iteration_scheduler:
            raise ValueError("fit: ReduceLROnPlateau needs an epoch's loss; use "
                             "scheduler_interval='epoch'.")
        self.progress = _Progress(progress, (epochs - self.start) * len(self.loader))
        self.time_offset = self.history.time[-1] if self.history.time else 0.0
        self.began = time.perf_counter()
        # where we are, for the messages of _check() and of an interrupt
        self.epoch, self.iteration = self.start, 0

    def run(self):
        """All the epochs left; returns the history."""
        history = self.history
        self.optimizer.zero_grad()
        try:  # NumPy warns about overflow before the divergence check explains it
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                for epoch in range(self.start, self.epochs):
                    self.epoch = epoch
                    self._epoch()
                    if self._end_epoch():
                        break
        except KeyboardInterrupt:
            history.stop_reason = (
                f"interrupted in epoch {self.epoch + 1} ({history.epochs} epochs recorded"
                + (f", {self.saved_epochs} in the checkpoint)" if self.checkpoint_path is not None
                   else ")"))
            raise TrainingInterrupted(history.stop_reason, history, self.epoch + 1,
                                      self.saved_epochs) from None
        finally:
            self.progress.close()
        return history

    def _epoch(self):
        """One pass over the training set; appends the epoch's row to the history."""
        self.model.train()
        self.loader.set_epoch(self.epoch)
        lr = self.optimizer.param_groups[0].get("lr", math.nan)  # NaN: Newton, LM, ... take none
        meter = _Meter(self.metrics, self.with_accuracy)
        losses = self.history.iteration_loss
        for i, (X, y) in enumerate(self.loader, 1):
            self.iteration = i
            outputs, value = self.train_step(X, y, self._check)
            losses.append(value)
            meter.add(outputs, y, value)
            if self.per_iteration_scheduler:
                self.scheduler.step()
            self.progress.update(value, i, len(self.loader), self.epoch, self.epochs)
        row = meter.result("train_")
        if self.val_loader is not None:
            row.update({"val_" + k: v for k, v in
                        evaluate(self.model, self.loss_fn, self.val_loader,
                                 accuracy=self.with_accuracy, metrics=self.metrics).items()})
        row.update(epoch=self.epoch + 1, lr=lr,
                   time=self.time_offset + time.perf_counter() - self.began)
        self.history._append(row)

    def _end_epoch(self):
        """The scheduler's epoch step, the epoch line, the callbacks and the checkpoint;
        True when a callback asks to stop."""
        history = self.history
        if self.scheduler is not None and not self.per_iteration_scheduler:
            if self.plateau:
                self.scheduler.step(history.val_loss[-1] if self.val_loader is not None
                                    else history.train_loss[-1])
            else:
                self.scheduler.step()
        if self.verbose:
            self.progress.write(_format_epoch(history, self.epochs))
        stop = False
        for callback in self.callbacks:  # every callback runs, even after one says stop
            stop = bool(callback(history, self.model, self.optimizer)) or stop
        if self.checkpoint_path is not None:
            save(checkpoint(self.model, self.optimizer, self.scheduler, history, self.loader,
                            self.callbacks), self.checkpoint_path)
            self.saved_epochs = history.epochs
        if stop and self.verbose and history.stop_reason:
            self.progress.write(history.stop_reason)
        return stop

    def _check(self, value):
        """Runs before the step: a NaN or infinite loss never reaches the weights."""
        if math.isfinite(value):
            return
        lr_now = self.optimizer.param_groups[0].get("lr", math.nan)
        cure = (f"with learning rate {lr_now:.6g}; lower the learning rate or clip the "
                "gradients" if math.isfinite(lr_now) else
                f"with {type(self.optimizer).__name__}, which has no learning rate; start from "
                "other weights or pick another optimizer")
        raise DivergenceError(
            f"training diverged at epoch {self.epoch + 1}, iteration {self.iteration} of "
            f"{len(self.loader)} (step {len(self.history.iteration_loss) + 1} overall): the "
            f"loss is {value} {cure}.", self.history, self.epoch + 1, self.iteration, lr_now)
