"""dtype rules: float32 by default, float64 on request or by set_default_dtype,
a Python number never upcasts a tensor, integer tensors for labels, and the
gradient of a leaf has the leaf's dtype."""

import numpy as np
import pytest

import tinygrad_opt as tg


def test_float32_by_default():
    assert tg.tensor([1.0, 2.0]).dtype == np.float32
    assert tg.Tensor([[1.0]]).dtype == np.float32
    for make in (tg.zeros, tg.ones, tg.rand, tg.randn):
        assert make(2, 3).dtype == np.float32
    assert tg.full((2,), 1.5).dtype == np.float32
    assert tg.eye(2).dtype == np.float32
    assert tg.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert tg.tensor(np.zeros(2)).dtype == np.float64  # arrays keep their dtype


def test_float64_on_request():
    assert tg.tensor([1.0], dtype="float64").dtype == np.float64
    assert tg.tensor([1.0], dtype=tg.float64).dtype == np.float64
    assert tg.randn(2, dtype=np.float64).dtype == np.float64
    assert tg.zeros(2, dtype="double").dtype == np.float64
    x = tg.tensor([1.0]).to("float64")
    assert x.dtype == np.float64 and x.double().float().dtype == np.float32


def test_set_default_dtype():
    tg.set_default_dtype("float64")
    assert tg.get_default_dtype() == np.float64
    assert tg.tensor([1.0]).dtype == np.float64
    assert tg.randn(3).dtype == np.float64
    assert (tg.arange(3) * 0.5).dtype == np.float64
    tg.set_default_dtype("float32")
    assert tg.tensor([1.0]).dtype == np.float32
    with pytest.raises(TypeError, match="not a floating dtype"):
        tg.set_default_dtype("int64")


@pytest.mark.parametrize("scalar", [2, 2.5, np.float64(2.5), True, np.int64(3)])
def test_python_scalar_never_upcasts(scalar):
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    for out in (x + scalar, scalar + x, x - scalar, scalar - x, x * scalar, scalar * x,
                x / scalar, scalar / x, x ** scalar, scalar ** x, x.maximum(scalar),
                tg.where(x > 1, x, scalar)):
        assert out.dtype == np.float32, out
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_tensors_for_labels():
    labels = tg.tensor([0, 2, 1])
    assert labels.dtype == np.int64 and not labels.requires_grad
    assert tg.arange(5).dtype == np.int64
    assert tg.randint(0, 3, (4,)).dtype == np.int64
    logits = tg.randn(3, 3, requires_grad=True)
    picked = logits[tg.arange(3), labels]
    picked.sum().backward()
    np.testing.assert_array_equal(logits.grad.numpy(), np.eye(3)[[0, 2, 1]])
    assert (labels + 1).dtype == np.int64


def test_floats_made_from_integers_take_the_default_dtype():
    ints = tg.arange(4)
    assert (ints * 0.5).dtype == np.float32
    assert (ints / 2).dtype == np.float32
    assert ints.exp().dtype == np.float32
    assert ints.to("float64").dtype == np.float64             # asked for: kept
    assert (ints + tg.zeros(4, dtype="float64")).dtype == np.float64


def test_mixed_float_tensors_promote_and_grads_keep_leaf_dtype():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], dtype="float64", requires_grad=True)
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_cast_is_differentiable():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    (a.double() ** 2).sum().backward()
    assert a.grad.dtype == np.float32
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0])
