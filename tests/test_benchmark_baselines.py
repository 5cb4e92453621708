"""The hand-written NumPy baselines of benchmarks/mlp_step.py compute the step they claim:
the fewest-calls version trains exactly as the plain one (to float32 rounding) and as
tinygrad_opt's own step. Nothing here times anything."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mlp_step():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # (it imports its sibling _mlp)
    try:
        spec = importlib.util.spec_from_file_location("mlp_step",
                                                      ROOT / "benchmarks" / "mlp_step.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.parametrize("sizes,batch", [([2, 16, 16, 2], 64), ([5, 7, 3], 9)])
def test_the_fewest_calls_baseline_trains_as_the_plain_ones(mlp_step, sizes, batch):
    X, y = mlp_step.random_batch(sizes, batch, np.random.default_rng(1))
    plain, floor = mlp_step.numpy_step(sizes, X, y), mlp_step.numpy_floor_step(sizes, X, y)
    ours = mlp_step.flat_step(sizes, X, y)
    losses = np.array([[plain(), floor(), ours()] for _ in range(30)])
    assert losses[-1, 0] < losses[0, 0]  # it trains
    np.testing.assert_allclose(losses[:, 1], losses[:, 0], rtol=1e-5)
    np.testing.assert_allclose(losses[:, 2], losses[:, 0], rtol=1e-5)
