"""The heart of the engine: how an op records itself in the compute graph.

Read this file first. Every differentiable op is a subclass of :class:`Op` with

* ``forward(xp, *arrays, **attrs)`` -- computes the result on raw backend arrays
  (``xp`` is ``numpy`` or ``cupy``, whichever holds the inputs), and
* ``backward(ctx, grad, out)`` -- returns one gradient per input, written with
  *Tensor* operations. Because the backward is itself made of differentiable
  ops, running it with grad mode on builds the graph of the gradient: that is
  all double backward (Hessian-vector products, Newton's method) needs.

``Op.apply`` runs the forward and, only when grad mode is on and some input
requires a gradient, attaches a :class:`Node` to the result. The node keeps the
op, its inputs and its non-tensor attributes -- never its output, so the graph
has no reference cycles and is freed as soon as nobody holds the output.

A learner adds an op with :class:`Function`, PyTorch's ``ctx`` pattern.
"""

import math
from collections import namedtuple

import numpy as np

from . import backend, capture, versions
from .backend import device_of, xp_of
from .grad_mode import (  # noqa: F401  (grad mode lives in its own file; re-exported here)
    DEFAULT_MODE,
    _set_grad_mode,
    backward_depth,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    thread_mode,
)

# ---------------------------------------------------------------------------
# Graph node
# ---------------------------------------------------------------------------

# What a freed node keeps of a tensor's values and gradient: tiny tensors only
# (micrograd's pictures show scalars), so the trace never holds an activation.
TRACE_VALUES = 16
# A backward through more tensors than this keeps no traces: no picture of such
# a graph can be read, and the traces of a graph of scalars would weigh about as
# much as the graph itself. Its nodes get UNTRACED.
TRACE_NODES = 10_000
UNTRACED = object()
# A gradient of more than TRACE_VALUES elements flowed here (its values were let go).
SHAPE_ONLY = object()


class Node:
    """One recorded op application: ``out = op(*inputs, **attrs)``.

    ``needs_input_grad[i]`` says whether input ``i`` needs a gradient, so a
    backward can skip work (an MLP's batch ``X`` never needs one). ``order`` is
    0 for nodes of the forward pass, k for nodes built during the k-th nested
    ``create_graph=True`` backward. ``inputs`` becomes ``None`` once a backward
    pass has freed the node; ``trace`` then keeps a lightweight
    :class:`NodeTrace` of it, for the pictures of ``tg.draw_graph``.
    """

    __slots__ = ("attrs", "inputs", "needs_input_grad", "op", "order", "stamp", "trace")

    def __init__(self, op, inputs, attrs, needs_input_grad, order=0):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.needs_input_grad = needs_input_grad
        self.order = order
        # The version clock when recorded: a saved tensor written in place after
        # this time makes the backward refuse (tinygrad_opt.versions).
        self.stamp = versions._now
        self.trace = None

    @property
    def name(self):
        return self.op.__name__

    @property
    def freed(self):
        """True once a backward without retain_graph has freed the node (a node
        that saved nothing keeps its inputs, so test this, not ``inputs``)."""
        return self.trace is not None

    def free(self, out=None, grad=None, inputs=None, input_grads=None):
        """Drop what the node keeps for backward (after a backward without
        retain_graph), keeping only its :class:`NodeTrace`: the structure, and the
        values and gradients of tensors of at most ``TRACE_VALUES`` elements.

        ``out`` is the node's output and ``grad`` the gradient that reached it
        (None: none did); ``inputs`` and ``input_grads`` are the node's inputs and
        what its backward handed to each, as the trace keeps them (the engine
        makes them in the loop over the inputs it runs anyway: see
        :func:`input_trace`). Every array larger than ``TRACE_VALUES`` elements
        is let go, so a training loop frees its activations exactly as before.
        Without ``out`` (a backward through more than ``TRACE_NODES`` tensors)
        the node keeps no trace: ``trace`` becomes ``UNTRACED``.
        """
        if out is None:
            self.trace = UNTRACED
        else:
            data = out.data
            tiny = data.size <= TRACE_VALUES
            self.trace = _new_tuple(NodeTrace, (
                data.shape, data.dtype, out.name, data.copy() if tiny else None,
                None if grad is None else grad.data.copy() if tiny else SHAPE_ONLY,
                inputs, input_grads))
        if not (self.op.saves_inputs or self.op.saves_output):
            # the backward reads no values, only the inputs (the graph's edges),
            # their shapes and the attributes, so it can run again, as in PyTorch.
            return
        self.inputs = None
        attrs = self.attrs
        if isinstance(attrs, FunctionCtx):
            attrs.__dict__ = {"needs_input_grad": attrs.needs_input_grad, "_saved": None,
                              "_inputs": (), "_out": None}
            return
        for value in attrs.values():
            if type(value) not in _PLAIN and not isinstance(value, np.generic):
                # maybe a large array: keep its ArrayTrace instead
                self.attrs = {key: _light(value) for key, value in attrs.items()}
                return

    def __repr__(self):
        return f"<{self.name} node>"


_new_tuple = tuple.__new__  # a namedtuple made from a tuple, without a Python-level call
# Types of inputs and attributes that are never arrays (kept by a freed node as they are).
_PLAIN = frozenset((bool, int, float, complex, str, tuple, list, dict, slice, type(None)))


def _light(value):
    """A non-tensor input or attribute as a freed node keeps it: a large array
    becomes its :class:`ArrayTrace` (shape and dtype), anything else stays."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, Tensor) \
            and getattr(value, "size", 0) > TRACE_VALUES:
        return ArrayTrace(value.shape, value.dtype)
    return value


class ArrayTrace:
    """A large array that was let go of: its shape and dtype only."""

    __slots__ = ("dtype", "shape", "size")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype
        self.size = math.prod(self.shape)


class NodeTrace(namedtuple("NodeTrace", "shape dtype name values grad inputs input_grads")):
    """What a freed :class:`Node` keeps for the pictures of ``tg.draw_graph``:
    its output's ``shape``, ``dtype`` and ``name``; ``values``, a copy of the
    output's values (None when it has more than ``TRACE_VALUES`` elements); the
    ``grad`` that reached it (None: none did; a copy, or ``SHAPE_ONLY`` for a
    larger tensor); its ``inputs``: an intermediate as the Node that made it
    (whose own trace has its values), a leaf that requires grad as itself (a
    parameter: the model keeps it alive anyway, and its ``.grad`` is what a
    picture shows), a constant tensor as a :class:`ConstantTrace`, anything else
    as given (a large array as its :class:`ArrayTrace`); and ``input_grads``,
    what its backward handed to each input (None: nothing; a copy, or
    ``SHAPE_ONLY``). A tuple, because one is made per node of every backward."""

    __slots__ = ()


class ConstantTrace(namedtuple("ConstantTrace", "shape dtype name key values")):
    """A tensor input that needs no gradient (a batch, a target), as a freed
    node keeps it: shape, dtype, name, a copy of its values when tiny (else
    None), and ``key`` (its id while the graph was alive), which tells two
    traces of one constant apart."""

    __slots__ = ()


def input_trace(value):
    """An input as a trace keeps it: an intermediate as the Node that made it, a
    leaf that requires grad as itself, a constant tensor as its ConstantTrace,
    anything else as :func:`_light` keeps it."""
    if isinstance(value, Tensor):
        made_by = value._node
        if made_by is not None:
            return made_by
        return value if value.requires_grad else _constant_trace(value)
    return value if type(value) in _PLAIN else _light(value)


def _constant_trace(tensor):
    data = tensor.data
    return _new_tuple(ConstantTrace, (data.shape, data.dtype, tensor.name, id(tensor),
                                      data.copy() if data.size <= TRACE_VALUES else None))


# ---------------------------------------------------------------------------
# Built-in ops
# ---------------------------------------------------------------------------

_EMPTY = {}
_NDARRAY = np.ndarray
Tensor = None  # tinygrad_opt.tensor sets this once the class exists (the two import each other)


class Op:
    """Base of the built-in ops: forward on arrays, backward in Tensor ops."""

    # One line shown when the forward fails (numpy's own message follows it).
    hint = "check the shapes and dtypes of the inputs"
    # The output dtype follows PyTorch's type promotion (see _promotion_rule): "promote"
    # (most ops), "same" (the inputs must share one dtype: matmul), or None (NumPy's
    # dtype is already PyTorch's: casts, sums). ``dtype_operands`` picks the inputs
    # that take part (not masks or indices).
    dtype_rule = "promote"
    dtype_operands = slice(None)
    # Whether the backward reads the inputs' values / the output's values (not
    # just shapes). A backward refuses when such a value was changed in place
    # since it was recorded (tinygrad_opt.versions); an op that reads neither
    # keeps its inputs (the graph's edges) after a backward, which may then run again.
    saves_inputs = True
    saves_output = True
    # A batched backward (autograd/batched.py: B cotangents in one pass, every
    # gradient with a leading batch axis) asks each op for one of two things.
    # ``backward_batches``: the backward broadcasts over that axis unchanged (each
    # gradient is g times something of the output's shape), so it runs as written.
    # ``batched_backward(node, G, out)``: a rule on arrays, G of shape (B,) +
    # out.shape, returning one array (B,) + input shape (or None) per input, or
    # None where it cannot batch this call. An op with neither runs its
    # backward once per sample: correct, only slower.
    backward_batches = False
    batched_backward = None

    @staticmethod
    def forward(xp, *arrays, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad, out):
        raise NotImplementedError

    @classmethod
    def vjp(cls, node, grad, out):
        """What the engine calls: a tuple with one gradient (or None) per input."""
        return cls.backward(node, grad, out)

    @classmethod
    def explain(cls, inputs, attrs, error):
        """The error message (after "opname: ") when the forward fails, or None
        for the generic one built from ``hint``."""
        return

    @classmethod
    def apply(cls, *inputs, **attrs):
        """Run the forward; record a node only if grad mode is on and an input needs a grad.

        This is the hot path of the whole library (every op of every forward and
        backward pass goes through it), hence the plain loops.
        """
        if capture.RECORDING is not None:  # tg.jit is recording: let it see the inputs
            capture.RECORDING.watch(inputs)
        arrays, needs, dtype = [], [], None
        for t in inputs:
            if isinstance(t, Tensor):
                array = t.data
                arrays.append(array)
                needs.append(t.requires_grad)
                # the first tensor's dtype, or False once two tensors' differ (for
                # _promotion_rule); builtin dtypes are singletons, compared with `is`
                if dtype is None:
                    dtype = array.dtype
                elif array.dtype is not dtype:
                    dtype = False
            else:
                arrays.append(t)
                needs.append(False)
        xp = np if type(arrays[0]) is _NDARRAY else xp_of(arrays)
        try:
            data = cls.forward(xp, *arrays, **attrs)
        except (ValueError, TypeError, IndexError) as error:
            raise _op_error(cls, inputs, attrs, error) from error
        if data.dtype is not dtype:  # mixed inputs, or NumPy changed the dtype (int / int)
            data = _promotion_rule(cls, xp, arrays, attrs, data)
        if True in needs:
            order = thread_mode(DEFAULT_MODE).order  # None: grad mode is off (in this thread)
            if order is not None:
                return Tensor._make(data, True, Node(cls, inputs, attrs or _EMPTY, needs, order))
        # Tensor.constant(data), inlined: this line runs once per op of every pass
        return Tensor._make(data, False, None)


def _promotion_rule(op, xp, arrays, attrs, data):
    """The forward's result ``data`` in the dtype PyTorch's type promotion gives.

    Called only when the tensor inputs' dtypes differ or NumPy's result dtype differs
    from theirs, which is where the two disagree: NumPy lets a 0-d array widen an n-d
    one (float32 with a float64 0-d is float64 there, float32 in PyTorch), makes
    float64 from float16 and int64, and float64 or float16 from integers (exp,
    division, int * 0.5) where PyTorch uses the default float dtype. The rule: ``backend.result_type`` of the operands, or the
    default float dtype when the op makes floats of integers or bools. As PyTorch does,
    the operands are converted to that dtype and the forward runs again, so the values
    are computed in it (exp of int8 in float32, not in NumPy's float16).
    """
    if op.dtype_rule is None:
        return data
    key = _promotion_key(op, arrays, data)
    target = _PROMOTIONS.get(key) if key is not None else None
    if target is None:
        target = _promoted_dtype(op, arrays, data)
        if key is not None:
            _PROMOTIONS[key] = target
    if data.dtype == target:
        return data
    converted = list(arrays)
    for i in range(len(arrays))[op.dtype_operands]:
        if getattr(arrays[i], "dtype", target) != target:
            converted[i] = arrays[i].astype(target)
    return xp.asarray(op.forward(xp, *converted, **attrs), dtype=target)


# What _promoted_dtype answered, by _promotion_key: the answer depends on nothing
# else, and computing it costs more than the op itself for small arrays (a ReLU's
# backward multiplies by a bool mask every step).
_PROMOTIONS = {}
_KEY_TYPES = frozenset((bool, int, float, complex, type(None)))


def _promotion_key(op, arrays, data):
    """What the promoted dtype depends on: the op, the forward's dtype, the default
    dtype and each input's dtype and tier (0-d or not; a Python number's type); None
    when an input is something else (a CuPy array, an index): not remembered."""
    key = [op, data.dtype, backend._default_dtype]
    for array in arrays:
        kind = type(array)
        if kind is _NDARRAY:
            key.append((array.dtype, array.ndim == 0))
        elif kind in _KEY_TYPES or issubclass(kind, np.generic):
            key.append(kind)
        else:
            return None
    return tuple(key)


def _promoted_dtype(op, arrays, data):
    """``backend.result_type`` of the op's operands, or the default float dtype when
    the op makes floats of integers or bools (refusing mixed dtypes for "same")."""
    present = [arrays[i] for i in range(len(arrays))[op.dtype_operands]
               if arrays[i] is not None]
    if op.dtype_rule == "same":
        _check_same_dtype(op, present)
    target = backend.result_type(*present)
    if data.dtype.kind == "f" and target.kind != "f":
        target = backend._default_dtype
    return target


def _check_same_dtype(op, operands):
    """Ops like matmul never promote (as in PyTorch): mismatched dtypes are an error."""
    dtypes = [array.dtype for array in operands if hasattr(array, "dtype")]
    if any(dtype != dtypes[0] for dtype in dtypes):
        names = ", ".join(str(dtype) for dtype in dtypes[:-1]) + f" and {dtypes[-1]}"
        raise RuntimeError(
            f"{op.__name__.lower()}: the inputs must have the same dtype, got {names} "
            "(PyTorch: 'mat1 and mat2 must have the same dtype'); convert one, e.g. "
            "x.to(w.dtype) or tg.tensor(array, dtype='float32') for NumPy data.")


def shape_of(value):
    """The shape of a Tensor, array or Python number, as a tuple."""
    return tuple(getattr(value, "shape", ()))


def list_shapes(inputs):
    """'(2, 3) and (4, 5)': the shapes of an op's inputs, for error messages."""
    shapes = [str(shape_of(t)) for t in inputs]
    return shapes[0] if len(shapes) == 1 else ", ".join(shapes[:-1]) + " and " + shapes[-1]


def _op_error(op, inputs, attrs, error):
    """One sentence naming the op, what it was given, and the fix."""
    name = op.__name__.lower()
    devices = sorted({device_of(t.data) for t in inputs if isinstance(t, Tensor)})
    if len(devices) > 1:
        return RuntimeError(
            f"{name}: the inputs are on different devices ({', '.join(devices)}); "
            f"move them to one device with .to(device) first.")
    kind = type(error) if isinstance(error, (IndexError, TypeError)) else ValueError
    message = op.explain(inputs, attrs, error)
    if message is None:
        described = ", ".join(f"{shape_of(t)} {t.dtype}" if isinstance(t, Tensor) else repr(t)
                              for t in inputs)
        extra = "".join(f", {k}={v!r}" for k, v in attrs.items())
        message = (f"cannot apply to inputs of shapes and dtypes ({described}{extra}): "
                   f"{op.hint} (numpy: {error})")
    return kind(f"{name}: {message}.")


# ---------------------------------------------------------------------------
# User-defined ops: PyTorch's ctx pattern
# ---------------------------------------------------------------------------

class FunctionCtx:
    """The ``ctx`` a :class:`Function` gets: save what backward needs on it.

    It keeps the saved arrays (and any attribute a forward sets on it), never
    the inputs or the output: the engine lends those to ``saved_tensors`` only
    while the backward runs, so a ctx creates no reference cycle and a freed
    graph keeps nothing alive.
    """

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._inputs = ()
        self._out = None

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        """The saved arrays as Tensors: an input's array gives that input back
        (so the backward stays differentiable), the output's array gives the
        output, anything else becomes a constant."""
        if self._saved is None:
            raise RuntimeError("saved_tensors: this Function's graph was freed by an earlier "
                               "backward; pass retain_graph=True to backpropagate again.")
        result = []
        for array in self._saved:
            match = next((t for t in self._inputs
                          if isinstance(t, Tensor) and t.data is array), None)
            if match is None and self._out is not None and self._out.data is array:
                match = self._out
            result.append(match if match is not None else Tensor.constant(array))
        return tuple(result)


class Function(Op):
    """A user-defined differentiable op, as in PyTorch::

        class Cube(tg.autograd.Function):
            @staticmethod
            def forward(ctx, x):              # x is an array
                ctx.save_for_backward(x)
                return x ** 3
            @staticmethod
            def backward(ctx, grad):          # grad is a Tensor
                (x,) = ctx.saved_tensors      # Tensors: differentiable again
                return grad * 3 * x ** 2

        y = Cube.apply(x)

    ``forward`` receives the inputs' arrays (non-tensor arguments as given);
    ``backward`` returns one gradient (or None) per input, written in Tensor
    ops so that it can itself be differentiated.
    """

    @classmethod
    def apply(cls, *inputs):
        if capture.RECORDING is not None:  # tg.jit is recording: let it see the inputs
            capture.RECORDING.watch(inputs)
        needs = [isinstance(t, Tensor) and t.requires_grad for t in inputs]
        ctx = FunctionCtx(tuple(needs))
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        data = cls.forward(ctx, *arrays)
        if not hasattr(data, "shape") or isinstance(data, np.generic):
            data = xp_of(arrays).asarray(data)
        order = thread_mode(DEFAULT_MODE).order
        if order is not None and True in needs:
            return Tensor._make(data, True, Node(cls, inputs, ctx, needs, order))
        return Tensor.constant(data)

    @classmethod
    def vjp(cls, node, grad, out):
        ctx = node.attrs
        ctx._inputs, ctx._out = node.inputs, out
        try:
            grads = cls.backward(ctx, grad)
        finally:
            ctx._inputs, ctx._out = (), None  # keep nothing alive (no cycles)
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(node.inputs):
            raise RuntimeError(f"{cls.__name__}.backward returned {len(grads)} gradient(s) for "
                               f"{len(node.inputs)} input(s); return one (or None) per input "
                               "of forward.")
        # Be lenient with arrays and numbers: they become constant Tensors.
        return tuple(g if g is None or isinstance(g, Tensor)
                     else Tensor.constant(xp_of((out.data,)).asarray(g, dtype=out.dtype))
                     for g in grads)
