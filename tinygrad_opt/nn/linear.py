"""``Linear`` (y = x Wᵀ + b) and ``Identity``."""

import math

import numpy as np

from .. import backend
from ..tensor import Tensor
from . import fused, init
from .module import Module, Parameter


class Identity(Module):
    """Returns its input unchanged (any constructor arguments are ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x Wᵀ + b, PyTorch's ``torch.nn.Linear``.

    Args:
        in_features: size of each input sample (the last dimension of x).
        out_features: size of each output sample.
        bias: learn an additive bias b (default True).
        device, dtype: where and how the parameters live (default 'cpu' and the
            default float dtype, float32 unless ``tg.set_default_dtype`` changed it).

    Attributes:
        weight: Parameter of shape (out_features, in_features), drawn from
            U(-1/√in_features, 1/√in_features) (``kaiming_uniform_`` with a = √5).
        bias: Parameter of shape (out_features,), from the same distribution, or None.

    Shapes: input (..., in_features) -> output (..., out_features).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"Linear: {name} must be a non-negative integer, got {n!r}.")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dtype = backend.to_dtype(dtype)
        xp = backend.namespace_for_device(device)
        self.weight = Parameter(xp.empty((self.out_features, self.in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(xp.empty((self.out_features,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: kaiming_uniform_(W, a=√5), that is W, b ~ U(-1/√in, 1/√in)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        params = self._parameters  # (not self.weight: skips the __getattr__ detour)
        if not isinstance(input, Tensor):
            weight = params["weight"]
            input = Tensor(input, dtype=weight.dtype, device=weight.device)
        return fused.Linear.apply(input, params["weight"], params["bias"])

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
