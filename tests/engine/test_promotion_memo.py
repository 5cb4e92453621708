"""The promoted dtype is remembered per op and input signature (function._PROMOTIONS):
the memo must give what torch gives, whatever was asked before it."""

import numpy as np
import pytest

import tinygrad_opt as tg


@pytest.fixture
def restore_default_dtype():
    yield
    tg.set_default_dtype("float32")


def test_the_memo_follows_a_change_of_the_default_dtype(restore_default_dtype):
    torch = pytest.importorskip("torch")
    ints = np.arange(4, dtype=np.int32)
    for default, torch_default in (("float32", torch.float32), ("float64", torch.float64),
                                   ("float32", torch.float32)):
        tg.set_default_dtype(default)
        torch.set_default_dtype(torch_default)
        try:
            ours = (tg.tensor(ints) * 0.5).dtype
            theirs = (torch.from_numpy(ints) * 0.5).dtype
        finally:
            torch.set_default_dtype(torch.float32)
        assert str(ours) == str(theirs).removeprefix("torch.")


def test_the_memo_tells_0d_from_nd_operands():
    torch = pytest.importorskip("torch")
    cases = [(np.ones(3, np.float32), np.array(2.0)),          # n-d float32, 0-d float64
             (np.ones(3, np.float32), np.ones(3)),             # both n-d: float64
             (np.ones(3, np.float32), np.ones(3, dtype=bool))]  # a mask: float32
    for _ in range(2):  # the second round answers from the memo
        for a, b in cases:
            ours = (tg.tensor(a) * tg.tensor(b)).dtype
            theirs = (torch.from_numpy(a) * torch.from_numpy(b)).dtype
            assert str(ours) == str(theirs).removeprefix("torch.")
