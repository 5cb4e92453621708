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


def test_a_trained_model_gets_no_suggestion_but_a_reason():
    # a linear model already at its exact least-squares fit: no lr makes the loss fall
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = X @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)
    model = nn.Linear(3, 1)
    model.weight.data[...] = [[1.0, -2.0, 0.5]]
    model.bias.data[...] = 0.0
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match="never fell"):
        result = lr_finder.lr_range_test(model, nn.functional.mse_loss, opt, (X, y),
                                         start_lr=1e-5, end_lr=10, num_iter=60)
    assert math.isnan(result.suggestion) and math.isnan(result.min_loss_lr)
    assert "freshly initialised" in result.message
    assert not result.smoothed.min() < 0.9 * result.smoothed[0]  # what the message claims


def test_a_fresh_model_gets_a_suggestion_on_the_falling_part():
    model, opt, data = _setup()
    result = lr_finder.lr_range_test(model, nn.functional.cross_entropy, opt, data,
                                     start_lr=1e-4, end_lr=10, num_iter=80)
    assert result.message is None and math.isfinite(result.suggestion)
    at = int(np.nonzero(result.lrs == result.suggestion)[0][0])
    assert at <= int(np.argmin(result.smoothed))
    assert result.smoothed.min() <= 0.9 * result.smoothed[0]
    if result.stopped_early:  # the stop rule as documented: 5x the best so far
        assert "exceeded 5×" in result.stop_reason or "became" in result.stop_reason


@pytest.mark.filterwarnings("ignore:lr_range_test:RuntimeWarning")
def test_a_noisy_first_batch_does_not_stop_the_test():
    model, opt, data = _setup()
    calls = []

    def spiky(out, target):  # the second batch's loss is 100 times too large
        calls.append(1)
        loss = nn.functional.cross_entropy(out, target)
        return loss * 100.0 if len(calls) == 2 else loss

    result = lr_finder.lr_range_test(model, spiky, opt, data, start_lr=1e-4, end_lr=10,
                                     num_iter=60)
    # smoothed: 0.05·100·L + 0.95·L ≈ 5.95·L > 5× the best -- but within skip_start (10)
    assert result.smoothed[1] > 5 * result.smoothed[:2].min()
    assert len(result.lrs) > 10  # it went on past the spike
