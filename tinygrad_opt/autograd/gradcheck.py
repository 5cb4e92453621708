"""Check analytic gradients against central finite differences, in float64.

``gradcheck(f, inputs)`` compares the Jacobian that backward computes with

    (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)

column by column for small problems (``numerical_jacobian``, the central scheme of
``tg.autograd.numerical_grad``), and, for large ones, compares random
projections uᵀ J v (one backward and two extra forwards per probe), which
catches any wrong entry with probability 1. ``gradgradcheck`` runs the same
check on the function (x, u) ↦ Jᵀu built with create_graph=True: it verifies
the second derivatives.
"""

import numpy as np

from ..backend import transfer
from ..op import enable_grad, no_grad
from ..tensor import Tensor
from .grad import grad
from .numerical import numerical_jacobian

FULL_JACOBIAN_LIMIT = 4096  # inputs x outputs entries up to which J is built whole


class GradcheckError(RuntimeError):
    pass


def _outputs(func, xs):
    out = func(*xs)
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _flat_output(func, xs):
    with no_grad():
        return np.concatenate([np.asarray(o.numpy(), dtype=np.float64).reshape(-1)
                               for o in _outputs(func, xs)])


def _check_inputs(inputs):
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {t.dtype}; finite differences need "
                            "float64 inputs (create them with dtype='float64').")
    return inputs


class _Backward:
    """One forward of ``func`` on fresh leaves; ``vjp(u)`` is then Jᵀu for every
    differentiable input, as flat float64 arrays (one backward per call)."""

    def __init__(self, func, inputs):
        with enable_grad():
            xs = [t.detach().requires_grad_() if isinstance(t, Tensor) and t.requires_grad
                  else t for t in inputs]
            self.outs = _outputs(func, xs)
        self.wrt = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]

    def vjp(self, u):
        seeds, start = [], 0
        for o in self.outs:
            seeds.append(Tensor(u[start:start + o.numel()].reshape(o.shape), dtype=o.dtype,
                                device=o.device))
            start += o.numel()
        live = [(o, s) for o, s in zip(self.outs, seeds) if o.requires_grad]
        grads = grad([o for o, _ in live], self.wrt, [s for _, s in live], retain_graph=True,
                     allow_unused=True) if live else (None,) * len(self.wrt)
        return [np.zeros(x.numel()) if g is None else np.asarray(g.numpy(), np.float64).ravel()
                for g, x in zip(grads, self.wrt)]


def _index(flat, shape):
    """A flat position as a readable index: (1, 2), or () for a scalar."""
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _report(name, where, analytic, numeric, atol, rtol):
    diff = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    worst = int(np.argmax(diff))
    if diff[worst] <= 0:
        return None
    return (f"{name}: mismatch at {where(worst)}: analytic {analytic[worst]:.10g}, "
            f"numeric {numeric[worst]:.10g} (difference {abs(analytic[worst] - numeric[worst]):.3g}"
            f" > atol {atol:g} + rtol {rtol:g} * |numeric|).")


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              n_probes=8, seed=0, name="gradcheck"):
    """True if backward agrees with central differences; otherwise raises a
    GradcheckError naming the worst element (or returns False with
    ``raise_exception=False``)."""
    inputs = _check_inputs(inputs)
    diff_ids = [k for k, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not diff_ids:
        raise ValueError(f"{name}: none of the {len(inputs)} inputs requires grad, so there "
                         "is no gradient to check; create at least one with "
                         "requires_grad=True.")
    n_out = _flat_output(func, inputs).size
    n_in = sum(inputs[k].numel() for k in diff_ids)
    if n_out * n_in <= FULL_JACOBIAN_LIMIT:
        message = _full_check(func, inputs, diff_ids, n_out, eps, atol, rtol, name)
    else:
        message = _projected_check(func, inputs, diff_ids, n_out, eps, atol, rtol, n_probes,
                                   seed, name)
    if message is None:
        return True
    if raise_exception:
        raise GradcheckError(message)
    return False


def _full_check(func, inputs, diff_ids, n_out, eps, atol, rtol, name):
    backward = _Backward(func, inputs)
    analytic_rows = [backward.vjp(row) for row in np.eye(n_out)]  # row i: d out_i / d inputs
    columns, _ = numerical_jacobian(func, inputs, eps, scheme="central")
    for pos, k in enumerate(diff_ids):
        size = inputs[k].numel()
        numeric = columns[k]
        analytic = np.array([row[pos] for row in analytic_rows]).reshape(n_out, size)
        shape = inputs[k].shape
        message = _report(
            name, lambda w, k=k, size=size, shape=shape: (
                f"output element {w // size} (flattened) and input {k} (shape {tuple(shape)}) "
                f"at index {_index(w % size, shape)}"),
            analytic.reshape(-1), numeric.reshape(-1), atol, rtol)
        if message:
            return message
    return None


def _projected_check(func, inputs, diff_ids, n_out, eps, atol, rtol, n_probes, seed, name):
    rng = np.random.default_rng(seed)
    backward = _Backward(func, inputs)
    analytic, numeric = np.empty(n_probes), np.empty(n_probes)
    for p in range(n_probes):
        u = rng.standard_normal(n_out)
        vs = [rng.standard_normal(inputs[k].numel()) for k in diff_ids]
        jtu = backward.vjp(u)
        analytic[p] = sum(float(a @ v) for a, v in zip(jtu, vs))
        shifted = []
        for sign in (1, -1):
            moved = list(inputs)
            for k, v in zip(diff_ids, vs):
                data = inputs[k].data + transfer(sign * eps * v.reshape(inputs[k].shape),
                                                 inputs[k].device)
                moved[k] = Tensor.constant(data)
            shifted.append(float(u @ _flat_output(func, moved)))
        numeric[p] = (shifted[0] - shifted[1]) / (2 * eps)
    return _report(name, lambda w: f"random projection {w} (uᵀJv)", analytic, numeric,
                   atol, rtol)


def gradgradcheck(func, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, n_probes=8, seed=0):
    """gradcheck of (inputs, u) ↦ Jᵀu, where Jᵀu comes from a create_graph
    backward: checks every second derivative of ``func``."""
    inputs = _check_inputs(inputs)
    rng = np.random.default_rng(seed + 1)
    with no_grad():
        outs = _outputs(func, inputs)
    if grad_outputs is None:
        grad_outputs = tuple(Tensor(rng.standard_normal(o.shape), dtype="float64",
                                    device=o.device, requires_grad=True) for o in outs)
    else:
        grad_outputs = (grad_outputs,) if isinstance(grad_outputs, Tensor) \
            else tuple(grad_outputs)
    n_in = len(inputs)
    diff_ids = [k for k, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]

    def first_derivative(*args):
        # Finite differences call this with constant inputs under no_grad: the
        # inner backward still needs a graph, so make them leaves again.
        xs = [x if k not in diff_ids or x.requires_grad else x.detach().requires_grad_()
              for k, x in enumerate(args[:n_in])]
        us = args[n_in:]
        with enable_grad():
            outs = _outputs(func, xs)
            wrt = [xs[k] for k in diff_ids]
            live = [(o, u) for o, u in zip(outs, us) if o.requires_grad]
            grads = grad([o for o, _ in live], wrt, [u for _, u in live], create_graph=True,
                         allow_unused=True)
        return tuple(g if g is not None else w * 0 for g, w in zip(grads, wrt))

    return gradcheck(first_derivative, inputs + tuple(grad_outputs), eps, atol, rtol,
                     raise_exception, n_probes, seed, name="gradgradcheck")
