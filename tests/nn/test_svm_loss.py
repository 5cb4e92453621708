"""nn.functional.svm_loss / nn.SVMLoss: the slides' multiclass SVM loss (cs231n),
against the slide's worked example, PyTorch's MultiMarginLoss (C times smaller) and
finite differences."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.autograd import gradcheck

# the slide's three images (columns cat, car, frog) with labels cat, car, frog
SCORES = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
LABELS = np.array([0, 1, 2])


def test_the_slides_example_gives_2_9_0_and_12_9():
    scores = tg.tensor(SCORES, dtype="float64")
    per_image = nn.functional.svm_loss(scores, tg.tensor(LABELS), reduction="none")
    np.testing.assert_allclose(per_image.numpy(), [2.9, 0.0, 12.9], atol=1e-12)
    mean = nn.SVMLoss()(scores, tg.tensor(LABELS))
    assert mean.item() == pytest.approx(15.8 / 3, abs=1e-12)
    total = nn.functional.svm_loss(scores, tg.tensor(LABELS), reduction="sum")
    assert total.item() == pytest.approx(15.8, abs=1e-12)


def test_is_c_times_torchs_multi_margin_loss():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    for delta in (1.0, 0.3):
        ours = nn.SVMLoss(delta=delta)(tg.tensor(scores, dtype="float64"), tg.tensor(labels))
        theirs = torch.nn.MultiMarginLoss(margin=delta)(torch.tensor(scores),
                                                         torch.tensor(labels))
        assert ours.item() == pytest.approx(4 * theirs.item(), rel=1e-12)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    # scores away from the hinge's kinks, where the loss is differentiable
    scores = tg.tensor(rng.standard_normal((5, 3)) * 3, dtype="float64", requires_grad=True)
    labels = tg.tensor(rng.integers(0, 3, 5))
    assert gradcheck(lambda s: nn.functional.svm_loss(s, labels), (scores,))


def test_the_gradient_counts_the_classes_inside_the_margin():
    # d L_i / d s_j = 1 for each violating j, and -(number of violators) at y_i
    scores = tg.tensor(SCORES[:1], dtype="float64", requires_grad=True)
    nn.functional.svm_loss(scores, tg.tensor(LABELS[:1])).backward()
    np.testing.assert_array_equal(scores.grad.numpy(), [[-1.0, 1.0, 0.0]])


def test_bad_reduction_is_one_sentence():
    with pytest.raises(ValueError, match="svm_loss"):
        nn.functional.svm_loss(tg.tensor(SCORES), tg.tensor(LABELS), reduction="avg")
