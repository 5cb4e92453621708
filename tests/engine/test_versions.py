"""Version counters: a backward that needs a value changed in place since it was
saved refuses, as PyTorch does -- through views and detached aliases too --
while changes of values no backward reads are fine. In-place methods follow
PyTorch's rules (leaves that require grad refuse under grad mode) and work on
0-d tensors."""

import numpy as np
import pytest

import tinygrad_opt as tg

torch = pytest.importorskip("torch")

MESSAGE = "modified by an inplace operation"


def both(values):
    """The same float64 leaf in tinygrad_opt and in PyTorch."""
    return (tg.tensor(values, dtype="float64", requires_grad=True),
            torch.tensor(values, dtype=torch.float64, requires_grad=True))


def assert_both_refuse(ours, theirs, shape):
    with pytest.raises(RuntimeError, match="inplace operation"):
        theirs()
    with pytest.raises(RuntimeError, match=MESSAGE) as info:
        ours()
    assert str(shape) in str(info.value) and ".clone()" in str(info.value)


def test_no_grad_update_of_a_saved_leaf_refuses():
    w, tw = both([1.0, 2.0])
    y, ty = (w * w).sum(), (tw * tw).sum()
    with tg.no_grad():
        w -= 1
    with torch.no_grad():
        tw -= 1
    assert_both_refuse(y.backward, ty.backward, (2,))


def test_change_through_a_detached_alias_refuses():
    x, tx = both([0.5, 1.0])
    y, ty = x.exp(), tx.exp()
    z, tz = y.detach(), ty.detach()
    z += 1
    tz += 1
    assert_both_refuse(lambda: y.sum().backward(), lambda: ty.sum().backward(), (2,))


def test_change_through_a_view_refuses():
    x, tx = both([[0.5, 1.0], [2.0, 3.0]])
    y, ty = x.sin(), tx.sin()
    with tg.no_grad():
        x.reshape(4)[0:1].mul_(2.0)
    with torch.no_grad():
        tx.reshape(4)[0:1].mul_(2.0)
    assert_both_refuse(lambda: y.sum().backward(), lambda: ty.sum().backward(), (2, 2))


def test_an_update_between_two_backwards_through_one_graph_refuses():
    w, tw = both([[0.5, -1.0], [2.0, 0.25]])
    x, tx = both([1.0, 3.0])
    loss, tloss = ((w @ x) ** 2).sum(), ((tw @ tx) ** 2).sum()
    loss.backward(retain_graph=True)
    tloss.backward(retain_graph=True)
    with tg.no_grad():  # an SGD step written with in-place methods, as torch.optim does
        w.sub_(w.grad, alpha=0.1)
    with torch.no_grad():
        tw.sub_(tw.grad, alpha=0.1)
    assert_both_refuse(loss.backward, tloss.backward, (2, 2))


def test_an_optimizer_step_between_two_backwards_through_one_graph_refuses():
    w, tw = both([[0.5, -1.0], [2.0, 0.25]])
    x, tx = both([1.0, 3.0])
    loss, tloss = ((w @ x) ** 2).sum(), ((tw @ tx) ** 2).sum()
    loss.backward(retain_graph=True)
    tloss.backward(retain_graph=True)
    tg.optim.SGD([w], lr=0.1).step()
    torch.optim.SGD([tw], lr=0.1).step()
    assert_both_refuse(loss.backward, tloss.backward, (2, 2))


def test_changes_no_backward_reads_are_allowed_as_in_torch():
    x, tx = both([0.5, 1.0])
    y, ty = (x + 1).sum(), (tx + 1).sum()  # add saves nothing
    with tg.no_grad():
        x.mul_(3.0)
    with torch.no_grad():
        tx.mul_(3.0)
    y.backward()
    ty.backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_a_graph_recorded_after_the_change_is_fine():
    w = tg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    with tg.no_grad():
        w -= 1
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 2.0])


def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w, tw = both([1.0, 2.0])
    for change in (lambda t: t.add_(1.0), lambda t: t.mul_(2.0), lambda t: t.zero_(),
                   lambda t: t.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="leaf"):
            change(tw)
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad") as info:
            change(w)
        assert "no_grad" in str(info.value)


def test_second_backward_through_nodes_that_saved_nothing_works_as_in_torch():
    a, ta = both([1.0, 2.0])
    b, tb = both([3.0, -1.0])
    for lib_a, lib_b in ((a, b), (ta, tb)):
        y = ((lib_a + lib_b).reshape(2, 1).expand(2, 3) - lib_b.reshape(2, 1)).sum()
        y.backward()
        y.backward()  # add, sub, reshape, expand and sum read no values
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())


# -- 0-d tensors: a Tensor never holds a NumPy scalar -------------------------------------


def test_every_way_of_making_a_tensor_keeps_a_0d_array():
    t = tg.tensor(2.0, requires_grad=True)
    t.grad = tg.Tensor(np.float32(1.5))  # a gradient made from a NumPy scalar
    made = tg.Tensor.constant(np.float32(2.0))  # what optimizers and clipping use
    for array in (t.grad.data, made.data, tg.tensor([1.0, 3.0]).max(0).indices.data,
                  tg.tensor(np.float64(1.0)).data, (tg.tensor([1.0]) > 0).all().data,
                  (t * t).sum().data, tg.Tensor(np.float64(1.0)).data):
        assert type(array) is np.ndarray and array.ndim == 0


@pytest.mark.parametrize("method, args", [
    ("zero_", ()), ("fill_", (4.0,)), ("add_", (2.0,)), ("sub_", (0.5,)), ("mul_", (3.0,)),
    ("div_", (4.0,)), ("pow_", (2.0,)), ("neg_", ()), ("clamp_", (0.0, 1.0)),
    ("copy_", (7.0,)),
])
def test_in_place_methods_work_on_0d_tensors_as_in_torch(method, args):
    ours, theirs = tg.tensor(1.5, dtype="float64"), torch.tensor(1.5, dtype=torch.float64)
    ours_args = tuple(tg.tensor(a, dtype="float64") if method == "copy_" else a for a in args)
    theirs_args = tuple(torch.tensor(a, dtype=torch.float64) if method == "copy_" else a
                        for a in args)
    out = getattr(ours, method)(*ours_args)
    getattr(theirs, method)(*theirs_args)
    assert out is ours and type(ours.data) is np.ndarray and ours.data.ndim == 0
    assert ours.item() == theirs.item()


def test_in_place_on_a_0d_grad_and_on_indices():
    t = tg.tensor(2.0, requires_grad=True)
    (t * t).backward()
    t.grad.zero_()
    indices = tg.tensor([1.0, 3.0, 2.0]).max(0).indices
    indices.zero_()
    assert t.grad.item() == 0.0 and indices.item() == 0


def test_in_place_with_a_graph_takes_the_change_into_the_history():
    x, tx = both([0.5, -1.0, 2.0])
    y, ty = x * 2, tx * 2
    before, tbefore = y + 0, ty + 0  # recorded before the change: sees the old value
    y.mul_(x)
    ty.mul_(tx)
    y += x
    ty += tx
    (y.sum() + (before * 3).sum()).backward()
    (ty.sum() + (tbefore * 3).sum()).backward()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_augmented_assignment_changes_every_alias_as_in_torch():
    a, ta = tg.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    alias, talias = a, ta
    a += 1
    ta += 1
    np.testing.assert_array_equal(alias.numpy(), talias.numpy())


def test_a_function_whose_saved_array_changed_refuses():
    from .test_engine import Square  # a Function that saves its input

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = Square.apply(x).sum()
    with tg.no_grad():
        x.mul_(2.0)
    with pytest.raises(RuntimeError, match=f"Square: .*{MESSAGE}"):
        y.backward()
