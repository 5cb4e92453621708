"""Cyclical schedules: PyTorch's ``CyclicLR`` (Smith 2017) and ``OneCycleLR``
(Smith & Topin 2018), which move the learning rate *and* the momentum.

Both are stepped once per batch (not per epoch). While the lr rises the
momentum falls and the other way round: a large step is taken with little
momentum. The "momentum" is ``group["momentum"]`` (SGD, RMSprop) or β₁ of
``group["betas"]`` (Adam and its family), as in PyTorch. Importing from
``optim.lr_scheduler`` works too.
"""

import math
import types

from .optimizer import Optimizer
from .scheduler_base import LRScheduler, plain

CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def _per_group(name, optimizer, value):
    """One value per param group: a list or tuple as given (one per group), a
    single value repeated."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{name} must have the same length as optimizer.param_groups: "
                             f"{name} has {len(value)} values, param_groups has {groups}.")
        return list(value)
    return [value] * groups


class _MomentumCycling:
    """Where a cyclical schedule writes its momentum: ``group["momentum"]``, or β₁
    of ``group["betas"]`` for the Adam family (``use_beta1``)."""

    def _start_momentum_cycle(self, optimizer, base_momentum, max_momentum, last_epoch):
        if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError(f"{type(self).__name__}: optimizer must support momentum or beta1 "
                             f"with `cycle_momentum` option enabled ({type(optimizer).__name__} "
                             "has neither); pass cycle_momentum=False.")
        self.use_beta1 = "betas" in optimizer.defaults
        maxes = _per_group("max_momentum", optimizer, max_momentum)
        bases = _per_group("base_momentum", optimizer, base_momentum)
        if last_epoch == -1:
            for top, bottom, group in zip(maxes, bases, optimizer.param_groups):
                self._set_momentum(group, top)
                group["max_momentum"] = top
                group["base_momentum"] = bottom
        return bases, maxes

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value


class CyclicLR(_MomentumCycling, LRScheduler):
    r"""Cyclical learning rate: triangles between ``base_lr`` and ``max_lr``.

    A cycle lasts ``step_size_up`` + ``step_size_down`` batches. At batch t
    (``last_epoch``), with c = ⌊1 + t / size⌋ the cycle number and
    x = 1 + t / size - c ∈ [0, 1) the position in it, r = up / size::

        s = x / r                 while rising (x ≤ r), else  (x - 1) / (r - 1)
        α = base_lr + (max_lr - base_lr) · s · scale
        μ = max_momentum - (max_momentum - base_momentum) · s · scale

    scale is 1 (``"triangular"``), 1 / 2^(c-1) (``"triangular2"``: the height
    halves every cycle) or γ^t (``"exp_range"``), or ``scale_fn`` of c or of t
    (``scale_mode`` "cycle" / "iterations").

    Args:
        optimizer (Optimizer): wrapped optimizer; its lr is set to ``base_lr``.
        base_lr (float or list): the lowest lr, per group.
        max_lr (float or list): the top of the first cycle, per group.
        step_size_up (int): batches of the rising half (default 2000).
        step_size_down (int): batches of the falling half (default: step_size_up).
        mode (str): "triangular" (default), "triangular2" or "exp_range".
        gamma (float): γ of "exp_range" (default 1).
        scale_fn (callable): a custom scale (overrides ``mode``).
        scale_mode (str): "cycle" (default) or "iterations", for ``scale_fn``.
        cycle_momentum (bool): cycle the momentum / β₁ inversely (default True).
        base_momentum (float or list): the lowest momentum (default 0.8).
        max_momentum (float or list): the highest momentum (default 0.9).
        last_epoch (int): the index of the last batch (default -1).
    """

    _not_saved = ("optimizer", "_scale_fn_custom")

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle",
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer; pass the "
                            "optimizer whose learning rate to schedule.")
        if mode not in CYCLIC_MODES and scale_fn is None:
            raise ValueError(f"CyclicLR: mode {mode!r} is unknown and scale_fn is None; use "
                             "'triangular', 'triangular2' or 'exp_range', or pass a scale_fn.")
        self.optimizer = optimizer
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode if scale_fn is not None else (
            "iterations" if mode == "exp_range" else "cycle")
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.base_momentums, self.max_momentums = self._start_momentum_cycle(
                optimizer, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs  # after the base class, which sets them from initial_lr

    def scale_fn(self, x):
        """The height factor at x (the cycle number or the batch, see ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base + (top - base) * scale_factor * scale
               for base, top in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for group, bottom, top in zip(self.optimizer.param_groups, self.base_momentums,
                                          self.max_momentums):
                self._set_momentum(group, top - (top - bottom) * scale_factor * scale)
        return lrs

    def state_dict(self):
        """As the base class; a custom ``scale_fn`` is saved by its ``__dict__``
        when it is a callable object (a function or lambda is not saved)."""
        state = super().state_dict()
        fn = self._scale_fn_custom
        state["_scale_fn_custom"] = None if fn is None or isinstance(fn, types.FunctionType) \
            else plain(dict(fn.__dict__))
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        saved = state_dict.get("_scale_fn_custom")
        if saved is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(plain(saved))


ANNEAL_STRATEGIES = ("cos", "linear")


class OneCycleLR(_MomentumCycling, LRScheduler):
    r"""The 1cycle policy: one warmup to ``max_lr``, then an annealing far below
    the start, with the momentum moving the other way.

    Over ``total_steps`` batches (or ``epochs`` × ``steps_per_epoch``), with
    α₀ = max_lr / ``div_factor`` and α_min = α₀ / ``final_div_factor``:

    * two phases (default): α₀ → max_lr over the first ``pct_start`` of the
      steps, then max_lr → α_min; the momentum goes max → base → max.
    * ``three_phase``: α₀ → max_lr, max_lr → α₀ (as long as the first), then
      α₀ → α_min; the momentum goes max → base → max, then stays at max.

    Each phase from a to b anneals with p ∈ [0, 1] its progress as
    b + (a - b)(1 + cos πp)/2 (``"cos"``, default) or a + (b - a) p (``"linear"``).
    Stepping past ``total_steps`` is an error.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        max_lr (float or list): the peak lr, per group.
        total_steps (int): the number of batches (or give epochs and steps_per_epoch).
        epochs (int), steps_per_epoch (int): total_steps = epochs × steps_per_epoch.
        pct_start (float): the share of the steps spent rising (default 0.3).
        anneal_strategy (str): "cos" (default) or "linear".
        cycle_momentum (bool): cycle the momentum / β₁ (default True).
        base_momentum (float or list): the momentum at the lr's peak (default 0.85).
        max_momentum (float or list): the momentum at the ends (default 0.95).
        div_factor (float): α₀ = max_lr / div_factor (default 25).
        final_div_factor (float): α_min = α₀ / final_div_factor (default 1e4).
        three_phase (bool): the three-phase form (default False).
        last_epoch (int): the index of the last batch (default -1).
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer; pass the "
                            "optimizer whose learning rate to schedule.")
        self.optimizer = optimizer
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start!r}.")
        if anneal_strategy not in ANNEAL_STRATEGIES:
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy!r}.")
        self._anneal_func_type = anneal_strategy
        self._schedule_phases = _phases(self.total_steps, pct_start, three_phase)
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for top, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self._start_momentum_cycle(optimizer, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total "
                             f"steps is {self.total_steps}; build OneCycleLR with more steps.")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]],
                                            pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(
                            group[phase["start_momentum"]], group[phase["end_momentum"]], pct))
                    break
                start_step = phase["end_step"]
        return lrs


def _total_steps(total_steps, epochs, steps_per_epoch):
    if total_steps is not None:
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps!r}.")
        return total_steps
    if epochs is None or steps_per_epoch is None:
        raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch).")
    if not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"Expected positive integer epochs, but got {epochs!r}.")
    if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
        raise ValueError(f"Expected positive integer steps_per_epoch, but got "
                         f"{steps_per_epoch!r}.")
    return epochs * steps_per_epoch


def _phases(total_steps, pct_start, three_phase):
    """PyTorch's phases: where each ends (a step index) and the group keys of its
    start and end lr and momentum."""
    def phase(end_step, start_lr, end_lr, start_momentum, end_momentum):
        return dict(end_step=end_step, start_lr=start_lr, end_lr=end_lr,
                    start_momentum=start_momentum, end_momentum=end_momentum)

    rise = float(pct_start * total_steps) - 1
    if three_phase:
        return [phase(rise, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                phase(float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr",
                      "base_momentum", "max_momentum"),
                phase(total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
    return [phase(rise, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            phase(total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
