"""The leaner double backward (issue 16 §3) keeps the values it computes.

* ``TanhBackward`` (tanh's derivative as one op) gives, bit for bit, what the
  three ops it replaces gave -- g*(1 - z*z) -- and so do its own derivatives
  (on arrays and recorded), hence every gradient through a tanh; second
  derivatives of a network agree up to rounding.
* MatMul lays a transposed input's gradient out as that input (x @ W.T): W's
  gradient comes back contiguous, with the values of the plain rule and of PyTorch.
"""

import itertools

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.ops import elementwise as E

DTYPES = ("float32", "float64")


def tensor(rng, shape, dtype, requires_grad=True):
    return tg.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=requires_grad)


def three_op_tanh_backward(ctx, g, out):
    """Tanh's backward before TanhBackward: three recorded ops."""
    return (g * (1 - out * out),)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g_shape, z_shape", [((3, 4), (3, 4)), ((), ()), ((2, 3, 4), (3, 4))])
def test_tanh_backward_value_is_the_three_ops_bit_for_bit(dtype, g_shape, z_shape):
    """In place on one new array, or broadcasting g (a batched backward's)."""
    rng = np.random.default_rng(0)
    g, z = tensor(rng, g_shape, dtype), tensor(rng, z_shape, dtype)
    np.testing.assert_array_equal(E.TanhBackward.apply(g, z).numpy(),
                                  (g * (1 - z * z)).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4), ()])
def test_tanh_backward_derivatives_are_the_three_ops_bit_for_bit(dtype, shape):
    """Both derivatives, computed on arrays (no graph recorded) and as recorded ops."""
    rng = np.random.default_rng(0)
    g, z = tensor(rng, shape, dtype), tensor(rng, shape, dtype)
    seed = tg.tensor(rng.standard_normal(shape), dtype=dtype)
    want = tg.grad(g * (1 - z * z), (g, z), seed)
    for create_graph in (False, True):
        got = tg.grad(E.TanhBackward.apply(g, z), (g, z), seed, create_graph=create_graph)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def tanh_mlp_loss(params, X, y):
    h = X
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = h.tanh()
    return -h.log_softmax(-1)[tg.arange(len(y)), y].mean()


def derivatives(dtype):
    """Gradient, Hv and the full Hessian of a small tanh MLP's loss."""
    rng = np.random.default_rng(1)
    sizes = [5, 7, 6, 3]
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        params += [tensor(rng, (fan_in, fan_out), dtype), tensor(rng, (fan_out,), dtype)]
    X = tensor(rng, (8, sizes[0]), dtype, requires_grad=False)
    y = tg.tensor(rng.integers(0, sizes[-1], 8))
    v = tuple(tensor(rng, p.shape, dtype, requires_grad=False) for p in params)
    grads = tg.grad(tanh_mlp_loss(params, X, y), params)
    _, hv = tg.autograd.hvp(lambda *ps: tanh_mlp_loss(ps, X, y), tuple(params), v)
    shapes = [p.shape for p in params]

    def flat_loss(w):
        pieces, start = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            pieces.append(w[start:start + n].reshape(shape))
            start += n
        return tanh_mlp_loss(pieces, X, y)

    w = tg.tensor(np.concatenate([p.numpy().ravel() for p in params]), dtype=dtype)
    return [*grads, *hv, tg.autograd.hessian(flat_loss, w)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_derivatives_are_those_of_the_three_op_backward(dtype, monkeypatch):
    """The gradient bit for bit; Hv and the Hessian up to rounding, as the second
    backward now adds -2*G*g*z into z's gradient once where it added -G*g*z twice."""
    fused = derivatives(dtype)
    monkeypatch.setattr(E.Tanh, "backward", staticmethod(three_op_tanh_backward))
    plain = derivatives(dtype)
    n_grads = (len(fused) - 1) // 2
    for a, b in zip(fused[:n_grads], plain[:n_grads]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    tolerance = 1e-5 if dtype == "float32" else 1e-13
    for a, b in zip(fused[n_grads:], plain[n_grads:]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tolerance, atol=tolerance)


def test_gradient_of_a_transposed_weight_is_laid_out_as_the_weight():
    """x @ W.T: W's gradient (its first and its second backward) is contiguous and
    holds gᵀ x, the plain rule's values."""
    rng = np.random.default_rng(2)
    x, W = tensor(rng, (6, 4), "float64"), tensor(rng, (3, 4), "float64")
    seed = rng.standard_normal((6, 3))
    (gW,) = tg.grad(x @ W.T, W, tg.tensor(seed))
    assert gW.data.flags.c_contiguous
    np.testing.assert_allclose(gW.numpy(), seed.T @ x.numpy(), rtol=1e-14, atol=1e-14)
    v = tensor(rng, (3, 4), "float64", requires_grad=False)
    _, hv = tg.autograd.hvp(lambda w: ((x @ w.T).tanh() @ w).sum(), W, v)
    assert hv.data.flags.c_contiguous


def test_hvp_through_transposed_weights_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 5))
    W1, W2, v1, v2 = (rng.standard_normal(shape) for shape in ((6, 5), (3, 6), (6, 5), (3, 6)))

    def loss(tanh, w1, w2, x):  # both libraries' tensors
        out = tanh(x @ w1.T) @ w2.T
        return (out * out).sum()

    ours = tg.autograd.hvp(lambda a, b: loss(tg.Tensor.tanh, a, b, tg.tensor(X)),
                           (tg.tensor(W1), tg.tensor(W2)), (tg.tensor(v1), tg.tensor(v2)))[1]
    theirs = torch.autograd.functional.hvp(
        lambda a, b: loss(torch.tanh, a, b, torch.tensor(X)),
        (torch.tensor(W1), torch.tensor(W2)), (torch.tensor(v1), torch.tensor(v2)))[1]
    for a, b in zip(ours, theirs):
        assert a.data.flags.c_contiguous
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
