"""The Tensor's surface and the package's public names, as DESIGN.md lists them."""

import subprocess
import sys

import numpy as np
import pytest

import tinygrad_opt as tg


def test_every_public_name_resolves():
    for name in tg.__all__:
        assert getattr(tg, name) is not None, name
    for name in tg.autograd.__all__:
        assert getattr(tg.autograd, name) is not None, name


def test_import_is_light():
    code = ("import sys, tinygrad_opt; heavy = {'torch', 'scipy', 'matplotlib', 'cupy', "
            "'sklearn', 'dask', 'graphviz', 'tqdm', 'hypothesis'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_attributes_and_conversions():
    x = tg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert x.shape == (1, 3) and x.ndim == 2 and x.dtype == np.float32 and x.device == "cpu"
    assert x.grad is None and x.requires_grad and x.is_leaf and x.numel() == 3
    assert x.size() == (1, 3) and x.size(1) == 3 and len(x) == 1
    assert isinstance(x.numpy(), np.ndarray) and x.tolist() == [[1.0, 2.0, 3.0]]
    assert x.sum().item() == 6.0 and float(x.sum()) == 6.0
    assert "requires_grad=True" in repr(x) and "grad_fn=<MulBackward>" in repr(x * 2)
    assert np.asarray(x).shape == (1, 3)
    assert x.to("cpu") is x and x.cpu() is x


def test_constructors():
    tg.manual_seed(3)
    a = tg.randn(2, 3)
    tg.manual_seed(3)
    b = tg.randn((2, 3))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert tg.rand(4).numpy().min() >= 0 and tg.rand(4).numpy().max() < 1
    np.testing.assert_array_equal(tg.zeros(2, 2).numpy(), np.zeros((2, 2)))
    np.testing.assert_array_equal(tg.ones(3).numpy(), np.ones(3))
    np.testing.assert_array_equal(tg.full((2,), 7.0).numpy(), [7.0, 7.0])
    np.testing.assert_array_equal(tg.eye(2).numpy(), np.eye(2))
    np.testing.assert_array_equal(tg.arange(3).numpy(), [0, 1, 2])
    np.testing.assert_array_equal(tg.arange(1, 7, 2).numpy(), [1, 3, 5])
    like = tg.zeros_like(a)
    assert like.shape == a.shape and like.dtype == a.dtype
    assert tg.ones_like(a).numpy().sum() == 6 and tg.randn_like(a).shape == (2, 3)
    assert tg.rand_like(a).shape == (2, 3) and tg.full_like(a, 2.0).numpy().sum() == 12
    assert tg.tensor(3.5).shape == () and tg.Tensor(np.zeros((2, 0))).shape == (2, 0)
    assert tg.zeros(2, requires_grad=True).requires_grad


def test_movement_shortcuts():
    x = tg.arange(24).reshape(2, 3, 4)
    assert x.view(6, 4).shape == (6, 4) and x.reshape((4, 6)).shape == (4, 6)
    assert x.T.shape == (4, 3, 2) and x.transpose(0, 2).shape == (4, 3, 2)
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x.reshape(2, 1, 12).squeeze().shape == (2, 12)
    assert x.reshape(2, 1, 12).squeeze(1).shape == (2, 12)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert tg.ones(1, 3).expand(4, -1).shape == (4, 3)


def test_comparisons_carry_no_gradient():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for mask in (x > 1, x >= 2, x < 2, x <= 2, x == 2, x != 2, ~(x > 1), (x > 1) & (x < 3)):
        assert mask.dtype == np.bool_ and not mask.requires_grad
    assert (x > 1).any().item() and not (x > 5).all().item()
    assert x.argmax().item() == 2 and x.argmin(0).item() == 0


def test_in_place_updates():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        w -= 0.5 * tg.tensor([2.0, 2.0])
    np.testing.assert_array_equal(w.numpy(), [0.0, 1.0])
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1
    h = w * 2
    h += 1  # a computed tensor: replaced by the out-of-place result, still differentiable
    h.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0])
    acc = tg.zeros(2)
    acc += w  # a constant plus a tensor that requires grad joins the graph
    assert acc.requires_grad


def test_clone_copies_and_is_differentiable():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.numpy(), x.numpy())
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_setitem_on_constants():
    x = tg.zeros(3)
    x[1] = 5.0
    x[tg.tensor([0, 2])] = tg.tensor([1.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 5.0, 2.0])


def test_tensor_copies_its_input_array_but_Tensor_shares_it():
    import numpy as np

    source = np.array([1.0, 2.0])
    owned = tg.tensor(source)
    shared = tg.Tensor(source)
    source[0] = 5.0
    assert owned.numpy()[0] == 1.0
    assert shared.numpy()[0] == 5.0
