"""Array helpers for the ops' batched backward rules (``Op.batched_backward``).

In a batched backward (``autograd/batched.py``) every gradient carries a
leading batch axis B: one cotangent per row. These helpers do, per row, what
the engine's broadcasting rules do for one gradient.
"""

from ..backend import xp_of


def batched_sum_to(a, shape):
    """Sum a (B, ...) gradient down to (B,) + shape (undo broadcasting per sample)."""
    target = (a.shape[0],) + tuple(shape)
    if a.shape == target:
        return a
    lead = a.ndim - len(target)
    if lead < 0:
        a = a.reshape(a.shape[:1] + (1,) * (-lead) + a.shape[1:])
        lead = 0
    axes = tuple(range(1, 1 + lead)) + tuple(
        1 + lead + i for i, n in enumerate(shape) if n == 1 and a.shape[1 + lead + i] != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    xp = xp_of((a,))
    if a.shape[1 + lead:] != tuple(shape):
        a = xp.broadcast_to(a, a.shape[:1 + lead] + tuple(shape))
    return xp.ascontiguousarray(a.reshape(target))


def broadcast_copy(a, shape):
    """``a`` broadcast to ``shape``, in new memory (a gradient may be written to)."""
    out = xp_of((a,)).empty(shape, dtype=a.dtype)
    out[...] = a
    return out


def batched_index(index):
    """``index`` with a leading full slice for the batch axis, or None when the
    batch axis would move (advanced indices separated by a slice)."""
    parts = index if isinstance(index, tuple) else (index,)
    advanced = [i for i, p in enumerate(parts)
                if not (p is None or p is Ellipsis or isinstance(p, (int, slice)))]
    if advanced and advanced[-1] - advanced[0] + 1 != len(advanced):
        return None
    if any(isinstance(p, int) for p in parts) and advanced:
        return None  # an int among advanced indices also counts as advanced
    return (slice(None),) + parts
