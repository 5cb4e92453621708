"""Elementwise ops: z = f(x) or z = f(x, y), NumPy broadcasting.

Each class holds one op: its forward on arrays and its derivative written with
Tensor ops (so it can be differentiated again). Broadcasting is undone once,
in the engine, so no backward here sums over broadcast axes. Factors that are
piecewise constant (ReLU's mask, the sign of abs) are built as constants:
their derivative is zero, which is also the right second derivative.
"""

import numpy as np

from .. import cuda_kernels, function
from ..backend import xp_of
from ..function import Op, list_shapes


def _constant(array):
    """A Tensor that carries no gradient (masks, signs: piecewise constants)."""
    return function.Tensor._make(array, False, None)


class Broadcasting(Op):
    """Base of the ops whose inputs broadcast against each other (NumPy's rules)."""

    @classmethod
    def explain(cls, inputs, attrs, error):
        if "broadcast" not in str(error):
            return None
        return (f"shapes {list_shapes(inputs)} do not broadcast: aligned from the right, each "
                "pair of sizes must be equal or one of them 1; reshape or unsqueeze an input")


class Add(Broadcasting):
    """z = x + y.  dz/dx = g,  dz/dy = g."""

    @staticmethod
    def forward(xp, x, y):
        return x + y

    @staticmethod
    def backward(ctx, g, out):
        return g, g


class Sub(Broadcasting):
    """z = x - y.  dz/dx = g,  dz/dy = -g."""

    @staticmethod
    def forward(xp, x, y):
        return x - y

    @staticmethod
    def backward(ctx, g, out):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Broadcasting):
    """z = x * y.  dz/dx = g*y,  dz/dy = g*x."""

    @staticmethod
    def forward(xp, x, y):
        return x * y

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        return (g * y if needs[0] else None), (g * x if needs[1] else None)


class Div(Broadcasting):
    """z = x / y.  dz/dx = g/y,  dz/dy = -g*z/y."""

    @staticmethod
    def forward(xp, x, y):
        return x / y

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        gx = g / y if needs[0] else None
        # -g*x/y^2 written with the inputs (not `out`) so that a second
        # derivative with respect to x sees x.
        gy = -g * x / (y * y) if needs[1] else None
        return gx, gy


class Pow(Broadcasting):
    """z = x ** y.  dz/dx = g*y*x**(y-1),  dz/dy = g*z*log(x)."""

    @staticmethod
    def forward(xp, x, y):
        return x ** y

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        gx = gy = None
        if needs[0]:
            if isinstance(y, (int, float)):
                gx = g * (x * 2.0) if y == 2 else g * (x ** (y - 1) * y)
            else:
                gx = g * (x ** (y - 1) * y)
        if needs[1]:
            xs = x if isinstance(x, function.Tensor) else _constant(out.data * 0 + x)
            zero = xs.data == 0
            # On a GPU, asking zero.any() would wait for the device: always mask there.
            if type(zero) is not np.ndarray or zero.any():
                # log 0 = -inf, but 0**y * log 0 -> 0 (PyTorch's convention): take log of
                # 1 there, through `where` so that the result stays differentiable.
                xs = Where.apply(zero, 1.0, xs)
            gy = g * (xs ** y) * xs.log()
        return gx, gy


class Neg(Op):
    """z = -x.  dz/dx = -g."""

    @staticmethod
    def forward(xp, x):
        return -x

    @staticmethod
    def backward(ctx, g, out):
        return (-g,)


class Exp(Op):
    """z = exp(x).  dz/dx = g*z."""

    @staticmethod
    def forward(xp, x):
        return xp.exp(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g * out,)


class Log(Op):
    """z = log(x).  dz/dx = g/x."""

    @staticmethod
    def forward(xp, x):
        return xp.log(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g / ctx.inputs[0],)


class Sqrt(Op):
    """z = sqrt(x).  dz/dx = g/(2z)."""

    @staticmethod
    def forward(xp, x):
        return xp.sqrt(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g / (out * 2),)


class Sin(Op):
    """z = sin(x).  dz/dx = g*cos(x)."""

    @staticmethod
    def forward(xp, x):
        return xp.sin(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g * ctx.inputs[0].cos(),)


class Cos(Op):
    """z = cos(x).  dz/dx = -g*sin(x)."""

    @staticmethod
    def forward(xp, x):
        return xp.cos(x)

    @staticmethod
    def backward(ctx, g, out):
        return (-g * ctx.inputs[0].sin(),)


class Tanh(Op):
    """z = tanh(x).  dz/dx = g*(1 - z^2)."""

    @staticmethod
    def forward(xp, x):
        return xp.tanh(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g * (1 - out * out),)


class Arctan(Op):
    """z = arctan(x).  dz/dx = g/(1 + x^2)."""

    @staticmethod
    def forward(xp, x):
        return xp.arctan(x)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0]
        return (g / (x * x + 1),)


class Sigmoid(Op):
    """z = 1/(1 + exp(-x)).  dz/dx = g*z*(1 - z)."""

    @staticmethod
    def forward(xp, x):
        # Two branches so neither exp overflows: for x < 0, z = e^x / (1 + e^x).
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g, out):
        return (g * out * (1 - out),)


class Relu(Op):
    """z = max(x, 0).  dz/dx = g * [x > 0]  (the mask is a constant)."""

    @staticmethod
    def forward(xp, x):
        return xp.maximum(x, 0)

    @staticmethod
    def backward(ctx, g, out):
        if type(g.data) is not np.ndarray and not (g.requires_grad and function._grad_enabled):
            fused = cuda_kernels.relu_backward(g.data, out.data)  # one GPU kernel, or None
            if fused is not None:
                return (_constant(fused),)
        return (g * _constant(out.data > 0),)


class LeakyRelu(Op):
    """z = x if x > 0 else s*x.  dz/dx = g * (1 if x > 0 else s)."""

    @staticmethod
    def forward(xp, x, negative_slope=0.01):
        return xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0].data
        slope = ctx.attrs["negative_slope"]
        return (g * _constant((x > 0) + (x <= 0) * x.dtype.type(slope)),)


class Abs(Op):
    """z = |x|.  dz/dx = g*sign(x)  (0 at x = 0, as in PyTorch)."""

    @staticmethod
    def forward(xp, x):
        return xp.abs(x)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0].data
        return (g * _constant(_xp(x).sign(x)),)


class Clamp(Op):
    """z = min(max(x, lo), hi).  dz/dx = g * [lo <= x <= hi]."""

    @staticmethod
    def forward(xp, x, min=None, max=None):
        return xp.clip(x, min, max)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0].data
        lo, hi = ctx.attrs.get("min"), ctx.attrs.get("max")
        mask = _xp(x).ones(x.shape, dtype=bool)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x <= hi
        return (g * _constant(mask.astype(x.dtype)),)


class Maximum(Broadcasting):
    """z = max(x, y).  The gradient goes to the larger input; ties split it evenly."""

    @staticmethod
    def forward(xp, x, y):
        return xp.maximum(x, y)

    @staticmethod
    def backward(ctx, g, out):
        return _split_by_winner(ctx, g, ctx.inputs[0].data > _data(ctx.inputs[1]))


class Minimum(Broadcasting):
    """z = min(x, y).  The gradient goes to the smaller input; ties split it evenly."""

    @staticmethod
    def forward(xp, x, y):
        return xp.minimum(x, y)

    @staticmethod
    def backward(ctx, g, out):
        return _split_by_winner(ctx, g, ctx.inputs[0].data < _data(ctx.inputs[1]))


def _split_by_winner(ctx, g, x_wins):
    x, y = ctx.inputs
    xd, yd = x.data, _data(y)
    tie = (xd == yd)
    share_x = _constant((x_wins + 0.5 * tie).astype(g.dtype))
    share_y = _constant(((~x_wins & ~tie) + 0.5 * tie).astype(g.dtype))
    return g * share_x, g * share_y


class Where(Broadcasting):
    """z = x where cond else y.  dz/dx = g*cond, dz/dy = g*(1-cond); cond is a constant."""

    @staticmethod
    def forward(xp, cond, x, y):
        return xp.where(cond, x, y)

    @staticmethod
    def backward(ctx, g, out):
        cond = _data(ctx.inputs[0]).astype(bool)
        mask = _constant(cond.astype(g.dtype))
        return None, g * mask, g * (1 - mask)


def _data(value):
    """The array of a Tensor; arrays and Python numbers as they are."""
    return value.data if isinstance(value, function.Tensor) else value


def _xp(array):
    return xp_of((array,))


class Cast(Op):
    """z = x converted to ``dtype``.  dz/dx = g converted back to x's dtype."""

    exact_dtype = True

    @staticmethod
    def forward(xp, x, dtype=None):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g, out):
        return (g.to(dtype=ctx.inputs[0].dtype),)
