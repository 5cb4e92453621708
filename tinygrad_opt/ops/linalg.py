"""Matrix products."""

from ..function import Op, shape_of


class MatMul(Op):
    """z = x @ y (vectors, matrices, batches).  dz/dx = g @ yᵀ,  dz/dy = xᵀ @ g.

    A vector is a row when it is x and a column when it is y, as in NumPy;
    batch broadcasting is undone by the engine (it sums the gradient down to
    the input's shape).
    """

    dtype_rule = "same"  # as in PyTorch, float32 @ float64 is an error, not a promotion

    saves_output = False  # its backward reads the inputs' values only (see Op)

    @staticmethod
    def forward(xp, x, y):
        return x @ y

    @classmethod
    def explain(cls, inputs, attrs, error):
        a, b = (shape_of(t) for t in inputs)
        if not a or not b:
            return f"shapes {a} and {b}: both inputs need at least one dimension (use * for scalars)"
        inner_b = b[0] if len(b) == 1 else b[-2]
        if a[-1] != inner_b:
            where = "the length" if len(b) == 1 else "the second-to-last dimension"
            return (f"shapes {a} and {b} do not fit: the last dimension of the first ({a[-1]}) "
                    f"must equal {where} of the second ({inner_b}); transpose or reshape one")
        return (f"shapes {a} and {b}: the batch dimensions {a[:-2]} and {b[:-2]} do not "
                "broadcast (aligned from the right, each pair equal or 1)")

    @staticmethod
    def backward(ctx, g, out):
        x, y = ctx.inputs
        needs = ctx.needs_input_grad
        if x.ndim == 1 and y.ndim == 1:          # dot product: g is a scalar
            return (g * y if needs[0] else None), (g * x if needs[1] else None)
        if x.ndim == 1:                          # (k,) @ (..., k, n) -> (..., n)
            g2 = g.unsqueeze(-2)
            gx = (g2 @ y.transpose(-1, -2)).squeeze(-2) if needs[0] else None
            gy = x.reshape(-1, 1) @ g2 if needs[1] else None
            return gx, gy
        if y.ndim == 1:                          # (..., m, k) @ (k,) -> (..., m)
            g2 = g.unsqueeze(-1)
            gx = g2 @ y.reshape(1, -1) if needs[0] else None
            gy = (x.transpose(-1, -2) @ g2).squeeze(-1) if needs[1] else None
            return gx, gy
        gx = g @ y.transpose(-1, -2) if needs[0] else None
        gy = x.transpose(-1, -2) @ g if needs[1] else None
        return gx, gy
