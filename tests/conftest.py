"""Shared test setup: float64 helpers, the `backward_calls` recorder, and the `gpu` /
`browser` markers skip cleanly when CuPy with a GPU, or Chromium, is absent."""

import shutil

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.op import Op


def pytest_collection_modifyitems(config, items):
    has_gpu = tg.cuda.is_available()
    has_browser = any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU"))
        if "browser" in item.keywords and not has_browser:
            item.add_marker(pytest.mark.skip(reason="needs a headless Chromium"))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state and the default dtype."""
    tg.manual_seed(0)
    np.random.seed(0)
    yield
    tg.set_default_dtype("float32")


@pytest.fixture
def backward_calls(monkeypatch):
    """The names of the ops whose backward (vjp) runs from now on, in order."""
    calls = []
    original = Op.vjp.__func__

    def recording(cls, node, grad, out):
        calls.append(cls.__name__)
        return original(cls, node, grad, out)

    monkeypatch.setattr(Op, "vjp", classmethod(recording))
    return calls
