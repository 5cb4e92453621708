"""Gradient clipping and flat parameter vectors (``torch.nn.utils``' names)."""

import math

import numpy as np

from .. import backend, capture
from ..autograd.zero_grads import zero_grads  # noqa: F401 -- users import it from here
from ..functions import cat
from ..op import no_grad
from ..tensor import Tensor


def _as_list(parameters):
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


@capture.host_call  # tg.jit runs it again at every replay (it replaces .grad)
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scale the gradients so that their joint norm is at most ``max_norm``.

    The total norm is that of all gradients concatenated into one vector (``norm_type``
    p: (Σ_i ‖g_i‖_p^p)^(1/p); ``inf`` for the largest magnitude). Each gradient is
    multiplied by min(1, max_norm / (total + 1e-6)), as PyTorch does. Returns the total
    norm (before clipping) as a 0-d Tensor. The gradients are replaced by new arrays,
    never written in place; no GPU synchronisation unless ``error_if_nonfinite``.
    ``foreach`` is accepted for PyTorch's signature.
    """
    params = _as_list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return Tensor(0.0)
    xp = backend.xp_of(grads)
    if norm_type == math.inf:
        norms = [xp.abs(g).max() if g.size else xp.zeros((), g.dtype) for g in grads]
        total = xp.max(xp.stack(norms)) if len(norms) > 1 else norms[0]
    else:
        norms = [_vector_norm(xp, g, norm_type) for g in grads]
        total = _vector_norm(xp, xp.stack(norms), norm_type) if len(norms) > 1 else norms[0]
    total = xp.asarray(total)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped; pass "
                           "error_if_nonfinite=False to clip anyway (the gradients become "
                           "NaN).")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0).astype(total.dtype)
    for p in params:
        if p.grad is not None:
            g = p.grad.data
            # asarray: for a 0-d gradient NumPy returns a scalar, and .grad must stay an array
            p.grad = Tensor.constant(xp.asarray(g * coef.astype(g.dtype)))
    return Tensor.constant(total)


def _vector_norm(xp, array, p):
    if p == 2.0:
        flat = array.reshape(-1)
        return xp.sqrt(xp.dot(flat, flat)) if flat.dtype.kind == "f" else xp.sqrt(
            (flat * flat).sum())
    if p == 1.0:
        return xp.abs(array).sum()
    if p == 0.0:
        return (array != 0).sum().astype(array.dtype)
    if p == -math.inf:
        return xp.abs(array).min()
    return (xp.abs(array) ** p).sum() ** (1.0 / p)


@capture.host_call  # tg.jit runs it again at every replay (it replaces .grad)
def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value] (new arrays, not in
    place)."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.data
            xp = backend.xp_of((g,))
            p.grad = Tensor.constant(xp.asarray(xp.clip(g, -clip_value, clip_value)))  # 0-d stays an array


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D Tensor (differentiable)."""
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: got no parameters.")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place (the
    inverse of :func:`parameters_to_vector`)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, but got: {type(vec).__name__}.")
    params = _as_list(parameters)
    total = sum(int(np.prod(p.shape)) for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(f"vector_to_parameters: vec has shape {tuple(vec.shape)}, but the "
                         f"parameters hold {total} numbers; pass a 1-D tensor of that length.")
    data = vec.data
    offset = 0
    with no_grad():
        for p in params:
            n = int(np.prod(p.shape))
            chunk = data[offset:offset + n].reshape(p.shape)
            if backend.device_of(chunk) != p.device:
                chunk = backend.transfer(chunk, p.device)
            p.data[...] = chunk
            offset += n
