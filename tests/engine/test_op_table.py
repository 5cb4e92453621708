"""Every op, one table: gradcheck, gradgradcheck and the batched Jacobian.

``OP_TABLE`` holds one entry per Op subclass of the package (minitorch's
pattern): the op, a maker of its inputs and the call that applies it. The first
test walks ``Op.__subclasses__()`` after importing the whole package and fails
when an op has no entry, so a new op cannot go unchecked -- nor silently take
the per-sample loop of a batched backward: an entry says whether its op batches
(``backward_batches`` or ``batched_backward``) or loops, and a test holds the
op to it.
"""

import importlib
import pkgutil
from types import SimpleNamespace

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt.autograd.batched import jacobian_matrix
from tinygrad_opt.capture import CaptureError
from tinygrad_opt.inplace import CopySlices
from tinygrad_opt.nn import functional as F
from tinygrad_opt.nn import fused as nn_ops
from tinygrad_opt.nn.module_hooks import _InputGrads, _OutputGrads
from tinygrad_opt.nn.prox import _ProxLinearOp
from tinygrad_opt.op import Function, Op
from tinygrad_opt.ops import elementwise as E
from tinygrad_opt.ops import matmul as L
from tinygrad_opt.ops import movement as M
from tinygrad_opt.ops import reduce as R
from tinygrad_opt.optim.kfac import _Capture

ALL = ("gradcheck", "gradgradcheck", "batched")


class Entry:
    """One op: ``make(rng)`` gives its inputs (float64 tensors that require grad,
    and any others), ``call(*inputs)`` applies it; ``batched`` is "rule" (the
    op's backward batches) or "loop" (it runs once per sample); ``checks`` the
    checks that apply, with ``why`` saying why any is left out."""

    def __init__(self, op, make, call, batched="rule", checks=ALL, why=""):
        assert checks == ALL or why, f"{op.__name__}: say why a check does not apply"
        self.op, self.make, self.call = op, make, call
        self.batched, self.checks = batched, checks

    def __repr__(self):
        return self.op.__name__


def leaf(rng, *shape, low=None):
    values = rng.standard_normal(shape) if low is None else rng.uniform(low, 2.0, shape)
    return tg.tensor(values, dtype="float64", requires_grad=True)


def one(shape, low=None):
    return lambda rng: [leaf(rng, *shape, low=low)]


def two(shape_x, shape_y, low=None):
    return lambda rng: [leaf(rng, *shape_x, low=low), leaf(rng, *shape_y, low=low)]


LABELS = np.array([2, 0, 3])


def labels(rng):
    return [leaf(rng, 3, 4), LABELS]


def probabilities(rng):
    return [tg.tensor(rng.uniform(0.1, 0.9, (3, 2)), dtype="float64", requires_grad=True),
            tg.tensor(rng.uniform(0.0, 1.0, (3, 2)), dtype="float64")]


def _pass_input_grad(i, g):
    return g


def _ignore_output_grad(i, g, n):
    return None


HOOK_CALL = SimpleNamespace(input_grad=_pass_input_grad, output_grad=_ignore_output_grad)

OP_TABLE = [
    Entry(E.Add, two((3, 4), (4,)), lambda x, y: E.Add.apply(x, y)),
    Entry(E.Sub, two((3, 4), (3, 1)), lambda x, y: E.Sub.apply(x, y)),
    Entry(E.Mul, two((3, 4), (4,)), lambda x, y: E.Mul.apply(x, y)),
    Entry(E.Div, two((3, 4), (3, 4), low=0.5), lambda x, y: E.Div.apply(x, y)),
    Entry(E.Pow, two((3, 4), (3, 4), low=0.5), lambda x, y: E.Pow.apply(x, y)),
    Entry(E.Maximum, two((3, 4), (3, 4)), lambda x, y: E.Maximum.apply(x, y)),
    Entry(E.Minimum, two((3, 4), (3, 4)), lambda x, y: E.Minimum.apply(x, y)),
    Entry(E.Where, two((3, 4), (3, 4)), lambda x, y: E.Where.apply(x.data > 0, x, y)),
    Entry(E.Neg, one((3, 4)), lambda x: E.Neg.apply(x)),
    Entry(E.Exp, one((3, 4)), lambda x: E.Exp.apply(x)),
    Entry(E.Log, one((3, 4), low=0.5), lambda x: E.Log.apply(x)),
    Entry(E.Sqrt, one((3, 4), low=0.5), lambda x: E.Sqrt.apply(x)),
    Entry(E.Sin, one((3, 4)), lambda x: E.Sin.apply(x)),
    Entry(E.Cos, one((3, 4)), lambda x: E.Cos.apply(x)),
    Entry(E.Tanh, one((3, 4)), lambda x: E.Tanh.apply(x)),
    Entry(E.TanhBackward, two((3, 4), (3, 4)), lambda g, z: E.TanhBackward.apply(g, z)),
    Entry(E.Arctan, one((3, 4)), lambda x: E.Arctan.apply(x)),
    Entry(E.Sigmoid, one((3, 4)), lambda x: E.Sigmoid.apply(x)),
    Entry(E.Relu, one((3, 4)), lambda x: E.Relu.apply(x)),
    Entry(E.LeakyRelu, one((3, 4)), lambda x: E.LeakyRelu.apply(x, negative_slope=0.1)),
    Entry(E.Abs, one((3, 4)), lambda x: E.Abs.apply(x)),
    Entry(E.Clamp, one((3, 4)), lambda x: E.Clamp.apply(x, min=-0.5, max=0.5)),
    Entry(E.Cast, one((3, 4)), lambda x: E.Cast.apply(x, dtype=np.dtype("float64"))),
    Entry(L.MatMul, two((3, 4), (4,)), lambda x, y: L.MatMul.apply(x, y)),
    Entry(M.Reshape, one((3, 4)), lambda x: M.Reshape.apply(x, shape=(2, 6))),
    Entry(M.Permute, one((2, 3, 4)), lambda x: M.Permute.apply(x, dims=(2, 0, 1))),
    Entry(M.Expand, one((1, 4)), lambda x: M.Expand.apply(x, shape=(3, 4))),
    Entry(M.SumTo, one((3, 4)), lambda x: M.SumTo.apply(x, shape=(1, 4))),
    Entry(M.GetItem, one((3, 4)), lambda x: M.GetItem.apply(x, index=(np.array([0, 2, 2]),))),
    Entry(M.IndexAdd, one((3, 4)),
          lambda g: M.IndexAdd.apply(g, index=(np.array([0, 2, 2]),), shape=(4, 4))),
    Entry(M.Cat, two((3, 2), (3, 4)), lambda x, y: M.Cat.apply(x, y, dim=1)),
    Entry(M.Copy, one((3, 4)), lambda x: M.Copy.apply(x)),
    Entry(M.ToDevice, one((3, 4)), lambda x: M.ToDevice.apply(x, device="cpu"), batched="loop"),
    Entry(R.Sum, one((3, 4)), lambda x: R.Sum.apply(x, dims=(1,), keepdim=False)),
    Entry(R.Mean, one((3, 4)), lambda x: R.Mean.apply(x, dims=(0,), keepdim=True)),
    Entry(R.Amax, one((3, 4)), lambda x: R.Amax.apply(x, dims=(1,), keepdim=False)),
    Entry(R.Amin, one((3, 4)), lambda x: R.Amin.apply(x, dims=(0,), keepdim=True)),
    Entry(R.Max, one((3, 4)), lambda x: R.Max.apply(x, dims=(0, 1), keepdim=False)),
    Entry(R.Min, one((3, 4)), lambda x: R.Min.apply(x, dims=(1,), keepdim=False)),
    Entry(R.SelectAlong, labels,
          lambda x, t: R.SelectAlong.apply(x, t, dim=1, keepdim=False)),
    Entry(R.ScatterAlong, lambda rng: [leaf(rng, 3), LABELS],
          lambda g, t: R.ScatterAlong.apply(g, t, dim=1, keepdim=False, shape=(3, 4))),
    Entry(R.Softmax, one((3, 4)), lambda x: R.Softmax.apply(x, dim=-1)),
    Entry(R.LogSoftmax, one((3, 4)), lambda x: R.LogSoftmax.apply(x, dim=0)),
    Entry(CopySlices, two((3, 4), (4,)),
          lambda x, v: CopySlices.apply(x, v, index=(1,))),
    Entry(nn_ops.Linear, lambda rng: [leaf(rng, 3, 4), leaf(rng, 2, 4), leaf(rng, 2)],
          F.linear, batched="loop"),
    Entry(nn_ops.CrossEntropy, labels, F.cross_entropy, batched="loop"),
    Entry(nn_ops.BinaryCrossEntropy, probabilities, F.binary_cross_entropy, batched="loop"),
    Entry(nn_ops.BinaryCrossEntropyWithLogits, two((3, 2), (3, 2)),
          F.binary_cross_entropy_with_logits, batched="loop"),
    Entry(_ProxLinearOp, lambda rng: [leaf(rng, 3, 4), tg.tensor(rng.standard_normal((2, 4)))],
          lambda x, w: _ProxLinearOp.apply(x, w, None, tau=1.0, mode="prox_cg1"),
          batched="loop", checks=("gradcheck", "batched"),
          why="its backward is built from arrays (a proximal step), not differentiable again"),
    Entry(_Capture, one((3, 4)), lambda s: _Capture.apply(s, lambda grad: None),
          batched="loop"),
    Entry(_InputGrads, one((3, 4)), lambda x: _InputGrads.apply(x, HOOK_CALL, 0),
          batched="loop"),
    Entry(_OutputGrads, one((3, 4)), lambda x: _OutputGrads.apply(x, HOOK_CALL, 0, 1),
          batched="loop"),
]


def _package_ops():
    """Every concrete Op subclass defined in the package, after importing all of it."""
    for module in pkgutil.walk_packages(tg.__path__, "tinygrad_opt."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, stack = [], [Op]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("tinygrad_opt.") and sub.forward is not Op.forward \
                    and sub.forward is not Function.forward:
                found.append(sub)
    return found


def _ops_in_graph(out):
    ops, stack, seen = set(), [out._node], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        ops.add(node.op)
        stack.extend(t._node for t in node.inputs if isinstance(t, tg.Tensor))
    return ops


def test_every_op_has_one_table_entry():
    table = [entry.op for entry in OP_TABLE]
    missing = sorted(op.__qualname__ for op in _package_ops() if op not in table)
    assert not missing, f"ops without an OP_TABLE entry: {missing}"
    assert len(table) == len(set(table)), "an op has two entries"


@pytest.mark.parametrize("entry", OP_TABLE, ids=repr)
def test_entry_exercises_its_op_and_declares_how_it_batches(entry):
    out = entry.call(*entry.make(np.random.default_rng(0)))
    assert entry.op in _ops_in_graph(out)
    batches = entry.op.backward_batches or entry.op.batched_backward is not None
    assert batches == (entry.batched == "rule")


@pytest.mark.parametrize("entry", [e for e in OP_TABLE if "gradcheck" in e.checks], ids=repr)
def test_gradcheck(entry):
    assert tg.autograd.gradcheck(entry.call, entry.make(np.random.default_rng(1)))


@pytest.mark.parametrize("entry", [e for e in OP_TABLE if "gradgradcheck" in e.checks], ids=repr)
def test_gradgradcheck(entry):
    assert tg.autograd.gradgradcheck(entry.call, entry.make(np.random.default_rng(2)))


@pytest.mark.parametrize("entry", OP_TABLE, ids=repr)
def test_batched_jacobian_matches_one_backward_per_row(entry):
    inputs = entry.make(np.random.default_rng(3))
    wrt = [t for t in inputs if isinstance(t, tg.Tensor) and t.requires_grad]
    out = entry.call(*inputs)
    J = jacobian_matrix(out, wrt, strategy="rows")
    rows = []
    for i in range(out.data.size):
        seed = np.zeros(out.data.size)
        seed[i] = 1.0
        gs = tg.grad([out], wrt, [tg.tensor(seed.reshape(out.shape))], retain_graph=True,
                     allow_unused=True)
        rows.append(np.concatenate([np.zeros(t.data.size) if g is None else g.data.ravel()
                                    for g, t in zip(gs, wrt)]))
    np.testing.assert_allclose(J, np.array(rows), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("entry", OP_TABLE, ids=repr)
def test_forward_and_backward_replay_bit_for_bit_under_jit(entry):
    """Each op's forward and backward, captured by tg.jit and replayed on new values (the
    leaves rewritten in place with a fresh draw, a new output gradient each call), equals
    eager bit for bit."""
    rng = np.random.default_rng(4)
    inputs = entry.make(rng)
    leaves = [t for t in inputs if isinstance(t, tg.Tensor) and t.requires_grad]
    shape = entry.call(*inputs).shape

    def step(seed):
        tg.nn.utils.zero_grads(leaves)
        out = entry.call(*inputs)
        (out * seed).sum().backward()
        return (out, *[t.grad for t in leaves])

    replay = tg.jit(step)
    if entry.op is _Capture:  # its backward calls a Python callback: refused, not replayed
        with pytest.raises(CaptureError, match="callback"):
            replay(tg.tensor(rng.standard_normal(shape), dtype="float64"))
        return
    for _ in range(4):
        fresh = [t for t in entry.make(rng) if isinstance(t, tg.Tensor) and t.requires_grad]
        for t, new in zip(leaves, fresh):  # new values in the same arrays, as an optimizer
            t.data[...] = new.data         # writes them
        seed = tg.tensor(rng.standard_normal(shape), dtype="float64")
        eager, jitted = step(seed), replay(seed)
        for a, b in zip(eager, jitted):
            assert (a is None and b is None) or np.array_equal(a.data, b.data)
    assert replay.replaying
