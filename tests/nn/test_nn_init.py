"""nn.init: PyTorch's formulas for gains, fans and bounds; seeded and in place."""

import math

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.nn import init


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


def _stats(fn, shape=(300, 400), **kwargs):
    t = tg.zeros(*shape, dtype="float64")
    assert fn(t, **kwargs) is t
    return t.numpy()


def test_bounds_and_stds():
    fan_out, fan_in = 300, 400
    a = math.sqrt(6 / (fan_in + fan_out))
    w = _stats(init.xavier_uniform_)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    w = _stats(init.xavier_uniform_, gain=2.0)
    assert np.abs(w).max() <= 2 * a and np.abs(w).max() > 1.98 * a
    w = _stats(init.xavier_normal_)
    assert w.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.01)
    w = _stats(init.kaiming_uniform_, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    w = _stats(init.kaiming_normal_, mode="fan_out", nonlinearity="relu")
    assert w.std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.01)
    w = _stats(init.kaiming_uniform_, a=math.sqrt(5))
    assert np.abs(w).max() <= 1 / math.sqrt(fan_in)
    w = _stats(init.uniform_, a=-2.0, b=3.0)
    assert w.min() >= -2 and w.max() < 3 and w.mean() == pytest.approx(0.5, abs=0.02)
    w = _stats(init.normal_, mean=1.0, std=0.5)
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.std() == pytest.approx(0.5, rel=0.01)
    w = _stats(init.trunc_normal_, a=-1.0, b=1.0)
    assert w.min() >= -1 and w.max() <= 1
    assert (_stats(init.constant_, val=0.3) == 0.3).all()
    assert (_stats(init.ones_) == 1).all() and (_stats(init.zeros_) == 0).all()
    np.testing.assert_array_equal(_stats(init.eye_, shape=(2, 3)), np.eye(2, 3))


def test_fans_for_conv_shapes_and_errors():
    assert init._calculate_fan_in_and_fan_out(tg.zeros(8, 4, 3, 3)) == (36, 72)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(tg.zeros(5))
    with pytest.raises(ValueError, match="Mode fan_up not supported"):
        init.kaiming_uniform_(tg.zeros(2, 2), mode="fan_up")


def test_init_is_seeded_in_place_and_keeps_dtype():
    p = nn.Parameter(tg.zeros(3, 4))
    data = p.data
    tg.manual_seed(3)
    init.kaiming_normal_(p)
    first = p.numpy().copy()
    tg.manual_seed(3)
    init.kaiming_normal_(p)
    assert p.data is data and p.dtype == np.float32 and p.requires_grad
    np.testing.assert_array_equal(first, p.numpy())
    g = np.random.default_rng(5)
    init.uniform_(p, generator=g)
    np.testing.assert_array_equal(p.numpy(), np.random.default_rng(5).uniform(
        0, 1, (3, 4)).astype(np.float32))
