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

import numpy as np

from . import backend
from .backend import xp_of

# ---------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------

_grad_enabled = True
# How many backward passes with create_graph=True are running right now. Nodes
# remember it, so the pictures of tinygrad_opt.graph can colour the nodes that
# a backward pass added (order 1), a backward of that (order 2), ...
_backward_depth = 0


def is_grad_enabled():
    return _grad_enabled


def set_grad_enabled(mode):
    """Turn graph recording on or off; returns the previous mode."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(mode)
    return previous


class _GradMode:
    """Context manager and decorator that sets grad mode inside its block."""

    mode = True

    def __enter__(self):
        self._previous = set_grad_enabled(self.mode)

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Inside ``with tg.no_grad():`` ops record no graph (inference, updates)."""

    mode = False


class enable_grad(_GradMode):
    """Inside ``with tg.enable_grad():`` ops record the graph again."""

    mode = True


class backward_depth:
    """Marks the nodes built while a create_graph backward runs (for graph.py).

    Their order is one more than the highest order in the graph being
    differentiated (``top``), so the second backward of a Hessian-vector
    product -- which runs after the first, not inside it -- still gets order 2.
    """

    def __init__(self, top=0):
        self.top = top

    def __enter__(self):
        global _backward_depth
        self._previous = _backward_depth
        _backward_depth = max(_backward_depth + 1, self.top + 1)

    def __exit__(self, *exc):
        global _backward_depth
        _backward_depth = self._previous


# ---------------------------------------------------------------------------
# Graph node
# ---------------------------------------------------------------------------

class Node:
    """One recorded op application: ``out = op(*inputs, **attrs)``.

    ``needs_input_grad[i]`` says whether input ``i`` needs a gradient, so a
    backward can skip work (an MLP's batch ``X`` never needs one). ``order`` is
    0 for nodes of the forward pass, k for nodes built during the k-th nested
    ``create_graph=True`` backward. ``inputs`` becomes ``None`` once a backward
    pass has freed the node.
    """

    __slots__ = ("attrs", "inputs", "needs_input_grad", "op", "order")

    def __init__(self, op, inputs, attrs, needs_input_grad):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.needs_input_grad = needs_input_grad
        self.order = _backward_depth

    @property
    def name(self):
        return self.op.__name__

    def free(self):
        """Drop what the node keeps for backward (after a backward without retain_graph)."""
        self.inputs = None
        if isinstance(self.attrs, FunctionCtx):
            self.attrs._saved = None

    def __repr__(self):
        return f"<{self.name} node>"


# ---------------------------------------------------------------------------
# Built-in ops
# ---------------------------------------------------------------------------

_EMPTY = {}
_FLOAT64 = np.dtype(np.float64)  # builtin dtypes are singletons: compared with `is`
Tensor = None  # tinygrad_opt.tensor sets this once the class exists (the two import each other)


class Op:
    """Base of the built-in ops: forward on arrays, backward in Tensor ops."""

    # One line shown when the forward fails (numpy's own message follows it).
    hint = "check the shapes and dtypes of the inputs"
    # True for ops whose output dtype is asked for (Cast): no float dtype rule.
    exact_dtype = False

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
        arrays, record = [], False
        for t in inputs:
            if isinstance(t, Tensor):
                arrays.append(t.data)
                record = record or t.requires_grad
            else:
                arrays.append(t)
        xp = np if type(arrays[0]) is np.ndarray else xp_of(arrays)
        try:
            data = cls.forward(xp, *arrays, **attrs)
        except (ValueError, TypeError, IndexError) as error:
            raise _op_error(cls, inputs, attrs, error) from error
        if type(data) is not np.ndarray and isinstance(data, np.generic):
            data = np.asarray(data)  # numpy reductions return scalars
        if data.dtype is _FLOAT64 and backend._default_dtype is not _FLOAT64:
            data = _float_dtype_rule(cls, arrays, data)
        if record and _grad_enabled:
            needs = [isinstance(t, Tensor) and t.requires_grad for t in inputs]
            return Tensor._make(data, True, Node(cls, inputs, attrs or _EMPTY, needs))
        return Tensor._make(data, False, None)


def _float_dtype_rule(op, arrays, data):
    """NumPy makes float64 from integers (int / int, exp(int), int * 0.5); as in
    PyTorch, floats made from integer tensors and Python numbers take the default
    dtype instead. Float64 made from a float64 input, or asked for, stays."""
    if op.exact_dtype:
        return data
    for array in arrays:
        if getattr(array, "dtype", None) is _FLOAT64:
            return data
    return data.astype(backend._default_dtype)


def shape_of(value):
    """The shape of a Tensor, array or Python number, as a tuple."""
    return tuple(getattr(value, "shape", ()))


def list_shapes(inputs):
    """'(2, 3) and (4, 5)': the shapes of an op's inputs, for error messages."""
    shapes = [str(shape_of(t)) for t in inputs]
    return shapes[0] if len(shapes) == 1 else ", ".join(shapes[:-1]) + " and " + shapes[-1]


def _op_error(op, inputs, attrs, error):
    """One sentence naming the op, what it was given, and the fix."""
    from .backend import device_of

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
            result.append(match if match is not None else Tensor._make(array, False, None))
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
        needs = [isinstance(t, Tensor) and t.requires_grad for t in inputs]
        ctx = FunctionCtx(tuple(needs))
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        data = cls.forward(ctx, *arrays)
        if not hasattr(data, "shape") or isinstance(data, np.generic):
            data = xp_of(arrays).asarray(data)
        if _grad_enabled and True in needs:
            return Tensor._make(data, True, Node(cls, inputs, ctx, needs))
        return Tensor._make(data, False, None)

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
                     else Tensor._make(xp_of((out.data,)).asarray(g, dtype=out.dtype), False, None)
                     for g in grads)
