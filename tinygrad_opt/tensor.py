"""The Tensor: a backend array, an optional gradient, and a link into the graph.

Every method here is a thin call of an op in ``tinygrad_opt.ops``; the
arithmetic and the derivatives live there, one class per op.
"""

from collections import namedtuple

import numpy as np

from . import backend, capture, inplace
from . import op as op_module
from .hooks import TENSOR_HOOKS, add_hook, tensor_hooks
from .ops import elementwise as E
from .ops import matmul as L
from .ops import movement as M
from .ops import reduce as R

_new = object.__new__
_NDARRAY = np.ndarray
_SCALARS = (int, float, bool)

# max/min with a dim return both, as in PyTorch.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _operand(other):
    """A Tensor or Python number as an op input; numpy scalars become Python
    numbers (a scalar never upcasts a tensor), lists and arrays constants."""
    if isinstance(other, Tensor) or type(other) in _SCALARS:
        return other
    if isinstance(other, (np.generic, int, float)):  # np.float64 is a float subclass
        return other.item() if isinstance(other, np.generic) else other
    return Tensor(other)


def _dims(dim, axis, ndim):
    return R.normalize_dims(axis if dim is None else dim, ndim)


def _keep(keepdim, keepdims):
    return bool(keepdims) if keepdims is not None else keepdim


def _shape_args(shape):
    """Accept reshape(2, 3) and reshape((2, 3)) alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class ToShortcuts:
    """``cpu()``, ``cuda(i)``, ``float()``, ``double()``: PyTorch's shorthands for
    ``self.to(...)``, shared by Tensor and nn.Module."""

    __slots__ = ()

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=0):
        return self.to(f"cuda:{device}" if isinstance(device, int) else device)

    def float(self):
        return self.to(dtype="float32")

    def double(self):
        return self.to(dtype="float64")


class Tensor(ToShortcuts):
    """An n-dimensional array that records the ops applied to it.

    ``Tensor(data, dtype=None, device=None, requires_grad=False)``: Python
    numbers and lists become float32 (``tg.set_default_dtype`` changes that)
    or int64; NumPy and CuPy arrays keep their dtype unless ``dtype`` is given.
    """

    # ``data`` is a plain slot: reading it is the hot path of every op, and a
    # property would cost about 3% of a small model's training step. That it is
    # always an array (never a NumPy scalar) is kept by the constructors below.
    __slots__ = ("__weakref__", "_node", "data", "grad", "name", "requires_grad")
    __array_priority__ = 1000  # numpy_array * tensor calls Tensor.__rmul__

    def __init__(self, data, dtype=None, device=None, requires_grad=False, name=None):
        self.data = _to_array(data, dtype, device)
        self.grad = None
        self.requires_grad = False
        self._node = None
        self.name = name
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data, requires_grad, node):
        """Wrap an array without copying (the ops' fast path). A NumPy scalar --
        what NumPy's reductions and arithmetic on 0-d arrays return -- becomes a
        0-d array: a Tensor never holds a scalar, so in-place updates (optimizers,
        ``zero_()``) work on 0-d tensors too."""
        if type(data) is not _NDARRAY and isinstance(data, np.generic):
            data = np.asarray(data)
        t = _new(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = requires_grad
        t._node = node
        t.name = None
        return t

    @staticmethod
    def constant(array):
        """``array`` as a Tensor that needs no gradient, without copying it: the
        one way the library wraps an array it computed (a mask, a saved value,
        an optimizer's state) as a constant. Unlike ``tg.tensor`` it neither
        copies nor converts: the array is used as it is (a NumPy scalar becomes
        a 0-d array)."""
        return Tensor._make(array, False, None)

    # -- identity and description ------------------------------------------------

    __hash__ = object.__hash__  # __eq__ returns a Tensor, yet {tensor: state} must work

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.ndim

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor: it has no first dimension.")
        return self.shape[0]

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype not in (backend.get_default_dtype(), np.int64, np.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.name}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # -- leaving the graph -------------------------------------------------------

    def numpy(self):
        """The values as a NumPy array (copied to the host if on a GPU)."""
        data = self.data
        return data if isinstance(data, np.ndarray) else backend.to_host(data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): the tensor has {self.data.size} elements, shape "
                             f"{tuple(self.shape)}; only one-element tensors convert to a "
                             "Python number (use .tolist()).")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {tuple(self.shape)} is "
                             "ambiguous; use .any() or .all().")
        return bool(self.numpy().reshape(()))

    def __array__(self, dtype=None, copy=None):
        capture.refuse("np.asarray(tensor) (NumPy reading a tensor's values)",
                       "a replay would reuse the first call's values; use tensor operations, "
                       "or call the function outside tg.jit.")
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def detach(self):
        """The same values, cut from the graph (shares memory)."""
        return Tensor._make(self.data, False, None)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: only floating tensors can require gradients, "
                            f"this one is {self.dtype}; convert with .to(dtype='float32').")
        if self._node is not None and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a tensor computed by an op; use "
                               ".detach() to cut it from the graph.")
        self.requires_grad = bool(requires_grad)
        return self

    # -- gradient hooks -----------------------------------------------------------

    def register_hook(self, hook):
        """Call ``hook(grad)`` each time this tensor's gradient is computed; a
        returned tensor replaces the gradient. Returns a handle: ``.remove()``."""
        if not self.requires_grad:
            raise RuntimeError(f"register_hook: cannot register a hook on a tensor that doesn't "
                               f"require gradient (shape {tuple(self.shape)}); create it with "
                               "requires_grad=True first.")
        return add_hook(tensor_hooks(self).hooks, hook)

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (a
        leaf keeps it anyway)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has "
                               "requires_grad=False; only tensors in the graph get a gradient.")
        if self._node is not None:
            tensor_hooks(self).retain = True

    @property
    def retains_grad(self):
        table = TENSOR_HOOKS.get(id(self))
        return table is not None and table.retain

    # -- in-place methods (rules and mechanism: tinygrad_opt.inplace) ---------------

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        return self._assign("fill_", Ellipsis, value)

    def copy_(self, src):
        return self._assign("copy_", Ellipsis, src)

    def _assign(self, what, index, value):
        """``self[index] = value``: item assignment, fill_ and copy_."""

        def write(data):
            data[index] = _value_data(value)

        return inplace.modify(self, what, inplace.CopySlices, _operand(value), index=index,
                              write=write)

    def add_(self, other, alpha=1):
        other = _operand(other)
        return inplace.modify(self, "add_", E.Add, other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        other = _operand(other)
        return inplace.modify(self, "sub_", E.Sub, other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return inplace.modify(self, "mul_", E.Mul, _operand(other))

    def div_(self, other):
        return inplace.modify(self, "div_", E.Div, _operand(other))

    def pow_(self, exponent):
        return inplace.modify(self, "pow_", E.Pow, _operand(exponent))

    def neg_(self):
        return inplace.modify(self, "neg_", E.Neg)

    def clamp_(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp_: give at least one of min and max.")
        return inplace.modify(self, "clamp_", E.Clamp, min=min, max=max)

    clip_ = clamp_

    def clone(self):
        """A copy with its own memory; gradients flow through it."""
        return M.Copy.apply(self)

    def to(self, device=None, dtype=None):
        """A tensor on ``device`` and/or of ``dtype`` (differentiable); self if unchanged."""
        if dtype is None and not backend.is_device(device) and backend.is_dtype(device):
            device, dtype = None, device  # x.to("float64"), x.to(np.float32)
        out = self
        if dtype is not None and backend.to_dtype(dtype) != self.dtype:
            out = E.Cast.apply(out, dtype=backend.to_dtype(dtype))
        if device is not None and backend.normalize_device(device) != self.device:
            out = M.ToDevice.apply(out, device=backend.normalize_device(device))
        return out

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is required when self is not a scalar (it is the vector
        of the vector-Jacobian product). The graph is freed afterwards unless
        ``retain_graph`` (default: ``create_graph``). ``inputs`` limits the
        accumulation to those tensors.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph; "
                               "create the leaves with requires_grad=True (and not under "
                               "tg.no_grad()).")
        gradient = seed_gradient("backward", self, gradient)
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            captured = _engine().run_backward([self], [gradient], retain_graph, create_graph,
                                              capture=set(inputs))
            for leaf in inputs:
                g = captured.get(leaf)
                if g is not None:
                    leaf.grad = g if leaf.grad is None else leaf.grad + g
            return
        _engine().run_backward([self], [gradient], retain_graph, create_graph)

    # -- arithmetic ---------------------------------------------------------------

    def __add__(self, other):
        return E.Add.apply(self, _operand(other))

    def __radd__(self, other):
        return E.Add.apply(_operand(other), self)

    def __sub__(self, other):
        return E.Sub.apply(self, _operand(other))

    def __rsub__(self, other):
        return E.Sub.apply(_operand(other), self)

    def __mul__(self, other):
        return E.Mul.apply(self, _operand(other))

    def __rmul__(self, other):
        return E.Mul.apply(_operand(other), self)

    def __truediv__(self, other):
        return E.Div.apply(self, _operand(other))

    def __rtruediv__(self, other):
        return E.Div.apply(_operand(other), self)

    def __pow__(self, other):
        return E.Pow.apply(self, _operand(other))

    def __rpow__(self, other):
        return E.Pow.apply(_operand(other), self)

    def __matmul__(self, other):
        return L.MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):
        return L.MatMul.apply(_operand(other), self)

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return E.Abs.apply(self)

    # ``x += y`` is ``x.add_(y)``, as in PyTorch (other names for x see the change).

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    # comparisons: tensors of booleans with no gradient
    def _compare(self, other, fn):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._make(fn(self.data, other), False, None)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __invert__(self):
        return Tensor._make(~self.data, False, None)

    def __and__(self, other):
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other):
        return self._compare(other, lambda a, b: a | b)

    def any(self):
        return Tensor._make(self.data.any(), False, None)

    def all(self):
        return Tensor._make(self.data.all(), False, None)

    def argmax(self, dim=None, keepdim=False):
        return Tensor._make(_argext(self.data, dim, keepdim, "argmax"), False, None)

    def argmin(self, dim=None, keepdim=False):
        return Tensor._make(_argext(self.data, dim, keepdim, "argmin"), False, None)

    # -- elementwise functions --------------------------------------------------

    def neg(self):
        return E.Neg.apply(self)

    def exp(self):
        return E.Exp.apply(self)

    def log(self):
        return E.Log.apply(self)

    def sqrt(self):
        return E.Sqrt.apply(self)

    def sin(self):
        return E.Sin.apply(self)

    def cos(self):
        return E.Cos.apply(self)

    def tanh(self):
        return E.Tanh.apply(self)

    def arctan(self):
        return E.Arctan.apply(self)

    atan = arctan

    def sigmoid(self):
        return E.Sigmoid.apply(self)

    def relu(self):
        return E.Relu.apply(self)

    def leaky_relu(self, negative_slope=0.01):
        return E.LeakyRelu.apply(self, negative_slope=negative_slope)

    def abs(self):
        return E.Abs.apply(self)

    def square(self):
        return E.Mul.apply(self, self)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: give at least one of min and max.")
        return E.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def maximum(self, other):
        return E.Maximum.apply(self, _operand(other))

    def minimum(self, other):
        return E.Minimum.apply(self, _operand(other))

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    def add(self, other):
        return self + other

    def sub(self, other):
        return self - other

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    # -- reductions ---------------------------------------------------------------

    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return R.Sum.apply(self, dims=_dims(dim, axis, self.ndim), keepdim=_keep(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return R.Mean.apply(self, dims=_dims(dim, axis, self.ndim),
                            keepdim=_keep(keepdim, keepdims))

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Without dim: the largest value. With dim: (values, indices), as in PyTorch."""
        return self._extremum(R.Max, "argmax", dim, axis, _keep(keepdim, keepdims))

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Without dim: the smallest value. With dim: (values, indices), as in PyTorch."""
        return self._extremum(R.Min, "argmin", dim, axis, _keep(keepdim, keepdims))

    def _extremum(self, op, arg, dim, axis, keepdim):
        dim = axis if dim is None else dim
        if dim is None or isinstance(dim, tuple):
            return op.apply(self, dims=R.normalize_dims(dim, self.ndim), keepdim=keepdim)
        (dim,) = R.normalize_dims(dim, self.ndim)
        index = getattr(self.data, arg)(axis=dim)
        values = R.SelectAlong.apply(self, index, dim=dim, keepdim=keepdim)
        indices = index if not keepdim else np.expand_dims(index, dim) if isinstance(
            index, np.ndarray) else index.reshape(values.shape)
        return ValuesIndices(values, Tensor._make(indices, False, None))

    def amax(self, dim=None, keepdim=False):
        return R.Amax.apply(self, dims=R.normalize_dims(dim, self.ndim), keepdim=keepdim)

    def amin(self, dim=None, keepdim=False):
        return R.Amin.apply(self, dims=R.normalize_dims(dim, self.ndim), keepdim=keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None,
            keepdims=None):
        """Variance; unbiased (divides by n - 1) by default, as in PyTorch."""
        dims = _dims(dim, axis, self.ndim)
        keepdim = _keep(keepdim, keepdims)
        count = 1
        for d in dims:
            count *= self.shape[d]
        ddof = (1 if unbiased else 0) if correction is None else correction
        centered = self - self.mean(dims, keepdim=True)
        # Too few elements for the correction gives nan, as in PyTorch.
        scale = 1.0 / (count - ddof) if count > ddof else float("nan")
        return (centered * centered).sum(dims, keepdim=keepdim) * scale

    def std(self, dim=None, unbiased=True, keepdim=False, **kwargs):
        return self.var(dim, unbiased, keepdim, **kwargs).sqrt()

    def logsumexp(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """log(sum(exp(x))), computed stably: the max is subtracted (as a constant)."""
        dims = _dims(dim, axis, self.ndim)
        keepdim = _keep(keepdim, keepdims)
        shift = R.exp_shift(self.data, dims)  # 0 over an empty dim: the result is -inf
        shift = np.where(np.isfinite(shift), shift, 0) if isinstance(shift, np.ndarray) \
            else shift
        shift_t = Tensor._make(shift, False, None)
        total = (self - shift_t).exp().sum(dims, keepdim=True).log() + shift_t
        return total if keepdim else total.reshape(R.reduced_shape(self.shape, dims))

    def softmax(self, dim=-1):
        return R.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim=-1):
        return R.LogSoftmax.apply(self, dim=dim)

    # -- shape --------------------------------------------------------------------

    def reshape(self, *shape):
        shape = _shape_args(shape)
        if shape == self.shape:
            return self
        return M.Reshape.apply(self, shape=shape)

    view = reshape

    def permute(self, *dims):
        dims = tuple(d % self.ndim for d in _shape_args(dims))
        return M.Permute.apply(self, dims=dims)

    def transpose(self, dim0=-2, dim1=-1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return M.Permute.apply(self, dims=tuple(dims))

    def expand(self, *shape):
        shape = _shape_args(shape)
        lead = len(shape) - self.ndim
        for i, n in enumerate(shape[:max(lead, 0)]):
            if n == -1:
                raise RuntimeError(f"expand: the expanded size -1 isn't allowed in a leading, "
                                   f"non-existing dimension {i} (expanding shape "
                                   f"{tuple(self.shape)} to {shape}); give its size.")
        shape = tuple(n if n != -1 else self.shape[i - lead] for i, n in enumerate(shape))
        if shape == self.shape:
            return self
        return M.Expand.apply(self, shape=shape)

    def sum_to(self, shape):
        """Sum over broadcast dimensions down to ``shape`` (the adjoint of expand)."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return M.SumTo.apply(self, shape=shape)

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dims = R.normalize_dims(dim, self.ndim)
            shape = tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1))
        return self.reshape(shape)

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        middle = 1
        for n in self.shape[start:end + 1]:
            middle *= n
        return self.reshape(self.shape[:start] + (middle,) + self.shape[end + 1:])

    def __getitem__(self, index):
        return M.GetItem.apply(self, index=_array_index(index))

    def __setitem__(self, index, value):
        """``x[index] = value``, recorded in the graph when one is involved (CopySlices)."""
        self._assign("item assignment", _array_index(index), value)


# -- helpers -------------------------------------------------------------------------------


def _argext(data, dim, keepdim, name):
    if dim is None:
        return getattr(data.reshape(-1), name)()
    result = getattr(data, name)(axis=dim)
    if keepdim:
        result = result.reshape(R.kept_shape(data.shape, R.normalize_dims(dim, data.ndim)))
    return result


def _array_index(index):
    """Indices may hold Tensors (integer or boolean); ops want arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _value_data(value):
    """An assigned value as raw data for a direct write."""
    return value.data if isinstance(value, Tensor) else value


def _to_array(data, dtype, device):
    """Build a backend array for ``Tensor(data, dtype, device)``."""
    if isinstance(data, Tensor):
        data = data.data
    target = None if device is None else backend.normalize_device(device)
    xp = backend.namespace_for_device(target) if target is not None else None
    if hasattr(data, "shape") and not isinstance(data, np.generic):  # an array already
        if target is not None and backend.device_of(data) != target:
            data = backend.transfer(data, target)
        if dtype is not None:
            data = data.astype(backend.to_dtype(dtype), copy=False)
        return data
    array = np.asarray(data)
    if dtype is not None:
        array = array.astype(backend.to_dtype(dtype))
    elif array.dtype.kind == "f" or array.dtype.kind == "O":
        array = array.astype(backend.get_default_dtype())
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    if target is not None and target != "cpu":
        array = xp.asarray(array)
    return array


def seed_gradient(where, output, gradient):
    """The starting gradient of a backward pass: ones for a scalar output."""
    if gradient is None:
        data = output.data
        if data.size != 1:
            keyword = "grad_outputs=" if where == "grad" else "gradient="
            raise RuntimeError(f"{where}: the output has shape {tuple(output.shape)}, not a "
                               f"scalar; pass {keyword} (a tensor of that shape: the vector "
                               "of the vector-Jacobian product), or reduce it with .sum().")
        if type(data) is np.ndarray:
            ones = np.array(1, dtype=data.dtype) if data.ndim == 0 else np.ones_like(data)
        else:
            ones = backend.xp_of((data,)).ones_like(data)
        return Tensor._make(ones, False, None)
    if not isinstance(gradient, Tensor):
        gradient = Tensor(gradient, dtype=output.dtype, device=output.device)
    if gradient.shape != output.shape:
        raise RuntimeError(f"{where}: gradient has shape {tuple(gradient.shape)} but the output "
                           f"has shape {tuple(output.shape)}; they must match.")
    return gradient


def _engine():
    """The backward engine module, imported on the first backward: importing it runs
    ``autograd/__init__.py``, whose modules (grad, gradcheck, ...) import this one."""
    global _ENGINE
    if _ENGINE is None:
        from .autograd import engine  # a cycle through the autograd package (see above)
        _ENGINE = engine
    return _ENGINE


_ENGINE = None
op_module.Tensor = Tensor  # Op.apply builds Tensors
