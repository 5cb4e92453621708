"""Losses against closed forms and against torch.nn.functional, in float64, with
first and second derivatives."""

import math
import re

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.autograd import gradcheck, gradgradcheck
from tinygrad_opt.nn import functional as F

REDUCTIONS = ("mean", "sum", "none")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def rng():
    return np.random.default_rng(1)


def leaf(array):
    return tg.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def ours_and_grad(fn, x, *args, **kwargs):
    xt = leaf(x)
    out = fn(xt, *args, **kwargs)
    out.backward(tg.ones_like(out))
    return out.numpy(), xt.grad.numpy()


def torch_and_grad(torch, fn, x, *args, **kwargs):
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    out = fn(xt, *args, **kwargs)
    out.backward(torch.ones_like(out))
    return out.detach().numpy(), xt.grad.numpy()


def assert_close(a, b, tol=1e-12):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# -- closed forms -----------------------------------------------------------------------------


def test_mse_and_l1_closed_forms():
    x, y = rng().standard_normal((5, 3)), rng().standard_normal((5, 3)) + 0.5
    d = x - y
    for reduction, value in (("mean", (d ** 2).mean()), ("sum", (d ** 2).sum())):
        out, grad = ours_and_grad(F.mse_loss, x, tg.tensor(y, dtype="float64"),
                                  reduction=reduction)
        assert_close(out, value)
        assert_close(grad, 2 * d / (d.size if reduction == "mean" else 1))
    out, grad = ours_and_grad(F.l1_loss, x, y, reduction="none")
    assert_close(out, np.abs(d))
    assert_close(grad, np.sign(d))


def test_cross_entropy_closed_form_and_gradient():
    x = rng().standard_normal((6, 4))
    t = np.array([0, 3, 1, 1, 2, 0])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    p = np.exp(logp)
    onehot = np.eye(4)[t]
    out, grad = ours_and_grad(F.cross_entropy, x, tg.tensor(t))
    assert_close(out, -logp[np.arange(6), t].mean())
    assert_close(grad, (p - onehot) / 6)
    out, grad = ours_and_grad(F.cross_entropy, x, t, reduction="none")
    assert_close(out, -logp[np.arange(6), t])
    assert_close(grad, p - onehot)


def test_cross_entropy_is_stable_for_huge_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]])
    out, grad = ours_and_grad(F.cross_entropy, x, [2, 1], reduction="none")
    assert_close(out, [2000.0, 0.0])
    assert np.isfinite(grad).all()
    x32 = tg.tensor([[88.0, -88.0, 0.0]], requires_grad=True)  # float32
    loss = F.cross_entropy(x32, [1])
    loss.backward()
    assert loss.dtype == np.float32 and np.isclose(loss.item(), 176.0)
    assert np.isfinite(x32.grad.numpy()).all()


def test_nll_loss_closed_form():
    logp = np.log(rng().dirichlet(np.ones(3), size=4))
    t = np.array([2, 0, 1, 2])
    w = np.array([0.5, 2.0, 1.5])
    out, grad = ours_and_grad(F.nll_loss, logp, t, weight=tg.tensor(w, dtype="float64"))
    assert_close(out, -(w[t] * logp[np.arange(4), t]).sum() / w[t].sum())
    expected = np.zeros_like(logp)
    expected[np.arange(4), t] = -w[t] / w[t].sum()
    assert_close(grad, expected)


def test_binary_cross_entropy_closed_forms():
    x = rng().uniform(0.05, 0.95, (4, 3))
    y = rng().uniform(0, 1, (4, 3))
    out, grad = ours_and_grad(F.binary_cross_entropy, x, y, reduction="sum")
    assert_close(out, -(y * np.log(x) + (1 - y) * np.log(1 - x)).sum())
    assert_close(grad, (x - y) / (x * (1 - x)))
    z = rng().standard_normal((4, 3)) * 5
    out, grad = ours_and_grad(F.binary_cross_entropy_with_logits, z, y, reduction="none")
    s = 1 / (1 + np.exp(-z))
    assert_close(out, -(y * np.log(s) + (1 - y) * np.log(1 - s)), 1e-10)
    assert_close(grad, s - y)


def test_binary_cross_entropy_at_zero_and_one_is_finite(torch):
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    ours = ours_and_grad(F.binary_cross_entropy, x, y, reduction="none")
    theirs = torch_and_grad(torch, torch.nn.functional.binary_cross_entropy, x,
                            torch.tensor(y), reduction="none")
    assert_close(ours[0], theirs[0])   # log clamped at -100: 0, 0, 100, 100, log 2
    assert_close(ours[1], theirs[1])   # (x - y) / max(x (1 - x), 1e-12)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(tg.tensor([1.5]), tg.tensor([1.0]))


def test_bce_with_logits_is_stable_for_huge_logits():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    y = np.array([1.0, 1.0, 0.5, 0.0, 0.0])
    out, grad = ours_and_grad(F.binary_cross_entropy_with_logits, z, y, reduction="none")
    assert_close(out, [1000.0, 50.0, math.log(2), 50.0, 1000.0])
    assert_close(grad, [-1.0, -1.0, 0.0, 1.0, 1.0])


def test_multi_margin_loss_is_the_lecture_hinge_divided_by_c():
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])  # cs231n's example
    labels = np.array([0, 1, 2])
    lecture = [sum(max(0.0, s[j] - s[y] + 1) for j in range(3) if j != y)
               for s, y in zip(scores, labels)]
    assert_close(lecture, [2.9, 0.0, 12.9], 1e-12)
    out, grad = ours_and_grad(F.multi_margin_loss, scores, labels, reduction="none")
    assert_close(out * 3, lecture)
    margins = scores - scores[np.arange(3), labels][:, None] + 1
    active = (margins > 0) & (np.arange(3)[None, :] != labels[:, None])
    expected = active / 3.0
    expected[np.arange(3), labels] = -active.sum(1) / 3.0
    assert_close(grad, expected)


def test_l2_penalty_gradient_is_weight_decay():
    model = nn.Linear(3, 2, dtype="float64")
    lam = 0.3
    penalty = F.l2_penalty(model, lam)
    w, b = model.weight.numpy(), model.bias.numpy()
    assert_close(penalty.item(), lam / 2 * ((w ** 2).sum() + (b ** 2).sum()))
    penalty.backward()
    assert_close(model.weight.grad.numpy(), lam * w)
    assert_close(model.bias.grad.numpy(), lam * b)
    assert F.l2_penalty([], 1.0).item() == 0.0
    assert_close(F.l2_penalty(model.weight, 2.0).item(), (w ** 2).sum())


def test_l2_penalty_equals_sgd_weight_decay():
    from tinygrad_opt import optim

    X = tg.randn(8, 3, dtype="float64")
    y = tg.randint(0, 2, (8,))
    a = nn.Linear(3, 2, dtype="float64")
    b = nn.Linear(3, 2, dtype="float64")
    b.load_state_dict(a.state_dict())
    opt_a = optim.SGD(a.parameters(), lr=0.1, weight_decay=0.05)
    opt_b = optim.SGD(b.parameters(), lr=0.1)
    for _ in range(5):
        opt_a.zero_grad()
        F.cross_entropy(a(X), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        (F.cross_entropy(b(X), y) + F.l2_penalty(b, 0.05)).backward()
        opt_b.step()
    assert_close(a.weight.numpy(), b.weight.numpy())


# -- against PyTorch --------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_torch(torch, reduction):
    x, y = rng().standard_normal((4, 5)), rng().standard_normal((4, 5))
    for ours, theirs in ((F.mse_loss, torch.nn.functional.mse_loss),
                         (F.l1_loss, torch.nn.functional.l1_loss)):
        a = ours_and_grad(ours, x, y, reduction=reduction)
        b = torch_and_grad(torch, theirs, x, torch.tensor(y), reduction=reduction)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_and_nll_match_torch(torch, reduction):
    r = rng()
    x = r.standard_normal((7, 5)) * 3
    t = np.array([0, 4, 2, 2, 1, 3, 4])
    w = r.uniform(0.5, 2.0, 5)
    cases = [{}, {"weight": w}, {"ignore_index": 2}, {"weight": w, "ignore_index": 4},
             {"label_smoothing": 0.1}, {"weight": w, "ignore_index": 2,
                                        "label_smoothing": 0.2}]
    tF = torch.nn.functional
    for kwargs in cases:
        ours_kwargs = dict(kwargs)
        theirs_kwargs = dict(kwargs)
        if "weight" in kwargs:
            ours_kwargs["weight"] = tg.tensor(w, dtype="float64")
            theirs_kwargs["weight"] = torch.tensor(w)
        a = ours_and_grad(F.cross_entropy, x, tg.tensor(t), reduction=reduction, **ours_kwargs)
        b = torch_and_grad(torch, tF.cross_entropy, x, torch.tensor(t), reduction=reduction,
                           **theirs_kwargs)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])
        if "label_smoothing" in kwargs:
            continue
        logp = x - np.log(np.exp(x).sum(1, keepdims=True))
        a = ours_and_grad(F.nll_loss, logp, t, reduction=reduction, **ours_kwargs)
        b = torch_and_grad(torch, tF.nll_loss, logp, torch.tensor(t), reduction=reduction,
                           **theirs_kwargs)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])


def test_cross_entropy_shapes_and_soft_targets_match_torch(torch):
    r = rng()
    tF = torch.nn.functional
    x = r.standard_normal((3, 4, 2, 5))               # (N, C, d1, d2)
    t = r.integers(0, 4, (3, 2, 5))
    for reduction in REDUCTIONS:
        a = ours_and_grad(F.cross_entropy, x, t, reduction=reduction)
        b = torch_and_grad(torch, tF.cross_entropy, x, torch.tensor(t), reduction=reduction)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])
    x1 = r.standard_normal(4)                          # unbatched (C,)
    for reduction in REDUCTIONS:
        a = ours_and_grad(F.cross_entropy, x1, np.array(2), reduction=reduction)
        b = torch_and_grad(torch, tF.cross_entropy, x1, torch.tensor(2), reduction=reduction)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])
    x2 = r.standard_normal((5, 3))                     # probabilities as target
    probs = r.dirichlet(np.ones(3), size=5)
    for kwargs in ({}, {"label_smoothing": 0.3}):
        for reduction in REDUCTIONS:
            a = ours_and_grad(F.cross_entropy, x2, tg.tensor(probs, dtype="float64"),
                              reduction=reduction, **kwargs)
            b = torch_and_grad(torch, tF.cross_entropy, x2, torch.tensor(probs),
                               reduction=reduction, **kwargs)
            assert_close(a[0], b[0])
            assert_close(a[1], b[1])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_losses_match_torch(torch, reduction):
    r = rng()
    tF = torch.nn.functional
    p = r.uniform(0.01, 0.99, (4, 3))
    z = r.standard_normal((4, 3)) * 4
    y = (r.uniform(size=(4, 3)) > 0.5).astype(np.float64)
    w = r.uniform(0.5, 2, (4, 3))
    pw = r.uniform(0.5, 3, 3)
    a = ours_and_grad(F.binary_cross_entropy, p, y, weight=w, reduction=reduction)
    b = torch_and_grad(torch, tF.binary_cross_entropy, p, torch.tensor(y),
                       weight=torch.tensor(w), reduction=reduction)
    assert_close(a[0], b[0])
    assert_close(a[1], b[1])
    for kwargs in ({}, {"pos_weight": pw}, {"weight": w, "pos_weight": pw}):
        theirs = {k: torch.tensor(v) for k, v in kwargs.items()}
        a = ours_and_grad(F.binary_cross_entropy_with_logits, z, y, reduction=reduction,
                          **kwargs)
        b = torch_and_grad(torch, tF.binary_cross_entropy_with_logits, z, torch.tensor(y),
                           reduction=reduction, **theirs)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multi_margin_loss_matches_torch(torch, reduction):
    r = rng()
    x = r.standard_normal((6, 4))
    t = np.array([0, 1, 2, 3, 1, 0])
    w = r.uniform(0.5, 2, 4)
    for kwargs in ({}, {"p": 2}, {"margin": 0.5}, {"weight": w}):
        theirs = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kwargs.items()}
        a = ours_and_grad(F.multi_margin_loss, x, t, reduction=reduction, **kwargs)
        b = torch_and_grad(torch, torch.nn.functional.multi_margin_loss, x, torch.tensor(t),
                           reduction=reduction, **theirs)
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])


def test_loss_modules_match_functions(torch):
    r = rng()
    x = r.standard_normal((5, 3))
    t = np.array([0, 2, 1, 1, 0])
    w = r.uniform(0.5, 2, 3)
    pairs = [
        (nn.CrossEntropyLoss(weight=w, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1), t),
        (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), t),
        (nn.MultiMarginLoss(margin=2.0), torch.nn.MultiMarginLoss(margin=2.0), t),
        (nn.MSELoss(), torch.nn.MSELoss(), r.standard_normal((5, 3))),
        (nn.L1Loss(), torch.nn.L1Loss(), r.standard_normal((5, 3))),
        (nn.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor(w)), r.uniform(size=(5, 3))),
    ]
    for ours, theirs, target in pairs:
        a = ours_and_grad(ours, x, target)
        b = torch_and_grad(torch, theirs, x, torch.tensor(target))
        assert_close(a[0], b[0])
        assert_close(a[1], b[1])
    a = ours_and_grad(nn.BCELoss(), 1 / (1 + np.exp(-x)), (x > 0).astype(float))
    b = torch_and_grad(torch, torch.nn.BCELoss(), 1 / (1 + np.exp(-x)),
                       torch.tensor((x > 0).astype(float)))
    assert_close(a[0], b[0])
    assert "weight" in nn.CrossEntropyLoss(weight=w).state_dict()


# -- second derivatives -----------------------------------------------------------------------


def _check_twice(fn, *inputs):
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_losses_are_twice_differentiable():
    r = np.random.default_rng(3)
    x = leaf(r.standard_normal((4, 3)))
    y = leaf(r.standard_normal((4, 3)))
    t = np.array([0, 2, 1, 2])
    w = np.array([0.5, 2.0, 1.0])
    _check_twice(lambda a, b: F.mse_loss(a, b), x, y)
    _check_twice(lambda a: F.l1_loss(a, y.detach(), reduction="sum"), x)
    for reduction in REDUCTIONS:
        _check_twice(lambda a, r=reduction: F.cross_entropy(a, t, reduction=r), x)
    _check_twice(lambda a: F.cross_entropy(a, t, weight=w, ignore_index=1,
                                           label_smoothing=0.1), x)
    probs = tg.tensor(r.dirichlet(np.ones(3), 4), dtype="float64")
    _check_twice(lambda a: F.cross_entropy(a, probs), x)
    _check_twice(lambda a: F.nll_loss(a.log_softmax(1), t, weight=w), x)
    p = leaf(r.uniform(0.1, 0.9, (4, 3)))
    q = leaf(r.uniform(0, 1, (4, 3)))
    _check_twice(lambda a, b: F.binary_cross_entropy(a, b), p, q)
    _check_twice(lambda a, b: F.binary_cross_entropy_with_logits(a, b), x, q)
    _check_twice(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, pos_weight=np.array([0.5, 2.0, 3.0]), reduction="sum"), x, q)
    _check_twice(lambda a: F.multi_margin_loss(a, t, p=2), x)
    _check_twice(lambda a: F.multi_margin_loss(a, t), x)
    _check_twice(lambda a: F.l2_penalty([a], 0.7), x)


def test_graph_backward_equals_array_backward():
    """The fused ops' backward has two paths (plain arrays, and Tensor ops when a graph
    of the gradient is recorded); both give the same numbers."""
    r = np.random.default_rng(4)
    x = leaf(r.standard_normal((5, 4)))
    w = leaf(r.standard_normal((3, 4)))
    b = leaf(r.standard_normal(3))
    t = np.array([0, 2, 1, 1, 0])
    y = tg.tensor(r.uniform(size=(5, 3)), dtype="float64")

    def loss(x, w, b):
        return F.cross_entropy(F.linear(x, w, b), t, weight=np.array([1.0, 2.0, 0.5]),
                               ignore_index=0) + F.binary_cross_entropy_with_logits(
            F.linear(x, w, b), y)

    plain = tg.grad(loss(x, w, b), [x, w, b])
    graph = tg.grad(loss(x, w, b), [x, w, b], create_graph=True)
    for a, c in zip(plain, graph):
        assert c.requires_grad
        assert_close(a.numpy(), c.numpy(), 1e-14)


# -- errors -----------------------------------------------------------------------------------


def test_loss_errors_are_one_clear_sentence():
    x = tg.randn(3, 4)
    with pytest.raises(IndexError, match=r"target 4 is out of bounds.*\[0, 3\]"):
        F.cross_entropy(x, [0, 4, 1])
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        F.nll_loss(x, [0, -1, 1])
    with pytest.raises(TypeError, match="class indices as integers"):
        F.cross_entropy(x, tg.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="batchmean")
    with pytest.raises(ValueError, match="different to the input size"):
        F.binary_cross_entropy_with_logits(tg.randn(4, 1), tg.rand(4))
    with pytest.raises(ValueError, match="to match target batch_size"):
        F.cross_entropy(x, [0, 1])
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(tg.randn(4, 1), tg.randn(4))
    with pytest.raises(ValueError, match="p == 1 and p == 2"):
        F.multi_margin_loss(x, [0, 1, 2], p=3)


def test_cross_entropy_backward_twice_and_without_grad():
    x = leaf(np.random.default_rng(5).standard_normal((4, 3)))
    loss = F.cross_entropy(x, [0, 1, 2, 1])
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    x.grad = None
    loss.backward()  # the cached softmax was used once; the second pass recomputes it
    assert_close(x.grad.numpy(), first, 1e-15)
    with tg.no_grad():
        value = F.cross_entropy(x, [0, 1, 2, 1])
    assert not value.requires_grad and value.item() == pytest.approx(loss.item())


# (input shape, target shape, the error kind or None when the pair is valid), as in torch
LABEL_SHAPES = [
    ((4, 3), (4,), None),
    ((2, 3, 4), (2, 4), None),
    ((2, 3, 4, 5), (2, 4, 5), None),
    ((3,), (), None),
    ((4, 3), (4, 1), RuntimeError),      # a class dimension left in the labels
    ((2, 3, 5), (2, 5, 1), RuntimeError),
    ((2, 3, 4, 5), (2, 5, 4), RuntimeError),  # same count, wrong positions
    ((2, 3, 3), (3, 2), ValueError),     # labels transposed: batch sizes differ
    ((4, 3), (3,), ValueError),
    ((2, 3, 4), (8,), ValueError),       # flattened labels
    ((4, 3), (), ValueError),
]


def _shape_pattern(shape):
    """A shape as its tuple text, escaped for a regular expression."""
    return re.escape(str(tuple(shape)))


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("input_shape, target_shape, error", LABEL_SHAPES)
def test_label_shapes_are_checked_exactly(loss, input_shape, target_shape, error):
    scores = tg.randn(*input_shape, dtype="float64")
    labels = np.zeros(target_shape, dtype=np.int64)
    if error is None:
        assert getattr(F, loss)(scores, labels).shape == ()
    else:
        with pytest.raises(error, match=rf"^{loss}: .*{_shape_pattern(input_shape)}.*"
                                        rf"{_shape_pattern(target_shape)}"):
            getattr(F, loss)(scores, labels)
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn.functional, loss)
    if error is None:
        theirs(torch.zeros(input_shape, dtype=torch.float64), torch.from_numpy(labels))
    else:
        with pytest.raises(error):
            theirs(torch.zeros(input_shape, dtype=torch.float64), torch.from_numpy(labels))
