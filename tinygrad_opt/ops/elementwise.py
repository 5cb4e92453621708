"""Elementwise ops: z = f(x) or z = f(x, y), NumPy broadcasting.

Each class holds one op: its forward on arrays and its derivative written with
Tensor ops (so it can be differentiated again). Broadcasting is undone once,
in the engine, so no backward here sums over broadcast axes. Factors that are
piecewise constant (ReLU's mask, the sign of abs) are built as constants:
their derivative is zero, which is also the right second derivative.
"""

import numpy as np

from .. import op as op_module
from ..backend import xp_of
from ..op import Op, list_shapes


class Elementwise(Op):
    """Base of the elementwise ops: each backward is g times something of the
    output's shape, which broadcasts over a batch axis unchanged (see Op)."""

    backward_batches = True


class Broadcasting(Elementwise):
    """Base of the ops whose inputs broadcast against each other (NumPy's rules)."""

    @classmethod
    def explain(cls, inputs, attrs, error):
        if "broadcast" not in str(error):
            return None
        return (f"shapes {list_shapes(inputs)} do not broadcast: aligned from the right, each "
                "pair of sizes must be equal or one of them 1; reshape or unsqueeze an input")


class Add(Broadcasting):
    """z = x + y.  dz/dx = g,  dz/dy = g."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, y):
        return x + y

    @staticmethod
    def backward(ctx, g, out):
        return g, g


class Sub(Broadcasting):
    """z = x - y.  dz/dx = g,  dz/dy = -g."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, y):
        return x - y

    @staticmethod
    def backward(ctx, g, out):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Broadcasting):
    """z = x * y.  dz/dx = g*y,  dz/dy = g*x."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

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

    saves_output = False  # its backward reads the inputs' values only (see Op)

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
    """z = x ** y.  dz/dx = g*y*x**(y-1),  dz/dy = g*z*log(x).

    At the corners PyTorch's conventions hold: dz/dx is 0 where y = 0 (x**0 is the
    constant 1, even at x = 0, so polynomial features x**k, k = 0..d, have finite
    gradients), and dz/dy is 0 where x = 0 and y >= 0 (for y < 0 it is -inf there).
    Both zeros come through ``where``, so second derivatives follow PyTorch's too.
    """

    @staticmethod
    def forward(xp, x, y):
        return x ** y

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        exponent_is_tensor = isinstance(y, op_module.Tensor)
        gx = gy = None
        if needs[0] and not exponent_is_tensor:
            if y == 0:
                gx = op_module.Tensor.constant(_xp(g.data).zeros(x.shape, dtype=g.dtype))
            else:
                gx = g * (x * 2.0) if y == 2 else g * (x ** (y - 1) * y)
        if not exponent_is_tensor:
            return gx, None
        # 0 ** -1 and log(0) in the branches `where` discards would only warn.
        with np.errstate(divide="ignore", invalid="ignore"):
            if needs[0]:
                gx = _zero_where(y.data == 0, g * (y * x ** (y - 1)))
            if needs[1]:
                base = x if isinstance(x, op_module.Tensor) else \
                    op_module.Tensor.constant(_xp(out.data).full_like(out.data, x))
                flat = (base.data == 0) & (y.data >= 0)
                gy = g * _zero_where(flat, out * base.log())
        return gx, gy


def _zero_where(mask, value):
    """``value`` with exact zeros where ``mask`` holds, through ``where`` (so an inf or
    nan in the discarded branch cannot leak, and the result stays differentiable)."""
    # On a GPU, asking mask.any() would wait for the device: always mask there.
    if type(mask) is np.ndarray and not mask.any():
        return value
    return Where.apply(mask, 0.0, value)


class Neg(Elementwise):
    """z = -x.  dz/dx = -g."""

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x):
        return -x

    @staticmethod
    def backward(ctx, g, out):
        return (-g,)


class Exp(Elementwise):
    """z = exp(x).  dz/dx = g*z."""

    saves_inputs = False  # its backward reads the output's values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.exp(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g * out,)


class Log(Elementwise):
    """z = log(x).  dz/dx = g/x."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.log(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g / ctx.inputs[0],)


class Sqrt(Elementwise):
    """z = sqrt(x).  dz/dx = g/(2z)."""

    saves_inputs = False  # its backward reads the output's values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.sqrt(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g / (out * 2),)


class Sin(Elementwise):
    """z = sin(x).  dz/dx = g*cos(x)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.sin(x)

    @staticmethod
    def backward(ctx, g, out):
        return (g * ctx.inputs[0].cos(),)


class Cos(Elementwise):
    """z = cos(x).  dz/dx = -g*sin(x)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.cos(x)

    @staticmethod
    def backward(ctx, g, out):
        return (-g * ctx.inputs[0].sin(),)


class Tanh(Elementwise):
    """z = tanh(x).  dz/dx = g*(1 - z^2)."""

    saves_inputs = False  # its backward reads the output's values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.tanh(x)

    @staticmethod
    def backward(ctx, g, out):
        return (TanhBackward.apply(g, out),)


class TanhBackward(Elementwise):
    """Tanh's derivative as one op (PyTorch's ``tanh_backward``): d = g*(1 - z^2)
    for the gradient g and tanh's output z.  dd/dg = G*(1 - z^2),  dd/dz = -2*G*g*z.

    One node instead of three (z*z, 1 - that, g * that) in the graph of a gradient
    (create_graph=True), and one new array instead of three: a Hessian-vector
    product keeps that graph alive until its second backward has run. Its value and
    its derivatives are the three ops', bit for bit (same operations, same order).
    """

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, g, z):
        slope = xp.empty_like(z)  # an array even for a 0-d z, so the steps can be in place
        xp.multiply(z, z, out=slope)
        xp.subtract(1, slope, out=slope)
        if slope.shape == g.shape and slope.dtype == g.dtype:
            return xp.multiply(g, slope, out=slope)
        return g * slope  # g broadcasts (a batched backward) or promotes

    @staticmethod
    def backward(ctx, G, out):
        g, z = ctx.inputs
        needs = ctx.needs_input_grad
        return (TanhBackward.apply(G, z) if needs[0] else None), \
            (_times_minus_two(G, g, z) if needs[1] else None)


def _times_minus_two(G, g, z):
    """-2*G*g*z, as (G*g)*z*-2: the three ops' backward made -(G*g)*z twice and
    added them, an exact doubling, so the bits are the same. With no graph to
    record (and one dtype), computed in place on one new array instead of three."""
    if op_module.is_grad_enabled() or not G.dtype == g.dtype == z.dtype:
        return G * g * z * -2.0
    product = G.data * g.data
    product *= z.data  # (a 0-d product is a NumPy scalar: *= then makes a new one)
    product *= -2.0
    return op_module.Tensor.constant(product)


class Arctan(Elementwise):
    """z = arctan(x).  dz/dx = g/(1 + x^2)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.arctan(x)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0]
        return (g / (x * x + 1),)


class Sigmoid(Elementwise):
    """z = 1/(1 + exp(-x)).  dz/dx = g*z*(1 - z)."""

    saves_inputs = False  # its backward reads the output's values only (see Op)

    @staticmethod
    def forward(xp, x):
        # Two branches so neither exp overflows: for x < 0, z = e^x / (1 + e^x).
        # (Times -1, as NumPy has no unary minus for the bools that promote to floats.)
        e = xp.exp(xp.abs(x) * -1)
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    @staticmethod
    def backward(ctx, g, out):
        return (g * out * (1 - out),)


class Relu(Elementwise):
    """z = max(x, 0).  dz/dx = g * [z != 0]  (the mask is a constant).

    z is positive, zero or NaN, so the mask is [x > 0] except at a NaN input, where
    the gradient passes, as in PyTorch's ``threshold_backward`` (NaN <= 0 is false).
    """

    saves_inputs = False  # its backward reads the output's values only (see Op)
    # g ⊙ [out != 0] on device arrays in one kernel, or None where it does not apply:
    # registered by the module of fused kernels (cuda_kernels), which the ops never import.
    fused_backward = None

    @staticmethod
    def forward(xp, x):
        return xp.maximum(x, 0)

    @staticmethod
    def backward(ctx, g, out):
        if Relu.fused_backward is not None and type(g.data) is not np.ndarray \
                and not (g.requires_grad and op_module.is_grad_enabled()):
            fused = Relu.fused_backward(g.data, out.data)
            if fused is not None:
                return (op_module.Tensor.constant(fused),)
        return (g * op_module.Tensor.constant(out.data != 0),)


class LeakyRelu(Elementwise):
    """z = x if x > 0 else s*x.  dz/dx = g * (1 if x > 0 else s)  (s at a NaN, as in PyTorch)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x, negative_slope=0.01):
        return xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0].data
        slope = ctx.attrs["negative_slope"]
        return (g * op_module.Tensor.constant(_xp(x).where(x > 0, x.dtype.type(1), x.dtype.type(slope))),)


class Abs(Elementwise):
    """z = |x|.  dz/dx = g*sign(x)  (0 at x = 0 and at a NaN, as in PyTorch)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x):
        return xp.abs(x)

    @staticmethod
    def backward(ctx, g, out):
        x = ctx.inputs[0].data
        sign = (x > 0).astype(g.dtype)  # not xp.sign: its sign(NaN) is NaN
        sign -= x < 0
        return (g * op_module.Tensor.constant(sign),)


class Clamp(Elementwise):
    """z = min(max(x, lo), hi).  dz/dx = g * [lo <= x <= hi]."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

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
        return (g * op_module.Tensor.constant(mask.astype(x.dtype)),)


class Maximum(Broadcasting):
    """z = max(x, y).  The gradient goes to the larger input; ties split it evenly;
    where a NaN makes the comparison fail, both get it (PyTorch's rule)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x, y):
        return xp.maximum(x, y)

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs[0].data, _data(ctx.inputs[1])
        return _split_between(g, x, y, x_loses=x < y, y_loses=x > y)


class Minimum(Broadcasting):
    """z = min(x, y).  The gradient goes to the smaller input; ties split it evenly;
    where a NaN makes the comparison fail, both get it (PyTorch's rule)."""

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x, y):
        return xp.minimum(x, y)

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs[0].data, _data(ctx.inputs[1])
        return _split_between(g, x, y, x_loses=x > y, y_loses=x < y)


def _split_between(g, x, y, x_loses, y_loses):
    """Shares of g: 0 to a losing input, 1/2 to each at a tie, else 1."""
    half_at_tie = 0.5 * (x == y)
    share_x = op_module.Tensor.constant((1 - half_at_tie - x_loses).astype(g.dtype))
    share_y = op_module.Tensor.constant((1 - half_at_tie - y_loses).astype(g.dtype))
    return g * share_x, g * share_y


class Where(Broadcasting):
    """z = x where cond else y.  dz/dx = g*cond, dz/dy = g*(1-cond); cond is a constant."""

    dtype_operands = slice(1, None)  # x and y promote; the condition is a mask

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, cond, x, y):
        return xp.where(cond, x, y)

    @staticmethod
    def backward(ctx, g, out):
        cond = _data(ctx.inputs[0]).astype(bool)
        mask = op_module.Tensor.constant(cond.astype(g.dtype))
        return None, g * mask, g * (1 - mask)


def _data(value):
    """The array of a Tensor; arrays and Python numbers as they are."""
    return value.data if isinstance(value, op_module.Tensor) else value


def _xp(array):
    return xp_of((array,))


class Cast(Elementwise):
    """z = x converted to ``dtype``.  dz/dx = g converted back to x's dtype."""

    dtype_rule = None  # the dtype asked for

    saves_inputs = saves_output = False  # its backward reads shapes only (see Op)

    @staticmethod
    def forward(xp, x, dtype=None):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g, out):
        return (g.to(dtype=ctx.inputs[0].dtype),)
