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
    """Marks the nodes built while a create_graph backward runs (for graph.py)."""

    def __enter__(self):
        global _backward_depth
        _backward_depth += 1

    def __exit__(self, *exc):
        global _backward_depth
        _backward_depth -= 1


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

    __slots__ = ("op", "inputs", "attrs", "needs_input_grad", "order")

    def __init__(self, op, inputs, attrs, needs_input_grad):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.needs_input_grad = needs_input_grad
        self.order = _backward_depth

    @property
    def name(self):
        return self.op.__name__

    def __repr__(self):
        return f"<{self.name} node>"


# ---------------------------------------------------------------------------
# Built-in ops
# ---------------------------------------------------------------------------

_EMPTY = {}


class Op:
    """Base of the built-in ops: forward on arrays, backward in Tensor ops."""

    # One line shown when the forward fails (numpy's own message follows it).
    hint = "check the shapes and dtypes of the inputs"

    @staticmethod
    def forward(xp, *arrays, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad, out):
        raise NotImplementedError

    @classmethod
    def vjp(cls, ctx, grad, out):
        """What the engine calls: a tuple with one gradient (or None) per input."""
        return cls.backward(ctx, grad, out)

    @classmethod
    def apply(cls, *inputs, **attrs):
        from .tensor import Tensor

        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        xp = xp_of(arrays)
        try:
            data = cls.forward(xp, *arrays, **attrs)
        except (ValueError, TypeError, IndexError) as error:
            raise _op_error(cls, inputs, attrs, error) from error
        if isinstance(data, np.generic):  # numpy reductions return scalars
            data = np.asarray(data)
        if _grad_enabled:
            needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
            if True in needs:
                node = Node(cls, inputs, attrs or _EMPTY, needs)
                return Tensor._make(data, True, node)
        return Tensor._make(data, False, None)


def _op_error(op, inputs, attrs, error):
    """One sentence naming the op, what it was given, and the fix."""
    from .backend import device_of
    from .tensor import Tensor

    tensors = [t for t in inputs if isinstance(t, Tensor)]
    devices = sorted({device_of(t.data) for t in tensors})
    name = op.__name__.lower()
    if len(devices) > 1:
        return RuntimeError(
            f"{name}: the inputs are on different devices ({', '.join(devices)}); "
            f"move them to one device with .to(device) first.")
    described = ", ".join(
        f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else repr(t) for t in inputs)
    extra = "".join(f", {k}={v!r}" for k, v in attrs.items())
    kind = type(error) if isinstance(error, (IndexError, TypeError)) else ValueError
    return kind(f"{name}: cannot apply to inputs of shapes and dtypes ({described}{extra}): "
                f"{op.hint} ({error}).")


# ---------------------------------------------------------------------------
# User-defined ops: PyTorch's ctx pattern
# ---------------------------------------------------------------------------

class FunctionCtx:
    """The ``ctx`` a :class:`Function` gets: save what backward needs on it."""

    def __init__(self, inputs):
        self._inputs = inputs
        self._saved = ()
        self._out = None
        self.needs_input_grad = ()

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        """The saved arrays as Tensors: an input's array gives that input back
        (so the backward stays differentiable), the output's array gives the
        output, anything else becomes a constant."""
        from .tensor import Tensor

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
        from .tensor import Tensor

        ctx = FunctionCtx(inputs)
        ctx.needs_input_grad = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        data = cls.forward(ctx, *arrays)
        if not hasattr(data, "shape") or isinstance(data, np.generic):
            data = xp_of(arrays).asarray(data)
        if _grad_enabled and True in ctx.needs_input_grad:
            node = Node(cls, inputs, ctx, ctx.needs_input_grad)
            return Tensor._make(data, True, node)
        return Tensor._make(data, False, None)

    @classmethod
    def vjp(cls, ctx, grad, out):
        fctx = ctx.attrs
        fctx._out = out
        try:
            grads = cls.backward(fctx, grad)
        finally:
            fctx._out = None  # do not keep the output alive (no cycles)
        return grads if isinstance(grads, tuple) else (grads,)
