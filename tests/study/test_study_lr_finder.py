"""The LR range test and the schedule gallery."""

import inspect
import math

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.data import make_moons
from tinygrad_opt.optim import lr_scheduler
from tinygrad_opt.study import lr_finder


def _setup():
    tg.manual_seed(0)
    X, y = make_moons(200, noise=0.2, seed=0)
    model = nn.MLP([2, 8, 2], activation="tanh")
    return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), (X, y)


def test_range_test_sweeps_exponentially_and_restores_the_state():
    model, opt, data = _setup()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    result = lr_finder.lr_range_test(model, nn.functional.cross_entropy, opt, data,
                                     start_lr=1e-4, end_lr=1e2, num_iter=60)
    n = len(result.lrs)
    np.testing.assert_allclose(result.lrs, 1e-4 * (1e6) ** (np.arange(n) / 59), rtol=1e-12)
    # the smoothing is the EMA s_i = 0.05 loss_i + 0.95 s_{i-1}, s_0 = loss_0
    s = [result.losses[0]]
    for v in result.losses[1:]:
        s.append(0.05 * v + 0.95 * s[-1])
    np.testing.assert_allclose(result.smoothed, s, rtol=1e-12)
    assert result.stopped_early and n < 60  # lr 100 with momentum blows the loss up
    assert result.smoothed[-1] > 5 * result.smoothed.min()
    assert 1e-3 < result.suggestion < 10
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    assert opt.param_groups[0]["lr"] == 0.1 and len(opt.state) == 0


def test_suggestion_is_the_steepest_descent_of_the_smoothed_loss():
    lrs = np.geomspace(1e-5, 1, 50)
    x = np.log10(lrs)
    smoothed = 1 / (1 + np.exp(3 * (x + 2.5)))  # falls fastest at lr = 10^-2.5
    suggestion = lr_finder.suggest(lrs, smoothed)
    assert abs(math.log10(suggestion) + 2.5) < 0.06
    assert math.isnan(lr_finder.suggest(lrs[:2], smoothed[:2]))


def test_bad_ranges_are_refused():
    model, opt, data = _setup()
    with pytest.raises(ValueError, match="start_lr"):
        lr_finder.lr_range_test(model, nn.functional.cross_entropy, opt, data, start_lr=1,
                                end_lr=0.1)


def test_gallery_shows_every_scheduler_class():
    public = {c for _, c in inspect.getmembers(lr_scheduler, inspect.isclass)
              if issubclass(c, lr_scheduler.LRScheduler) and c is not lr_scheduler.LRScheduler
              and not c.__name__.startswith("_")}
    assert public == set(lr_finder.schedule_classes())


def test_gallery_curves_follow_the_closed_forms():
    curves = lr_finder.schedule_curves(steps=40, base_lr=0.1)
    assert len(curves) == len(lr_finder.SCHEDULES)
    t = np.arange(40)
    np.testing.assert_allclose(curves["CosineAnnealingLR"],
                               0.05 * (1 + np.cos(np.pi * t / 40)), atol=1e-12)
    np.testing.assert_allclose(curves["ExponentialLR (γ=0.95)"], 0.1 * 0.95 ** t, rtol=1e-12)
    np.testing.assert_allclose(curves["StepLR (÷10 every n/4)"], 0.1 * 0.1 ** (t // 10),
                               rtol=1e-12)
    np.testing.assert_allclose(curves["InverseTimeLR (α₀/(1+0.1t))"], 0.1 / (1 + 0.1 * t),
                               rtol=1e-12)
    plateau = curves["ReduceLROnPlateau (on a stalling loss)"]
    assert plateau[0] == 0.1 and plateau[-1] < 0.1 and np.all(np.diff(plateau) <= 0)
