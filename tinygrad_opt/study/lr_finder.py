"""The learning-rate range test (Leslie Smith), and the gallery of every schedule.

    result = lr_finder.lr_range_test(model, nn.functional.cross_entropy, optimizer,
                                     (X, y), start_lr=1e-6, end_lr=10, num_iter=100)
    result.suggestion      # the lr where the smoothed loss falls fastest

**Range test** (Smith 2017, §3.3; the loss-based form of fastai's ``lr_find``
and davidtvs/pytorch-lr-finder): train for ``num_iter`` mini-batches while the
learning rate grows exponentially,

    lr_i = start_lr · (end_lr / start_lr)^(i / (num_iter - 1)),

(or linearly), record the loss of every batch, smooth it with an exponential
moving average s_i = β·loss_i + (1-β)·s_{i-1} (β = ``smooth_f`` = 0.05), and stop
when the loss diverges: a non-finite loss, or -- once ``skip_start`` points are in,
so a few noisy first batches cannot stop it -- a smoothed loss above
``diverge_th`` (5) times the best smoothed loss so far. The suggested lr is where
the smoothed loss falls fastest -- the minimum of ds/d(log lr) over the points
before the smoothed minimum, ignoring the first ``skip_start`` and last
``skip_end`` points (pytorch-lr-finder's "steepest gradient"); ``min_loss_lr``
(the lr of the smoothed minimum / 10, fastai's rule of thumb) is given too.

The test can only suggest where the loss fell: when fewer than 3 points were
recorded, or the smoothed loss never dropped by ``min_drop`` (10 %) below its
first value (a model that is already trained, or a start_lr already too large),
both suggestions are NaN, and ``message`` says why (and a ``RuntimeWarning``
repeats it). The model's and optimizer's states are restored afterwards: the
test only looks.

**Schedule gallery**: :func:`schedule_curves` runs every scheduler of
``optim.lr_scheduler`` on a dummy optimizer and returns the lr of each epoch,
for :func:`tinygrad_opt.study.plots.schedule_gallery`.
"""

import copy
import math
import warnings

import numpy as np

from ..data import DataLoader, as_dataset
from ..optim import SGD
from ..optim import lr_scheduler as S
from ..tensor import Tensor

__all__ = ["SCHEDULES", "LRFinderResult", "lr_range_test", "schedule_curves", "suggest"]


class LRFinderResult:
    """``lrs``, ``losses`` (raw), ``smoothed``, ``suggestion`` (steepest descent of the
    smoothed loss), ``min_loss_lr`` (the lr at the lowest smoothed loss / 10),
    ``stopped_early`` (the loss diverged before ``num_iter``), ``stop_reason`` (why
    the test ended, a phrase), ``message`` (None, or why there is no suggestion),
    ``best_loss``."""

    def __init__(self, lrs, losses, smoothed, suggestion, min_loss_lr, stopped_early,
                 stop_reason="", message=None):
        self.lrs, self.losses, self.smoothed = lrs, losses, smoothed
        self.suggestion, self.min_loss_lr = suggestion, min_loss_lr
        self.stopped_early, self.stop_reason = stopped_early, stop_reason
        self.message = message

    @property
    def best_loss(self):
        return float(np.min(self.smoothed)) if len(self.smoothed) else math.nan

    def __repr__(self):
        return (f"LRFinderResult(suggestion={self.suggestion:.3g}, min_loss_lr="
                f"{self.min_loss_lr:.3g}, points={len(self.lrs)}, "
                f"stopped_early={self.stopped_early})")


def suggest(lrs, smoothed, skip_start=10, skip_end=5):
    """The lr where the smoothed loss falls fastest: argmin of the slope d s / d log(lr)
    over the points up to the smoothed minimum, after skipping ``skip_start`` and
    ``skip_end`` (fewer when the curve is short). NaN when fewer than 3 points remain."""
    lrs = np.asarray(lrs, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    if len(s):  # past the minimum the loss rises: the steepest *descent* lies before it
        keep = max(int(np.argmin(s)) + 1 + skip_end, 3)
        lrs, s = lrs[:keep], s[:keep]
    n = len(s)
    while n - skip_start - skip_end < 3 and (skip_start or skip_end):
        skip_start, skip_end = max(skip_start - 1, 0), max(skip_end - 1, 0)
    lo, hi = skip_start, n - skip_end
    if hi - lo < 3:
        return math.nan
    x = np.log(lrs[lo:hi])
    slope = np.gradient(s[lo:hi], x)
    return float(lrs[lo + int(np.argmin(slope))])


def lr_range_test(model, loss_fn, optimizer, data, start_lr=1e-7, end_lr=10.0, num_iter=100,
                  step_mode="exp", smooth_f=0.05, diverge_th=5.0, batch_size=32, seed=0,
                  skip_start=10, skip_end=5, min_drop=0.1, progress=None):
    """Run the range test (see the module doc); returns an :class:`LRFinderResult`.

    ``data`` is ``(X, y)``, a TensorDataset or a DataLoader; batches cycle through it
    as long as needed. ``progress(i)`` is called after each iteration.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_range_test: need 0 < start_lr < end_lr, got start_lr={start_lr}, "
                         f"end_lr={end_lr}.")
    if num_iter < 2:
        raise ValueError(f"lr_range_test: num_iter={num_iter} must be at least 2.")
    if step_mode not in ("exp", "linear"):
        raise ValueError(f"lr_range_test: step_mode={step_mode!r} must be 'exp' or 'linear'.")
    if not 0 < smooth_f <= 1:
        raise ValueError(f"lr_range_test: smooth_f={smooth_f} must be in (0, 1].")
    loader = data if isinstance(data, DataLoader) else DataLoader(
        as_dataset(data), batch_size=batch_size, shuffle=True, seed=seed)
    saved_model = {k: (v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v))
                   for k, v in model.state_dict().items()}
    saved_opt = optimizer.state_dict()
    saved_lrs = [g["lr"] for g in optimizer.param_groups]
    if step_mode == "exp":
        schedule = start_lr * (end_lr / start_lr) ** (np.arange(num_iter) / (num_iter - 1))
    else:
        schedule = np.linspace(start_lr, end_lr, num_iter)
    lrs, losses, smoothed = [], [], []
    stopped, reason = False, f"it ran all {num_iter} iterations"
    best = math.inf
    batches = iter(loader)
    try:
        if hasattr(model, "train"):
            model.train()
        for i, lr in enumerate(schedule):
            try:
                X, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                X, y = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = float(lr)
            optimizer.zero_grad()
            loss = loss_fn(model(X), y)
            value = float(loss.item())
            if not math.isfinite(value):
                stopped, reason = True, f"the loss became {value} at lr {lr:.3g}"
                break
            loss.backward()
            optimizer.step()
            avg = value if not smoothed else smooth_f * value + (1 - smooth_f) * smoothed[-1]
            lrs.append(float(lr))
            losses.append(value)
            smoothed.append(avg)
            best = min(best, avg)
            if progress is not None:
                progress(i + 1)
            if i >= skip_start and avg > diverge_th * best:
                stopped = True
                reason = (f"the smoothed loss {avg:.3g} exceeded {diverge_th:g}× the best "
                          f"{best:.3g} at lr {lr:.3g}")
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        for group, lr in zip(optimizer.param_groups, saved_lrs):
            group["lr"] = lr
    lrs, losses, smoothed = (np.asarray(a, dtype=np.float64) for a in (lrs, losses, smoothed))
    message = _no_suggestion(lrs, smoothed, reason, min_drop, smooth_f)
    if message is None:
        suggestion = suggest(lrs, smoothed, skip_start, skip_end)
        min_loss_lr = float(lrs[int(np.argmin(smoothed))]) / 10
    else:
        suggestion = min_loss_lr = math.nan
        warnings.warn(f"lr_range_test: {message}", RuntimeWarning, stacklevel=2)
    return LRFinderResult(lrs, losses, smoothed, suggestion, min_loss_lr, stopped, reason,
                          message)


def _no_suggestion(lrs, smoothed, reason, min_drop, smooth_f):
    """Why the curve supports no suggestion (a sentence), or None when it does."""
    if len(smoothed) < 3:
        return (f"no suggestion: only {len(smoothed)} points were recorded before "
                f"{reason}; lower start_lr.")
    first, best = float(smoothed[0]), float(np.min(smoothed))
    if not best < (1 - min_drop) * first:  # also a loss that starts at 0
        return (f"no suggestion: the smoothed loss never fell {min_drop:.0%} below its first "
                f"value ({first:.3g}; best {best:.3g} at lr {lrs[int(np.argmin(smoothed))]:.3g})"
                f" before {reason}, so no lr shows fast descent. Run the test on a freshly "
                "initialised model (a trained one has little left to lose) or lower start_lr"
                + (f"; or raise num_iter: {len(smoothed)} batches are few for a smoothing "
                   f"that averages over about {1 / smooth_f:.0f}." if len(smoothed) < 5 / smooth_f
                   else "."))
    return None


# -- the schedule gallery ----------------------------------------------------------------------


def _schedules():
    """name -> (build(optimizer, steps), needs a metric): one example of every scheduler."""
    def plateau_metric(t, steps):
        # a loss that improves, then stalls (ReduceLROnPlateau cuts the lr when it stalls)
        return 1.0 / (1 + t) if t < steps // 3 else 1.0 / (1 + steps // 3)

    return {
        "LambdaLR (0.97^t)": (lambda o, n: S.LambdaLR(o, lambda t: 0.97 ** t), None),
        "StepLR (÷10 every n/4)": (lambda o, n: S.StepLR(o, step_size=max(1, n // 4),
                                                           gamma=0.1), None),
        "MultiStepLR (n/2, 3n/4)": (lambda o, n: S.MultiStepLR(o, [n // 2, 3 * n // 4],
                                                                 gamma=0.1), None),
        "ExponentialLR (γ=0.95)": (lambda o, n: S.ExponentialLR(o, gamma=0.95), None),
        "CosineAnnealingLR": (lambda o, n: S.CosineAnnealingLR(o, T_max=n), None),
        "CosineAnnealingWarmRestarts": (
            lambda o, n: S.CosineAnnealingWarmRestarts(o, T_0=max(1, n // 7), T_mult=2), None),
        "LinearLR (1/3 → 1)": (lambda o, n: S.LinearLR(o, start_factor=1 / 3,
                                                       total_iters=max(1, n // 4)), None),
        "InverseTimeLR (α₀/(1+0.1t))": (lambda o, n: S.InverseTimeLR(o, decay_rate=0.1),
                                         None),
        "InverseSqrtLR (α₀/√t)": (lambda o, n: S.InverseSqrtLR(o, warmup_steps=max(1, n // 10)),
                                  None),
        "SequentialLR (linear, then cosine)": (
            lambda o, n: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1,
                                                       total_iters=max(1, n // 10)),
                                            S.CosineAnnealingLR(o, T_max=n - max(1, n // 10))],
                                        milestones=[max(1, n // 10)]), None),
        "LinearWarmup + cosine": (
            lambda o, n: S.LinearWarmup(S.CosineAnnealingLR(o, T_max=n - max(1, n // 10)),
                                        warmup_steps=max(1, n // 10)), None),
        "MultiplicativeLR (×0.97 per epoch)": (
            lambda o, n: S.MultiplicativeLR(o, lambda t: 0.97), None),
        "ConstantLR (1/3 for n/4)": (lambda o, n: S.ConstantLR(o, factor=1 / 3,
                                                               total_iters=max(1, n // 4)), None),
        "PolynomialLR (power 2)": (lambda o, n: S.PolynomialLR(o, total_iters=n, power=2.0),
                                   None),
        "CyclicLR (triangular)": (
            lambda o, n: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=max(1, n // 8),
                                    cycle_momentum=False), None),
        "OneCycleLR": (lambda o, n: S.OneCycleLR(o, max_lr=0.1, total_steps=n,
                                                 cycle_momentum=False), None),
        "ChainedScheduler (constant, exponential)": (
            lambda o, n: S.ChainedScheduler([S.ConstantLR(o, factor=0.5,
                                                          total_iters=max(1, n // 5)),
                                             S.ExponentialLR(o, gamma=0.97)]), None),
        "ReduceLROnPlateau (on a stalling loss)": (
            lambda o, n: S.ReduceLROnPlateau(o, factor=0.5, patience=max(1, n // 10)),
            plateau_metric),
    }


SCHEDULES = tuple(_schedules())


def schedule_curves(steps=100, base_lr=0.1):
    """{name: array of the lr at epochs 0..steps-1} for one example of every scheduler
    in ``optim.lr_scheduler`` (their classes: ``schedule_classes()``)."""
    if steps < 2:
        raise ValueError(f"schedule_curves: steps={steps} must be at least 2.")
    out = {}
    for name, (build, metric) in _schedules().items():
        dummy = Tensor([0.0], dtype="float64", requires_grad=True)
        opt = SGD([dummy], lr=base_lr)
        sched = build(opt, steps)
        lrs = []
        for t in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if metric is None:
                sched.step()
            else:
                sched.step(metric(t, steps))
        out[name] = np.asarray(lrs, dtype=np.float64)
    return out


def schedule_classes():
    """The scheduler classes the gallery shows (one example each)."""
    dummy = Tensor([0.0], dtype="float64", requires_grad=True)
    classes = []
    for build, _ in _schedules().values():
        sched = build(SGD([dummy], lr=0.1), 40)
        classes.append(type(sched))
    return [c for c in classes if issubclass(c, S.LRScheduler)]
