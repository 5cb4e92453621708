"""``a[index] = b`` is recorded (PyTorch's CopySlices): gradients reach b and the
part of a that survived, for every kind of index, to second order."""

import numpy as np
import pytest

import tinygrad_opt as tg

torch = pytest.importorskip("torch")

X = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.75, -0.5, 3.0], [-2.0, 1.0, 0.1, -0.3]])

# index, shape of b (broadcast into the indexed part)
CASES = {
    "int": (1, (4,)),
    "negative int, broadcast row": (-1, (1,)),
    "int pair": ((2, 3), ()),
    "slice with step": ((slice(None), slice(None, None, 2)), (3, 2)),
    "reversed slice": ((slice(None, None, -2), 1), (2,)),
    "integer array": (np.array([2, 0]), (2, 4)),
    "integer arrays (pairs)": ((np.array([0, 2, 1]), np.array([3, 1, 0])), (3,)),
    "boolean mask": (X > 0.6, (int((X > 0.6).sum()),)),
    "boolean row mask, broadcast": (np.array([True, False, True]), (4,)),
}


def _loss(lib, x, b, index):
    """Builds a from x, assigns an expression of b at index, then a non-linear loss
    (so that second derivatives mix a's surviving part and b)."""
    a = x * 1.5
    a[index] = b.sin() * 2
    return (a ** 3).sum() + (a * x).sum()


def _torch_index(index):
    if isinstance(index, tuple):
        return tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    return torch.tensor(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_and_hessian_vector_products_match_torch(name):
    index, b_shape = CASES[name]
    if name == "reversed slice":  # torch has no negative steps: the same rows, listed
        torch_index = (torch.tensor([2, 0]), 1)
    else:
        torch_index = _torch_index(index)
    rng = np.random.default_rng(len(name))
    b0 = rng.standard_normal(b_shape)
    vx, vb = rng.standard_normal(X.shape), rng.standard_normal(b_shape)

    x, b = (tg.tensor(v, dtype="float64", requires_grad=True) for v in (X, b0))
    tx, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (X, b0))
    gx, gb = tg.grad(_loss(tg, x, b, index), (x, b), create_graph=True)
    tgx, tgb = torch.autograd.grad(_loss(torch, tx, tb, torch_index), (tx, tb),
                                   create_graph=True)
    np.testing.assert_allclose(gx.numpy(), tgx.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb.numpy(), tgb.detach().numpy(), rtol=1e-12, atol=1e-12)

    dot = (gx * tg.tensor(vx)).sum() + (gb * tg.tensor(vb)).sum()
    tdot = (tgx * torch.tensor(vx)).sum() + (tgb * torch.tensor(vb)).sum()
    hx, hb = tg.grad(dot, (x, b))
    thx, thb = torch.autograd.grad(tdot, (tx, tb))
    np.testing.assert_allclose(hx.numpy(), thx.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hb.numpy(), thb.numpy(), rtol=1e-12, atol=1e-12)


def test_assigning_into_a_constant_makes_it_part_of_the_graph():
    b = tg.tensor(2.0, requires_grad=True)
    a = tg.zeros(3)
    a[1] = b
    assert a.requires_grad and not a.is_leaf
    (a * tg.tensor([1.0, 5.0, 1.0])).sum().backward()
    assert b.grad.item() == 5.0


def test_ops_recorded_before_the_assignment_keep_the_old_value():
    x = tg.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    tx = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    results = []
    for lib_x in (x, tx):
        a = lib_x * 2
        before = a + 1  # saves nothing: may run after a changes
        a[0] = lib_x[2] * 10
        (before.sum() * 3 + (a * a).sum()).backward()
        results.append(lib_x.grad.detach().numpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_assignment_without_a_graph_writes_in_place():
    a = tg.zeros(2, 3)
    view = a.reshape(6)
    a[:, 1] = tg.tensor([4.0, 5.0])
    a[a > 4] = 7.0
    np.testing.assert_array_equal(view.numpy(), [0, 4, 0, 0, 7, 0])
    assert not a.requires_grad


def test_assigning_a_wrongly_shaped_value_names_the_shapes():
    a = tg.zeros(3, requires_grad=True) * 1
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        a[:] = tg.tensor([1.0, 2.0], requires_grad=True)
