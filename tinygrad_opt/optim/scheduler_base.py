"""What every learning-rate scheduler shares: the :class:`LRScheduler` base class and
its two helpers, :func:`current_lrs` and :func:`plain` (checkpoint values as plain
Python). ``lr_scheduler.py`` and ``cyclic_lr.py`` both build on it, so neither
imports the other for it.
"""

import warnings
import weakref

import numpy as np

from .. import capture
from .optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated "
    "where possible. Please use `scheduler.step()` to step the scheduler. During the "
    "deprecation, if epoch is different from None, the closed form is used instead of the "
    "new chainable form, where available.")


def current_lrs(optimizer):
    """The learning rate of every param group, in order."""
    return [group["lr"] for group in optimizer.param_groups]


def plain(value):
    """Numbers, strings and lists as Python objects (a checkpoint file may hand
    back NumPy scalars and arrays)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class LRScheduler:
    """Base class of the schedulers: subclasses implement :meth:`get_lr`
    (and, where one exists, ``_get_closed_form_lr``).

    Args:
        optimizer (Optimizer): the optimizer whose ``group["lr"]`` to set.
        last_epoch (int): the index of the last epoch; -1 (default) starts a
            new schedule. Only when resuming: then every group must already
            have ``initial_lr`` (load the optimizer's state first).
    """

    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer; pass the "
                            "optimizer whose learning rate to schedule.")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   f"when resuming a scheduler with last_epoch={last_epoch}; "
                                   "load the optimizer's state_dict first, or use "
                                   "last_epoch=-1 for a fresh run.")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        _track_optimizer_steps(optimizer)
        self._initial_step()

    def _initial_step(self):
        """Reset the step count and apply epoch 0 (last_epoch + 1)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The learning rates for ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates this scheduler set last, one per param group."""
        return self._last_lr

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:  # every override too: see step's decorator
            cls.step = capture.host_call(cls.step)

    @capture.host_call  # tg.jit runs it again at every replay (it changes the lrs)
    def step(self, epoch=None):
        """Advance one epoch (or jump to ``epoch``, deprecated) and set the lrs.
        Call it after ``optimizer.step()``."""
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", True):
            warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
                          "Call them in the opposite order: `optimizer.step()` before "
                          "`lr_scheduler.step()`, or the first value of the schedule is "
                          "skipped.", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = current_lrs(self.optimizer)

    # -- checkpoints ------------------------------------------------------------

    _not_saved = ("optimizer",)

    def state_dict(self):
        """Every attribute but the optimizer, as plain numbers, strings and lists."""
        return {k: plain(v) for k, v in self.__dict__.items() if k not in self._not_saved}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned (or ``tg.load`` read back)."""
        self.__dict__.update({k: plain(v) for k, v in state_dict.items()
                              if k not in self._not_saved})

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


def _track_optimizer_steps(optimizer):
    """Mark the optimizer when its step runs, so that a scheduler stepped first
    can warn (PyTorch's most common scheduling mistake)."""
    step = optimizer.step
    if getattr(step, "_wrapped_by_lr_sched", False) or not hasattr(step, "__func__"):
        return
    optimizer._opt_called = False
    ref = weakref.ref(optimizer)
    func = step.__func__

    def wrapper(*args, **kwargs):
        opt = ref()
        opt._opt_called = True
        return func(opt, *args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    wrapper.__doc__ = func.__doc__
    optimizer.step = wrapper
