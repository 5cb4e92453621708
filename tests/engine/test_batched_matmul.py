"""The batched matmul rule (tinygrad_opt.autograd.batched) against the per-seed loop.

The batched rule stacks the B cotangents into the rows of one matrix product
instead of B separate products, a different summation order: results agree
with one backward pass per seed to 1e-12 relative in float64, not bit for bit.
"""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.autograd.batched import batched_vjp

B = 4

# (x shape, y shape): every case the rule tells apart, with batch broadcasting
SHAPES = {
    "matrix-vector": ((5, 3), (3,)),
    "vector-matrix": ((3,), (3, 4)),
    "vector-vector": ((3,), (3,)),
    "matrix-matrix": ((5, 3), (3, 4)),
    "matrix-column": ((5, 3), (3, 1)),
    "batched-matrix": ((2, 5, 3), (3, 4)),
    "matrix-batched": ((5, 3), (2, 3, 4)),
    "batched-batched": ((2, 5, 3), (2, 3, 4)),
    "broadcast-batches": ((2, 1, 5, 3), (3, 3, 4)),
    "batched-vector": ((2, 5, 3), (3,)),
    "vector-batched": ((3,), (2, 3, 4)),
}


def assert_close(actual, expected):
    scale = max(float(np.abs(expected).max()), 1e-300)
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) <= 1e-12 * scale


def per_seed(output, inputs, seeds):
    """One ordinary backward pass per cotangent, stacked: what batching must equal."""
    rows = [tg.grad(output, inputs, grad_outputs=tg.tensor(s, dtype="float64"),
                     retain_graph=True) for s in seeds]
    return [np.stack([r[k].numpy() for r in rows]) for k in range(len(inputs))]


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_batched_matmul_equals_per_seed_loop(case):
    rng = np.random.default_rng(0)
    x_shape, y_shape = SHAPES[case]
    x = tg.tensor(rng.standard_normal(x_shape), requires_grad=True)
    y = tg.tensor(rng.standard_normal(y_shape), requires_grad=True)
    out = x @ y
    seeds = rng.standard_normal((B,) + tuple(out.shape))
    expected = per_seed(out, [x, y], seeds)
    actual = batched_vjp(out, [x, y], seeds)
    for a, e in zip(actual, expected):
        assert_close(a, e)


@pytest.mark.parametrize("case", ["matrix-vector", "vector-matrix", "batched-matrix"])
def test_batched_matmul_with_one_constant_side(case):
    rng = np.random.default_rng(1)
    x_shape, y_shape = SHAPES[case]
    x = tg.tensor(rng.standard_normal(x_shape))
    y = tg.tensor(rng.standard_normal(y_shape), requires_grad=True)
    out = (x @ y).tanh()
    seeds = rng.standard_normal((B,) + tuple(out.shape))
    (actual,), (expected,) = batched_vjp(out, [y], seeds), per_seed(out, [y], seeds)
    assert_close(actual, expected)


def test_jacobian_of_matrix_products_equals_rows_one_by_one():
    rng = np.random.default_rng(2)
    A = tg.tensor(rng.standard_normal((6, 5)))
    w = tg.tensor(rng.standard_normal(5), requires_grad=True)
    M = tg.tensor(rng.standard_normal((5, 3)), requires_grad=True)

    def f(w, M):
        return ((A @ w).tanh() @ (A @ M)) * (w[:3] ** 2)

    Jw, JM = tg.autograd.jacobian(f, (w, M))
    out = f(w, M)
    rows = per_seed(out, [w, M], np.eye(out.numel()).reshape((-1,) + tuple(out.shape)))
    assert_close(Jw.numpy(), rows[0])
    assert_close(JM.numpy(), rows[1])


def test_hessian_of_matrix_vector_loss_equals_hvp_rows():
    """f(w) = Σ tanh(Aw)², the benchmark's scaling case: the batched Hessian
    against one Hessian-vector product per unit vector."""
    rng = np.random.default_rng(3)
    n = 12
    A = tg.tensor(rng.standard_normal((n, n)) / np.sqrt(n))
    w = tg.tensor(rng.standard_normal(n))

    def f(v):
        return ((A @ v).tanh() ** 2).sum()

    H = tg.autograd.hessian(f, w).numpy()
    rows = np.stack([tg.autograd.hvp(f, w, tg.tensor(e))[1].numpy() for e in np.eye(n)])
    assert_close(H, rows)
    # and against the closed form: H = Aᵀ diag(2(1 - t²)(1 - 3t²)) A with t = tanh(Aw)
    a = A.numpy()
    t = np.tanh(a @ w.numpy())
    assert_close(H, a.T @ (2 * (1 - t ** 2) * (1 - 3 * t ** 2) * a.T).T)
