"""The numerical gradient, as the lecture computes it: one finite difference per dimension.

    df/dxⱼ ≈ (f(x + h eⱼ) - f(x)) / h              scheme="forward": n + 1 evaluations
    df/dxⱼ ≈ (f(x + h eⱼ) - f(x - h eⱼ)) / 2h      scheme="central": 2n evaluations

The forward difference is the slide's ("Strategy #2: follow the slope", h =
1e-4): its error is about h·|f''|/2 plus round-off ε·|f|/h. The central
difference cancels the first-order term: error about h²·|f'''|/6 plus round-off.
Either way the cost grows with the number of parameters -- one or two full
forward passes per parameter -- while backprop gets the exact gradient for
about the cost of one: "slow and approximate" against "exact and fast".

The difference is divided by h itself, as the slide's code does. The step
actually taken is (xⱼ + h) - xⱼ after rounding to the input's dtype: in
float64 the two agree to about 1e-12 relative for inputs of order 1, in
float32 1e-4 added to 300.0 moves it by 1.2207e-4 -- one more reason finite
differences want float64. ``gradcheck`` checks backward with
:func:`numerical_jacobian` (central differences, h = 1e-6).
"""

from collections import namedtuple

import numpy as np

from ..op import no_grad
from ..tensor import Tensor

__all__ = ["SCHEMES", "NumericalGrad", "numerical_grad", "numerical_jacobian"]

SCHEMES = ("forward", "central")

NumericalGrad = namedtuple("NumericalGrad", ["grads", "evaluations"])
NumericalGrad.__doc__ = """The result of :func:`numerical_grad`: ``grads``, one Tensor per
input (None for an input that does not require grad), and ``evaluations``, how many
times the function ran."""


def _as_tuple(inputs):
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _flat(outputs):
    """The function's output(s) as one flat float64 host array."""
    outs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    return np.concatenate([np.asarray(o.numpy(), dtype=np.float64).reshape(-1) for o in outs])


def numerical_jacobian(func, inputs, eps=1e-4, scheme="central"):
    """Finite-difference Jacobian of ``func`` (Tensors in, a Tensor or tuple out).

    Returns ``(columns, evaluations)``: ``columns[k]`` is an (outputs × elements)
    float64 array for each input that requires grad (None for the others), and
    ``evaluations`` counts the calls of ``func`` (forward: n + 1, central: 2n).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"numerical_jacobian: scheme must be 'forward' or 'central', got "
                         f"{scheme!r}.")
    if not eps > 0:
        raise ValueError(f"numerical_jacobian: eps={eps} must be positive (the step h of the "
                         "difference).")
    inputs = _as_tuple(inputs)
    args = [t.detach() if isinstance(t, Tensor) else t for t in inputs]
    evaluations = 0

    def evaluate():
        nonlocal evaluations
        evaluations += 1
        with no_grad():
            return _flat(func(*args))

    base = evaluate() if scheme == "forward" else None
    columns = []
    for k, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            columns.append(None)
            continue
        original = args[k]
        x = original.data.reshape(-1)
        h = x.dtype.type(eps)
        cols = []
        for j in range(x.size):
            moved_up = original.data.copy()
            moved_up.reshape(-1)[j] = x[j] + h
            args[k] = Tensor.constant(moved_up)
            up = evaluate()
            if scheme == "forward":
                down = base
            else:
                moved_down = original.data.copy()
                moved_down.reshape(-1)[j] = x[j] - h
                args[k] = Tensor.constant(moved_down)
                down = evaluate()
            cols.append((up - down) / (eps if scheme == "forward" else 2 * eps))
        args[k] = original
        empty = np.zeros((1 if base is None else base.size, 0))  # an input with no elements
        columns.append(np.stack(cols, axis=1) if cols else empty)
    return columns, evaluations


def numerical_grad(fn, inputs, eps=1e-4, scheme="forward"):
    """The gradient of a scalar ``fn(*inputs)`` by finite differences (see the module doc).

    Args:
        fn: Tensors -> a scalar Tensor (the loss). It runs under ``no_grad``.
        inputs: a Tensor or a sequence; those with ``requires_grad`` are differentiated.
        eps: the step h (the slide's 1e-4).
        scheme: ``"forward"`` (the slide's; n + 1 evaluations) or ``"central"`` (2n).

    Returns:
        :class:`NumericalGrad` ``(grads, evaluations)``: one Tensor per input, shaped
        and typed like it (None where the input does not require grad), and the number
        of times ``fn`` ran.

    Example::

        W = tg.randn(10, 65, dtype="float64", requires_grad=True)
        grads, n = tg.autograd.numerical_grad(lambda W: loss(W), W)   # n = 651
    """
    inputs = _as_tuple(inputs)
    if not any(isinstance(t, Tensor) and t.requires_grad for t in inputs):
        raise ValueError("numerical_grad: none of the inputs requires grad, so there is "
                         "nothing to differentiate; create the parameters with "
                         "requires_grad=True.")
    columns, evaluations = numerical_jacobian(fn, inputs, eps, scheme)
    grads = []
    for t, cols in zip(inputs, columns):
        if cols is None:
            grads.append(None)
            continue
        if cols.shape[0] != 1:
            raise ValueError(f"numerical_grad: fn must return a scalar (the loss), got "
                             f"{cols.shape[0]} values; sum them or use numerical_jacobian.")
        grads.append(Tensor(cols.reshape(t.shape).astype(t.dtype), device=t.device))
    return NumericalGrad(tuple(grads), evaluations)
