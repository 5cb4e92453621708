"""Learning-rate schedules, with PyTorch's semantics (``torch.optim.lr_scheduler``).

A scheduler edits ``group["lr"]`` of its optimizer. Build it after the
optimizer; it sets ``group["initial_lr"]`` (the α₀ of every formula below),
and its constructor already applies epoch 0. Then call ``scheduler.step()``
once per epoch (or per iteration, if that is what your schedule counts),
*after* ``optimizer.step()``::

    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(model, opt)
        sched.step()

``last_epoch`` counts the steps taken (0 right after construction),
``get_last_lr()`` is the list of learning rates it set last, and
``state_dict()`` / ``load_state_dict()`` save and restore it (plain numbers,
lists and strings, so ``tg.save`` can write them).

All of PyTorch's schedulers: LambdaLR, MultiplicativeLR, StepLR, MultiStepLR,
ConstantLR, LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR,
CosineAnnealingWarmRestarts, CyclicLR and OneCycleLR (in ``cyclic_lr.py``; they
also cycle the momentum), SequentialLR, ChainedScheduler, ReduceLROnPlateau.
The lecture's schedules PyTorch has no class for:
InverseTimeLR (α₀ / (1 + k·t)), InverseSqrtLR (α₀ / √t), and LinearWarmup,
which puts a linear warmup in front of any scheduler.

As in PyTorch, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR,
ExponentialLR, PolynomialLR and CosineAnnealingLR are *chainable*: each step multiplies the current ``group["lr"]``,
so they compose with changes made from outside. ``step(epoch)`` (deprecated in
PyTorch) jumps to ``epoch`` with the closed form instead.
"""

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter

import numpy as np

from .cyclic_lr import CyclicLR, OneCycleLR  # the cyclical schedules: their own file
from .optimizer import Optimizer
from .scheduler_base import EPOCH_DEPRECATION_WARNING, LRScheduler, current_lrs, plain


class _LambdaScheduler(LRScheduler):
    """A schedule driven by one function of the epoch per param group
    (:class:`LambdaLR`, :class:`MultiplicativeLR`).

    ``state_dict`` saves the ``__dict__`` of callable objects, not functions
    or lambdas (as PyTorch): rebuild the scheduler with its functions, then load.
    """

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        if not isinstance(lr_lambda, (list, tuple)):
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        else:
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas (one per "
                                 f"param group), but got {len(lr_lambda)}.")
            self.lr_lambdas = list(lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got "
                                f"{type(fn).__name__}; pass a function of the epoch.")
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType)
                               else plain(dict(fn.__dict__)) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for fn, saved in zip(self.lr_lambdas, state_dict.get("lr_lambdas", [])):
            if saved is not None:
                fn.__dict__.update(plain(saved))


class LambdaLR(_LambdaScheduler):
    """α = α₀ · λ(t): the initial lr times a function of the epoch t.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        lr_lambda (callable or list): λ(t), or one per param group.
        last_epoch (int): default -1.
    """

    def get_lr(self):
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaScheduler):
    """αₜ = αₜ₋₁ · λ(t) for t ≥ 1: each step multiplies the current lr by a
    function of the epoch (so α = α₀ · λ(1) ⋯ λ(t) while nothing else changes it).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        lr_lambda (callable or list): λ(t), or one per param group.
        last_epoch (int): default -1.
    """

    def get_lr(self):
        if self._is_initial:
            return current_lrs(self.optimizer)
        return [group["lr"] * fn(self.last_epoch)
                for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    """Step decay: α = α₀ · γ^⌊t / step_size⌋ (the lrs are multiplied by γ
    every ``step_size`` epochs).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        step_size (int): period of the decay, in epochs.
        gamma (float): γ, the factor (default 0.1).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if not isinstance(step_size, (int, np.integer)) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}.")
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return current_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Step decay at milestones: α = α₀ · γ^(number of milestones ≤ t).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        milestones (list of int): epochs at which to multiply by γ (a
            repeated milestone multiplies once per occurrence).
        gamma (float): γ (default 0.1).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.milestones = Counter(int(m) for m in plain(state_dict["milestones"]))

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return current_lrs(self.optimizer)
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Exponential decay: α = α₀ · γ^t (each step multiplies the lrs by γ).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        gamma (float): γ, the factor per epoch.
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return current_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing: α = η_min + ½ (α₀ - η_min)(1 + cos(π t / T_max)).

    With η_min = 0 this is the lecture's αₜ = ½ α₀ (1 + cos(tπ/T)). As in
    PyTorch the lr is updated recursively,

        αₜ = η_min + (αₜ₋₁ - η_min) (1 + cos(π t/T_max)) / (1 + cos(π (t-1)/T_max)),

    which equals the closed form while nothing else changes the lr, and keeps
    following the cosine past T_max (it rises again: no restarts).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        T_max (int): T, the number of epochs of the half period.
        eta_min (float): η_min, the lowest lr (default 0).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}.")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return current_lrs(self.optimizer)
        if self._step_count == 1 and t > 0:
            return [lo + (base - lo) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - lo) + lo for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""SGDR: cosine annealing restarted every Tᵢ epochs (Loshchilov & Hutter 2017).

        α = η_min + ½ (α₀ - η_min)(1 + cos(π T_cur / Tᵢ)),

    T_cur counts the epochs since the last restart; T₀ = ``T_0`` and
    Tᵢ₊₁ = ``T_mult`` · Tᵢ. ``step(epoch)`` accepts fractional epochs (call it
    every iteration with ``epoch + i / iters``), as in PyTorch.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        T_0 (int): epochs until the first restart.
        T_mult (int): growth of the period after each restart (default 1).
        eta_min (float): η_min (default 0).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if not isinstance(T_0, (int, np.integer)) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0!r}.")
        if not isinstance(T_mult, (int, np.integer)) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult!r}.")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min!r}.")
        self.T_0 = int(T_0)
        self.T_i = int(T_0)
        self.T_mult = int(T_mult)
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2 for base in self.base_lrs]

    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}.")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._step_count = getattr(self, "_step_count", 0) + 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = current_lrs(self.optimizer)


class LinearLR(LRScheduler):
    """Linear change of the factor: α = α₀ · (s + (e - s) · min(t, T) / T), from
    ``start_factor`` s to ``end_factor`` e over ``total_iters`` T epochs.

    With s = 1, e = 0 it is the lecture's linear decay αₜ = α₀ (1 - t/T); with
    e = 1 a linear warmup (s must be > 0 here: for a warmup from 0, use
    :class:`LinearWarmup`). Chainable, as in PyTorch.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        start_factor (float): s in (0, 1] (default 1/3).
        end_factor (float): e in [0, 1] (default 1).
        total_iters (int): T (default 5).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and "
                             f"less or equal to 1, got start_factor={start_factor!r}.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1, got "
                             f"end_factor={end_factor!r}.")
        if total_iters <= 0:
            raise ValueError(f"LinearLR: total_iters must be positive, got {total_iters!r}.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        s, e, T, t = self.start_factor, self.end_factor, self.total_iters, self.last_epoch
        if t == 0:
            return [group["lr"] * s for group in self.optimizer.param_groups]
        if self._is_initial or t > T:
            return current_lrs(self.optimizer)
        return [group["lr"] * (1.0 + (e - s) / (T * s + (t - 1) * (e - s)))
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        s, e, T = self.start_factor, self.end_factor, self.total_iters
        return [base * (s + (e - s) * min(T, self.last_epoch) / T) for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """A constant factor for a while: α = α₀ · f for t < T, then α₀ (``factor``
    f in [0, 1], ``total_iters`` T). Chainable: epoch 0 multiplies the lr by f,
    epoch T divides it by f.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        factor (float): f (default 1/3).
        total_iters (int): T (default 5).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1, "
                             f"got factor={factor!r}.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return current_lrs(self.optimizer)
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Polynomial decay to 0: α = α₀ · (1 - min(t, T)/T)^p (``total_iters`` T,
    ``power`` p; p = 1 is the lecture's linear decay). Chainable: each step
    multiplies the lr by ((1 - t/T) / (1 - (t-1)/T))^p.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        total_iters (int): T (default 5).
        power (float): p (default 1).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T = self.last_epoch, self.total_iters
        if self._is_initial or t > T:
            return current_lrs(self.optimizer)
        factor = ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.power
        return [group["lr"] * factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        T = self.total_iters
        return [base * (1.0 - min(T, self.last_epoch) / T) ** self.power
                for base in self.base_lrs]


class InverseTimeLR(LRScheduler):
    """The lecture's 1/t decay: α = α₀ / (1 + k · t), k = ``decay_rate``.

    With ``decay_steps`` d, t is replaced by t/d (⌊t/d⌋ when ``staircase``),
    as Keras' ``InverseTimeDecay``. Closed form (not chainable).

    Args:
        optimizer (Optimizer): wrapped optimizer.
        decay_rate (float): k >= 0.
        decay_steps (int): d > 0 (default 1).
        staircase (bool): decay in steps of d epochs (default False).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, decay_rate, decay_steps=1, staircase=False, last_epoch=-1):
        if decay_rate < 0:
            raise ValueError(f"InverseTimeLR: decay_rate must be >= 0, got {decay_rate!r}.")
        if decay_steps <= 0:
            raise ValueError(f"InverseTimeLR: decay_steps must be positive, got {decay_steps!r}.")
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.staircase = bool(staircase)
        super().__init__(optimizer, last_epoch)

    def _factor(self):
        p = self.last_epoch / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return 1.0 / (1.0 + self.decay_rate * p)

    def get_lr(self):
        f = self._factor()
        return [base * f for base in self.base_lrs]

    _get_closed_form_lr = get_lr


class InverseSqrtLR(LRScheduler):
    """The lecture's inverse square root decay: α = α₀ / √t, t = last_epoch + 1
    (so epoch 0 runs at α₀).

    With ``warmup_steps`` W > 1 the lr first rises linearly, α = α₀ t / W,
    reaches α₀ at t = W, then decays as α₀ √(W / t) (the Transformer's
    schedule, normalised so that its peak is α₀). Closed form.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        warmup_steps (int): W >= 0 (default 0: no warmup).
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, warmup_steps=0, last_epoch=-1):
        if warmup_steps < 0:
            raise ValueError(f"InverseSqrtLR: warmup_steps must be >= 0, got {warmup_steps!r}.")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def _factor(self):
        t = self.last_epoch + 1
        w = max(self.warmup_steps, 1)
        return min(t / w, math.sqrt(w / t))

    def get_lr(self):
        f = self._factor()
        return [base * f for base in self.base_lrs]

    _get_closed_form_lr = get_lr


class _Composite(LRScheduler):
    """A scheduler made of other schedulers (``self._schedulers``): its state
    holds theirs."""

    _not_saved = ("optimizer", "_schedulers")

    def state_dict(self):
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for s, saved in zip(self._schedulers, state_dict["_schedulers"]):
            s.load_state_dict(saved)


class SequentialLR(_Composite):
    """Run ``schedulers`` one after another, switching at ``milestones``.

    Scheduler i drives epochs [milestones[i-1], milestones[i]); at each
    milestone the next one restarts from its epoch 0 (as PyTorch). The
    classic use is a warmup followed by a decay::

        warm = LinearLR(opt, start_factor=0.1, total_iters=5)
        cos = CosineAnnealingLR(opt, T_max=95)
        sched = SequentialLR(opt, [warm, cos], milestones=[5])

    Args:
        optimizer (Optimizer): wrapped optimizer.
        schedulers (list): the schedulers, all of this optimizer.
        milestones (list of int): len(schedulers) - 1 increasing epochs.
        last_epoch (int): default -1.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got "
                             "no scheduler.")
        _check_same_optimizer(self, schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be "
                             "one more than the number of milestone points, but got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones.")
        self._schedulers = list(schedulers)
        self._milestones = [int(m) for m in milestones]
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._recursive_undo()
        index = bisect_right(self._milestones, 0)
        self._schedulers[index]._initial_step()
        self._last_lr = self._schedulers[index].get_last_lr()

    def _recursive_undo(self, sched=None):
        """Undo the epoch-0 step each scheduler took when it was built."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self._recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several schedulers at once, each on the lr the previous one left:
    the factors of chainable schedulers multiply (e.g. a ConstantLR warmup on top
    of an ExponentialLR decay)::

        sched = ChainedScheduler([ConstantLR(opt, 0.1, total_iters=2),
                                  ExponentialLR(opt, gamma=0.9)])

    Args:
        schedulers (list): the schedulers, all of one optimizer.
        optimizer (Optimizer): that optimizer (default: the first scheduler's).
    """

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler to be "
                             "chained, but got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_same_optimizer(self, schedulers, optimizer)
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = current_lrs(self._schedulers[-1].optimizer)

    def step(self):
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = current_lrs(self._schedulers[-1].optimizer)

    def __repr__(self):
        return f"ChainedScheduler({[type(s).__name__ for s in self._schedulers]})"


def _check_same_optimizer(owner, schedulers, optimizer):
    """The schedulers a SequentialLR / ChainedScheduler combines: schedulers (no
    ReduceLROnPlateau, which needs a metric) of ``optimizer``."""
    for i, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{type(owner).__name__}: the scheduler at index {i} has no "
                            "`optimizer` attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(f"{type(owner).__name__} does not support ReduceLROnPlateau "
                             f"(index {i}): it needs a metric passed to step().")
        if scheduler.optimizer is not optimizer:
            raise ValueError(f"{type(owner).__name__} expects all schedulers to belong to the "
                             f"same optimizer, but the {type(scheduler).__name__} at index "
                             f"{i} has another one.")


class _WarmupFactor:
    """λ(t) = s + (1 - s) · min(t, W) / W: the factor of a linear warmup."""

    def __init__(self, start_factor, warmup_steps):
        self.start_factor = start_factor
        self.warmup_steps = warmup_steps

    def __call__(self, epoch):
        s, w = self.start_factor, self.warmup_steps
        return s + (1.0 - s) * min(epoch, w) / w


class LinearWarmup(SequentialLR):
    """A linear warmup in front of any scheduler: the lr rises linearly from
    ``start_factor`` · α₀ (default 0, as the lecture) to α₀ over
    ``warmup_steps`` epochs, then ``scheduler`` runs from its own epoch 0::

        sched = LinearWarmup(CosineAnnealingLR(opt, T_max=95), warmup_steps=5)

    It is a :class:`SequentialLR` of a :class:`LambdaLR` warmup and
    ``scheduler``, with the same semantics and ``state_dict``.

    Args:
        scheduler (LRScheduler): the schedule after the warmup (not
            ReduceLROnPlateau).
        warmup_steps (int): W > 0, the length of the warmup in epochs.
        start_factor (float): the lr at epoch 0 is start_factor · α₀, in [0, 1].
    """

    def __init__(self, scheduler, warmup_steps, start_factor=0.0):
        if not isinstance(warmup_steps, (int, np.integer)) or warmup_steps <= 0:
            raise ValueError(f"LinearWarmup: warmup_steps must be a positive integer, got "
                             f"{warmup_steps!r}.")
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got "
                             f"{start_factor!r}.")
        optimizer = scheduler.optimizer
        warmup = LambdaLR(optimizer, _WarmupFactor(start_factor, int(warmup_steps)))
        super().__init__(optimizer, [warmup, scheduler], milestones=[int(warmup_steps)])


class ReduceLROnPlateau(LRScheduler):
    """Divide the lr when a metric stops improving (PyTorch's semantics).

    After more than ``patience`` epochs without improvement the lrs become
    max(lr · factor, min_lr) (changes below ``eps`` are skipped), followed by
    ``cooldown`` epochs in which bad epochs are not counted. "Improving" means
    below best · (1 - threshold) (mode "min", threshold_mode "rel"), below
    best - threshold ("abs"), or the mirror images for mode "max".

    Args:
        optimizer (Optimizer): wrapped optimizer.
        mode (str): "min" (default) or "max".
        factor (float): < 1 (default 0.1).
        patience (int): default 10.
        threshold (float): default 1e-4.
        threshold_mode (str): "rel" (default) or "abs".
        cooldown (int): default 0.
        min_lr (float or list): a floor per group (default 0).
        eps (float): default 1e-8.

    Call ``scheduler.step(val_loss)`` once per epoch. (A subclass of
    :class:`LRScheduler`, as in PyTorch, though it builds no schedule.)
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError(f"Factor should be < 1.0, got factor={factor!r}.")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer; pass the "
                            "optimizer whose learning rate to schedule.")
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs (one per "
                                 f"param group), got {len(min_lr)}.")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = current_lrs(optimizer)
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None):
        """Record this epoch's ``metrics`` (a number or a one-element tensor)."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = current_lrs(self.optimizer)

    def _reduce_lr(self):
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"The number of param groups in the optimizer "
                                   f"({len(self.optimizer.param_groups)}) differs from when "
                                   f"ReduceLROnPlateau was built ({len(self.min_lrs)}); set "
                                   "its min_lrs to one value per group.")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for i, group in enumerate(self.optimizer.param_groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                group["lr"] = new

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode {mode!r} is unknown; use 'min' or 'max'.")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold mode {threshold_mode!r} is unknown; "
                             "use 'rel' or 'abs'.")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def get_last_lr(self):
        return self._last_lr

    def state_dict(self):
        return {k: plain(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update({k: plain(v) for k, v in state_dict.items() if k != "optimizer"})
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)

    def __repr__(self):
        return (f"ReduceLROnPlateau(mode={self.mode!r}, best={self.best}, "
                f"num_bad_epochs={self.num_bad_epochs}, lr={self.get_last_lr()})")


__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR",
           "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "SequentialLR",
           "ChainedScheduler", "ReduceLROnPlateau", "InverseTimeLR", "InverseSqrtLR",
           "LinearWarmup"]
