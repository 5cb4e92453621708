"""The gradient-check lab: how the finite-difference step decides what a check can see.

The central difference (f(x + h eᵢ) - f(x - h eᵢ)) / 2h has two errors:
truncation, about h²·|f'''|/6, which shrinks with h, and round-off, about
ε·|f|/h (ε the machine epsilon of the dtype), which grows as h shrinks. Their sum
is smallest near h ≈ ε^(1/3) -- about 6e-6 in float64 and 5e-3 in float32 -- and
plotted against h on log axes it makes a "V". :func:`eps_sweep` measures that V
for a scalar function: for each dtype and each h, the largest relative error
between backward's gradient and the central difference,

    max_i |g_i - d_i| / max(|g_i|, |d_i|, tiny).

This is why ``tg.autograd.gradcheck`` insists on float64 and uses h = 1e-6.
"""

import numpy as np

from ..autograd import grad
from ..autograd.numerical import numerical_grad
from ..op import enable_grad
from ..tensor import Tensor

__all__ = ["EPS_VALUES", "best_eps", "eps_sweep"]

EPS_VALUES = tuple(10.0 ** -k for k in range(1, 13))


def _grad_and_numeric(func, values, dtype, eps, scheme):
    xs = [Tensor(np.asarray(v, dtype=np.float64).astype(dtype), requires_grad=True)
          for v in values]
    with enable_grad():
        out = func(*xs)
        if out.numel() != 1:
            raise ValueError(f"eps_sweep: the function must return a scalar, got shape "
                             f"{tuple(out.shape)}; sum it or pick one element.")
        analytic = grad([out.reshape(())], xs, allow_unused=True)
    a = np.concatenate([np.zeros(x.numel()) if g is None else
                        np.asarray(g.numpy(), dtype=np.float64).ravel()
                        for g, x in zip(analytic, xs)])
    numeric, _ = numerical_grad(func, xs, eps=eps, scheme=scheme)
    return a, np.concatenate([np.asarray(g.numpy(), dtype=np.float64).ravel() for g in numeric])


def eps_sweep(func, values, eps_values=EPS_VALUES, dtypes=("float64", "float32"),
              scheme="central"):
    """{dtype: array of the max relative error for each h in ``eps_values``}.

    ``func`` takes Tensors (one per entry of ``values``, NumPy arrays or lists) and
    returns a scalar Tensor. Each dtype runs the function, its backward and the
    differences (``tg.autograd.numerical_grad``, ``scheme`` "central" or the slide's
    "forward", whose V bottoms out near h ≈ √ε instead) in that dtype.
    """
    out = {}
    for dtype in dtypes:
        errors = []
        for eps in eps_values:
            a, d = _grad_and_numeric(func, values, np.dtype(dtype), eps, scheme)
            with np.errstate(all="ignore"):
                scale = np.maximum(np.maximum(np.abs(a), np.abs(d)), 1e-30)
                err = np.abs(a - d) / scale
            errors.append(float(np.nanmax(err)) if np.isfinite(err).any() else np.inf)
        out[dtype] = np.asarray(errors)
    return out


def best_eps(eps_values, errors):
    """The h with the smallest error (the bottom of the V)."""
    errors = np.asarray(errors, dtype=np.float64)
    return float(np.asarray(eps_values)[int(np.nanargmin(errors))])
