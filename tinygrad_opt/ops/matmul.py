"""Matrix products."""

from ..backend import xp_of
from ..op import Op, shape_of


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
        # Each gradient is laid out as its input is: for a transposed view (x @ W.T),
        # the transposed product (same values), whose transpose back in Permute's
        # backward is then contiguous -- so the sums of gradients that follow never
        # mix layouts (adding a matrix to a transposed one is many times slower).
        gx = gy = None
        if needs[0]:
            gx = (y @ g.transpose(-1, -2)).transpose(-1, -2) if _is_transposed(x) \
                else g @ y.transpose(-1, -2)
        if needs[1]:
            gy = (g.transpose(-1, -2) @ x).transpose(-1, -2) if _is_transposed(y) \
                else x.transpose(-1, -2) @ g
        return gx, gy

    @staticmethod
    def batched_backward(node, G, out):
        """The same rule for B cotangents G (see Op). Where each sample's
        product would be matrix-vector (g a row for dz/dx, a column for dz/dy),
        the batch is stacked into one matrix product (_stacked_rows_times; dz/dy
        as (gᵀ @ x)ᵀ); otherwise each sample's is a proper matrix product."""
        x, y = node.inputs
        needs = node.needs_input_grad
        xd, yd = x.data, y.data
        x2 = xd[None, :] if xd.ndim == 1 else xd              # (..., m, k)
        y2 = yd[:, None] if yd.ndim == 1 else yd              # (..., k, n)
        G2 = G[..., None] if yd.ndim == 1 else G
        G2 = G2[..., None, :] if xd.ndim == 1 else G2         # (B, ..., m, n)
        gx = gy = None
        if needs[0] and G2.shape[-2] == 1:                    # g a row: (B, ..., k), then (1, k)
            gx = _stacked_rows_times(G2[..., 0, :], y2.swapaxes(-1, -2))
            gx = gx if xd.ndim == 1 else gx[..., None, :]
        elif needs[0]:                                        # (x is a matrix here)
            gx = _product(G2, y2.swapaxes(-1, -2))
        if needs[1] and G2.shape[-1] == 1:                    # g a column: (B, ..., k), then (k, 1)
            gy = _stacked_rows_times(G2[..., 0], x2)
            gy = gy if yd.ndim == 1 else gy[..., None]
        elif needs[1]:                                        # (y is a matrix here)
            gy = _product(x2.swapaxes(-1, -2), G2)
        return gx, gy


def _is_transposed(t):
    """True for a matrix whose data is a transposed view (column-major), as W.T is."""
    flags = t.data.flags
    return t.ndim == 2 and flags.f_contiguous and not flags.c_contiguous


def _stacked_rows_times(rows, w):
    """rows @ w for a batch of row vectors (B, ..., p) and one w (..., p, q):
    the B rows stacked into ONE matrix product (B, p) @ (p, q) per matrix of w.
    A stacked matmul of (B, ..., 1, p) would make B vector-matrix products, one
    BLAS call each -- what made the Hessian of a matrix-vector product slow."""
    xp = xp_of((rows,))
    return xp.moveaxis(xp.moveaxis(rows, 0, -2) @ w, -2, 0)


def _product(a, b):
    """a @ b, where an inner dimension of 1 makes it an outer product: a
    broadcast multiply then does it without one tiny BLAS call per matrix."""
    return a * b if a.shape[-1] == 1 else a @ b
