"""The function forms of the ops: ``tg.exp(x)``, ``tg.cat([a, b])``, ``tg.where(c, x, y)``."""

from . import backend
from .ops import elementwise as E
from .ops import movement as M
from .tensor import Tensor, _operand


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def neg(x):
    return -_as_tensor(x)


def add(x, y):
    return _as_tensor(x) + y


def sub(x, y):
    return _as_tensor(x) - y


def mul(x, y):
    return _as_tensor(x) * y


def div(x, y):
    return _as_tensor(x) / y


def pow(x, exponent):
    return _as_tensor(x) ** exponent


def square(x):
    return _as_tensor(x).square()


def exp(x):
    return _as_tensor(x).exp()


def log(x):
    return _as_tensor(x).log()


def sqrt(x):
    return _as_tensor(x).sqrt()


def sin(x):
    return _as_tensor(x).sin()


def cos(x):
    return _as_tensor(x).cos()


def tanh(x):
    return _as_tensor(x).tanh()


def arctan(x):
    return _as_tensor(x).arctan()


atan = arctan


def sigmoid(x):
    return _as_tensor(x).sigmoid()


def relu(x):
    return _as_tensor(x).relu()


def leaky_relu(x, negative_slope=0.01):
    return _as_tensor(x).leaky_relu(negative_slope)


def abs(x):
    return _as_tensor(x).abs()


def clamp(x, min=None, max=None):
    return _as_tensor(x).clamp(min, max)


def maximum(x, y):
    return _as_tensor(x).maximum(y)


def minimum(x, y):
    return _as_tensor(x).minimum(y)


def matmul(x, y):
    return _as_tensor(x) @ y


def softmax(x, dim=-1):
    return _as_tensor(x).softmax(dim)


def log_softmax(x, dim=-1):
    return _as_tensor(x).log_softmax(dim)


def logsumexp(x, dim=None, keepdim=False):
    return _as_tensor(x).logsumexp(dim, keepdim)


def where(condition, x, y):
    """x where condition holds, else y (condition carries no gradient)."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    return E.Where.apply(condition, _operand(x), _operand(y))


def cat(tensors, dim=0):
    tensors = [_as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors.")
    return M.Cat.apply(*tensors, dim=dim)


concatenate = cat


def stack(tensors, dim=0):
    tensors = [_as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors.")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got "
                         f"{sorted(shapes)}; reshape them first.")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def sum(x, dim=None, keepdim=False):
    return _as_tensor(x).sum(dim, keepdim)


def mean(x, dim=None, keepdim=False):
    return _as_tensor(x).mean(dim, keepdim)


def max(x, dim=None, keepdim=False):
    """The largest value, or with a dim (values, indices), as in PyTorch."""
    return _as_tensor(x).max(dim, keepdim)


def min(x, dim=None, keepdim=False):
    """The smallest value, or with a dim (values, indices), as in PyTorch."""
    return _as_tensor(x).min(dim, keepdim)


def amax(x, dim=None, keepdim=False):
    return _as_tensor(x).amax(dim, keepdim)


def amin(x, dim=None, keepdim=False):
    return _as_tensor(x).amin(dim, keepdim)


def var(x, dim=None, unbiased=True, keepdim=False):
    return _as_tensor(x).var(dim, unbiased, keepdim)


def std(x, dim=None, unbiased=True, keepdim=False):
    return _as_tensor(x).std(dim, unbiased, keepdim)


def argmax(x, dim=None, keepdim=False):
    return _as_tensor(x).argmax(dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _as_tensor(x).argmin(dim, keepdim)


def reshape(x, *shape):
    return _as_tensor(x).reshape(*shape)


def transpose(x, dim0, dim1):
    return _as_tensor(x).transpose(dim0, dim1)


def permute(x, *dims):
    return _as_tensor(x).permute(*dims)


def squeeze(x, dim=None):
    return _as_tensor(x).squeeze(dim)


def unsqueeze(x, dim):
    return _as_tensor(x).unsqueeze(dim)


def flatten(x, start_dim=0, end_dim=-1):
    return _as_tensor(x).flatten(start_dim, end_dim)


def result_type(tensor1, tensor2):
    """The dtype an op on ``tensor1`` and ``tensor2`` (Tensors or Python numbers) gives,
    as ``torch.result_type``: see ``backend.result_type`` for the rule."""
    return backend.result_type(tensor1, tensor2)


def promote_types(type1, type2):
    """The smallest dtype both convert to, as ``torch.promote_types``: a higher category
    (bool < integer < floating) wins whole; float16 with int64 is float16."""
    return backend.promote_types(backend.to_dtype(type1), backend.to_dtype(type2))
