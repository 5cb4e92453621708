"""Elementwise ops: z = f(x) or z = f(x, y), NumPy broadcasting.

Each class holds one op: its forward on arrays and its derivative written with
Tensor ops (so it can be differentiated again). Broadcasting is undone once,
in the engine, so no backward here sums over broadcast axes. Factors that are
piecewise constant (ReLU's mask, the sign of abs) are built as constants:
their derivative is zero, which is also the right second derivative.
"""

from ..function import Op


def _constant(array):
    from ..tensor import Tensor

    return Tensor._make(array, False, None)


class Add(Op):
    """z = x + y.  dz/dx = g,  dz/dy = g."""

    hint = "the shapes must broadcast (align trailing dimensions; each pair equal or 1)"

    @staticmethod
    def forward(xp, x, y):
        return x + y

    @staticmethod
    def backward(ctx, g, out):
        return g, g


class Sub(Op):
    """z = x - y.  dz/dx = g,  dz/dy = -g."""

    hint = Add.hint

    @staticmethod
    def forward(xp, x, y):
        return x - y

    @staticmethod
    def backward(ctx, g, out):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Op):
    """z = x * y.  dz/dx = g*y,  dz/dy = g*x."""

    hint = Add.hint

    @staticmethod
    def forward(xp, x, y):
        return x * y

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        return (g * y if needs[0] else None), (g * x if needs[1] else None)


class Div(Op):
    """z = x / y.  dz/dx = g/y,  dz/dy = -g*z/y."""

    hint = Add.hint

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


class Pow(Op):
    """z = x ** y.  dz/dx = g*y*x**(y-1),  dz/dy = g*z*log(x)."""

    hint = Add.hint

    @staticmethod
    def forward(xp, x, y):
        return x ** y

    @staticmethod
    def backward(ctx, g, out):
        from ..tensor import Tensor

        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        gx = g * y * x ** (y - 1) if needs[0] else None
        if needs[1]:
            # log x is only defined for x > 0; where x == 0 the term is 0 (0**y).
            xs = x if isinstance(x, Tensor) else _constant(out.data * 0 + x)
            gy = g * (xs ** y) * xs.log()
        else:
            gy = None
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


class Maximum(Op):
    """z = max(x, y).  The gradient goes to the larger input; ties split it evenly."""

    hint = Add.hint

    @staticmethod
    def forward(xp, x, y):
        return xp.maximum(x, y)

    @staticmethod
    def backward(ctx, g, out):
        return _split_by_winner(ctx, g, ctx.inputs[0].data > _data(ctx.inputs[1]))


class Minimum(Op):
    """z = min(x, y).  The gradient goes to the smaller input; ties split it evenly."""

    hint = Add.hint

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


class Where(Op):
    """z = x where cond else y.  dz/dx = g*cond, dz/dy = g*(1-cond); cond is a constant."""

    hint = Add.hint

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
    from ..tensor import Tensor

    return value.data if isinstance(value, Tensor) else value


def _xp(array):
    from ..backend import xp_of

    return xp_of((array,))


class Cast(Op):
    """z = x converted to ``dtype``.  dz/dx = g converted back to x's dtype."""

    @staticmethod
    def forward(xp, x, dtype=None):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g, out):
        return (g.to(dtype=ctx.inputs[0].dtype),)
