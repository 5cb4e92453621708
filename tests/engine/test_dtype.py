"""dtype rules: float32 by default, float64 on request or by set_default_dtype,
a Python number never upcasts a tensor, integer tensors for labels, the
gradient of a leaf has the leaf's dtype, and integer or bool inputs walked
through the op table as in PyTorch (promoted, kept, or refused). The pairwise
promotion table is in test_promotion.py."""

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


# -- integer and bool inputs: the op table walked against PyTorch --------------------------------

INTEGER_INPUTS = {"int64": [1, 2, 3], "int32": [1, 2, 3], "int8": [1, 2, 3],
                  "bool": [True, False, True]}

# Each op takes the tensor and its library (tinygrad_opt or torch), for the function forms.
# Ops PyTorch computes in the default float dtype when given integers or bools:
FLOAT_OPS = {
    "sigmoid": lambda t, lib: t.sigmoid(), "tanh": lambda t, lib: t.tanh(),
    "exp": lambda t, lib: t.exp(), "log": lambda t, lib: t.log(),
    "sqrt": lambda t, lib: t.sqrt(), "sin": lambda t, lib: t.sin(),
    "cos": lambda t, lib: t.cos(), "atan": lambda t, lib: t.atan(),
    "true division": lambda t, lib: t / 2, "times a float": lambda t, lib: t * 0.5,
    "power a float": lambda t, lib: t ** 0.5, "clamp to floats": lambda t, lib: t.clamp(0.5, 1.5),
    "where a float": lambda t, lib: lib.where(t > 1, t, 0.5),
    "logsumexp": lambda t, lib: t.logsumexp(0),
}
# Ops that keep the integer dtype (sum widens to int64), as in PyTorch:
INTEGER_OPS = {
    "relu": lambda t, lib: t.relu(), "abs": lambda t, lib: t.abs(), "neg": lambda t, lib: -t,
    "sum": lambda t, lib: t.sum(), "amax": lambda t, lib: t.amax(),
    "square": lambda t, lib: t * t, "power an int": lambda t, lib: t ** 2,
    "clamp to ints": lambda t, lib: t.clamp(0, 1), "maximum": lambda t, lib: lib.maximum(t, t),
}
# Ops PyTorch defines for floating inputs only: an integer input is an error:
FLOAT_ONLY_OPS = {
    "mean": lambda t, lib: t.mean(), "softmax": lambda t, lib: t.softmax(0),
    "log_softmax": lambda t, lib: t.log_softmax(0), "var": lambda t, lib: t.var(),
    "std": lambda t, lib: t.std(),
}


def _pair(dtype):
    """The test input in tinygrad_opt, and a function making it in torch."""
    return (tg.tensor(INTEGER_INPUTS[dtype], dtype=dtype),
            lambda torch: torch.tensor(INTEGER_INPUTS[dtype], dtype=getattr(torch, dtype)))


@pytest.mark.filterwarnings("ignore:divide by zero")  # log(False) = -inf, as in torch
@pytest.mark.parametrize("dtype", INTEGER_INPUTS)
@pytest.mark.parametrize("name", FLOAT_OPS)
def test_integer_inputs_to_float_ops_give_the_default_float(name, dtype):
    t, make_theirs = _pair(dtype)
    out = FLOAT_OPS[name](t, tg)
    assert out.dtype == np.float32
    torch = pytest.importorskip("torch")
    expected = FLOAT_OPS[name](make_theirs(torch), torch)
    assert expected.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int64", "int32", "int8"])
@pytest.mark.parametrize("name", INTEGER_OPS)
def test_integer_ops_keep_integers(name, dtype):
    t, make_theirs = _pair(dtype)
    out = INTEGER_OPS[name](t, tg)
    assert out.dtype == (np.int64 if name == "sum" else np.dtype(dtype))
    torch = pytest.importorskip("torch")
    expected = INTEGER_OPS[name](make_theirs(torch), torch)
    assert str(expected.dtype) == f"torch.{out.dtype}"
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


@pytest.mark.parametrize("dtype", INTEGER_INPUTS)
@pytest.mark.parametrize("name", FLOAT_ONLY_OPS)
def test_float_only_ops_refuse_integers_as_torch_does(name, dtype):
    t, make_theirs = _pair(dtype)
    with pytest.raises(RuntimeError, match=rf"the input is {dtype}.*floating.*\.float\(\)"):
        FLOAT_ONLY_OPS[name](t, tg)
    assert FLOAT_ONLY_OPS[name](t.float(), tg).dtype == np.float32  # the fix it names works
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        FLOAT_ONLY_OPS[name](make_theirs(torch), torch)
