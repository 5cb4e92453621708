"""The corners of the op table where a formula alone is wrong, each as in PyTorch:
``x ** y`` at x = 0 (first and second derivatives), gradients at NaN inputs of relu,
abs, leaky_relu, clamp, max/min and maximum/minimum, and the index of ``max(dim)``."""

import numpy as np
import pytest

import tinygrad_opt as tg

NAN = float("nan")
BASES = [0.0, 2.0]
EXPONENTS = [0.0, 1.0, 2.0, -1.0, -2.0, 0.5, -0.5]


def _derivatives(lib, x, y, z):
    """z, its gradient and the gradient of each first derivative (None: no graph)."""
    leaves = [t for t in (x, y) if getattr(t, "requires_grad", False)]
    firsts = lib.autograd.grad(z, leaves, create_graph=True)
    seconds = []
    for first in firsts:
        if first.requires_grad:
            seconds.append([None if s is None else s.item() for s in lib.autograd.grad(
                first, leaves, allow_unused=True, retain_graph=True)])
        else:
            seconds.append(None)  # a constant: x ** 0 has gradient 0 and no second one
    return z.item(), [f.item() for f in firsts], seconds


def _pow_case(lib, base, exponent, kind, dtype):
    """x ** y with tensors ("tensors"), x ** number ("number exponent"), number ** y."""
    def leaf(v):
        return lib.tensor(v, dtype=dtype, requires_grad=True)
    if kind == "tensors":
        x, y = leaf(base), leaf(exponent)
    elif kind == "number exponent":
        x, y = leaf(base), exponent
    else:
        x, y = base, leaf(exponent)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _derivatives(lib, x, y, x ** y)


def _same(ours, theirs):
    """Equal up to rounding (pow's last bit differs between libm's), with NaN and ±inf
    in the same places."""
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=1e-14, atol=0)


@pytest.mark.parametrize("kind", ["tensors", "number exponent", "number base"])
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("base", BASES)
def test_pow_derivatives_equal_torchs(base, exponent, kind):
    torch = pytest.importorskip("torch")
    value, firsts, seconds = _pow_case(tg, base, exponent, kind, "float64")
    t_value, t_firsts, t_seconds = _pow_case(torch, base, exponent, kind, torch.float64)
    _same(value, t_value)
    _same(firsts, t_firsts)
    assert [s is None for s in seconds] == [s is None for s in t_seconds]
    for ours, theirs in zip(seconds, t_seconds):
        if ours is not None:
            _same([np.nan if v is None else v for v in ours],
                  [np.nan if v is None else v for v in theirs])


def test_pow_at_zero_closed_forms():
    # d/dx x**0 = 0 and d/dy 0**y = 0 for y >= 0; -inf for y < 0 (the limit from above)
    x = tg.tensor(0.0, dtype="float64", requires_grad=True)
    (x ** 0).backward()
    assert x.grad.item() == 0.0
    y = tg.tensor([0.0, 1.0, 2.0, -1.0], dtype="float64", requires_grad=True)
    with np.errstate(divide="ignore"):
        (tg.tensor(0.0, dtype="float64") ** y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, 0.0, 0.0, -np.inf])


def test_polynomial_features_have_finite_gradients_at_zero():
    # features x**k, k = 0..3, with the exponents a tensor (as in a design matrix)
    x = tg.tensor([0.0, 0.5, -1.0], dtype="float64", requires_grad=True)
    k = tg.arange(4)
    features = x.reshape(-1, 1) ** k
    features.sum().backward()
    # d/dx Σ_k x**k = 0 + 1 + 2x + 3x²
    np.testing.assert_allclose(x.grad.numpy(), 1 + 2 * x.numpy() + 3 * x.numpy() ** 2)
    # and with a number exponent, including the second derivative at 0
    z = tg.tensor(0.0, dtype="float64", requires_grad=True)
    total = sum(z ** k for k in range(4))
    (first,) = tg.grad(total, z, create_graph=True)
    (second,) = tg.grad(first, z)
    assert (first.item(), second.item()) == (1.0, 2.0)


def test_pow_second_derivatives_by_gradgradcheck():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.uniform(0.5, 2.0, 3), dtype="float64", requires_grad=True)
    # y = 0 exactly is a convention (dz/dx := 0 there), not a derivative: kept off it
    y = tg.tensor([0.5, 1.0, -1.5], dtype="float64", requires_grad=True)
    assert tg.autograd.gradcheck(lambda a, b: a ** b, (x, y))
    assert tg.autograd.gradgradcheck(lambda a, b: a ** b, (x, y))


# -- gradients at NaN: relu, abs, leaky_relu, clamp, max, min, maximum, minimum ----------------

OTHER = [1.0, NAN, 0.0, 0.0]  # the second input of maximum / minimum
NAN_CASES = {  # name -> (op, the gradient of sum(op(x)) at x = [nan, 1, -1, 0], as torch gives)
    "relu": (lambda t, lib: t.relu(), [1.0, 1.0, 0.0, 0.0]),
    "abs": (lambda t, lib: t.abs(), [0.0, 1.0, -1.0, 0.0]),
    "leaky_relu": (lambda t, lib: lib.nn.functional.leaky_relu(t), [0.01, 1.0, 0.01, 0.01]),
    "clamp": (lambda t, lib: t.clamp(-0.5, 0.5), [0.0, 0.0, 0.0, 1.0]),
    "clamp min": (lambda t, lib: t.clamp(min=0.0), [0.0, 1.0, 0.0, 1.0]),
    "max": (lambda t, lib: t.max(), [1.0, 0.0, 0.0, 0.0]),
    "min": (lambda t, lib: t.min(), [1.0, 0.0, 0.0, 0.0]),
    "max(dim)": (lambda t, lib: t.max(0).values, [1.0, 0.0, 0.0, 0.0]),
    "amax": (lambda t, lib: t.amax(), [NAN] * 4),
    "maximum": (lambda t, lib: lib.maximum(t, lib.tensor(OTHER, dtype=t.dtype)),
                [1.0, 1.0, 0.0, 0.5]),
    "minimum": (lambda t, lib: lib.minimum(t, lib.tensor(OTHER, dtype=t.dtype)),
                [1.0, 1.0, 1.0, 0.5]),
}


def _nan_grad(lib, name, dtype):
    x = lib.tensor([NAN, 1.0, -1.0, 0.0], dtype=dtype, requires_grad=True)
    NAN_CASES[name][0](x, lib).sum().backward()
    return x.grad.numpy()


@pytest.mark.parametrize("name", NAN_CASES)
def test_gradients_at_nan_inputs(name):
    _same(_nan_grad(tg, name, "float64"), NAN_CASES[name][1])
    torch = pytest.importorskip("torch")
    _same(_nan_grad(tg, name, "float64"), _nan_grad(torch, name, torch.float64))


def test_maximum_gives_a_nan_position_to_both_inputs():
    x = tg.tensor([NAN, 1.0], requires_grad=True)
    y = tg.tensor([0.0, NAN], requires_grad=True)
    x.maximum(y).sum().backward()
    _same([x.grad.tolist(), y.grad.tolist()], [[1.0, 1.0], [1.0, 1.0]])


# -- the index of max(dim) is a tensor like any other ---------------------------------------


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_dim_of_a_vector_gives_0d_tensors(reduce):
    values, indices = getattr(tg.tensor([1.0, 3.0, 2.0]), reduce)(0)
    assert isinstance(indices.data, np.ndarray) and indices.shape == ()
    assert isinstance(values.data, np.ndarray) and indices.dtype == np.int64
    assert indices.item() == (1 if reduce == "max" else 0)
    indices.zero_()
    assert indices.item() == 0
    for t in (tg.tensor([1.0, 3.0]).argmax(), tg.tensor([1.0]).any(), tg.tensor(1.0) > 0):
        assert isinstance(t.data, np.ndarray) and t.shape == ()
