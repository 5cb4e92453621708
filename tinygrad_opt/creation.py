"""Making tensors: from data, filled, ranges, random (seeded by ``manual_seed``).

Random numbers come from one NumPy generator on the host, whatever the device,
so ``manual_seed(0)`` gives the same initial weights on the CPU and the GPU.
"""

import threading

import numpy as np

from . import backend, capture
from .tensor import Tensor

_generator = np.random.default_rng(0)
# Threads may draw at the same time (a Dask worker runs trials on threads): NumPy's
# Generator locks its state during each draw, and this lock keeps a draw here
# from straddling a manual_seed in another thread.
_lock = threading.Lock()


def manual_seed(seed):
    """Seed every random constructor (rand, randn, init, Dropout, shuffles)."""
    global _generator
    with _lock:
        _generator = np.random.default_rng(seed)
    return _generator


def _refuse_in_capture():
    capture.refuse("a random draw (tg.rand, tg.randn, dropout in training mode)",
                   "a replay would repeat the first call's numbers; draw outside the function "
                   "and pass the values in as a tensor, or call model.eval() to turn dropout off.")


def _draw(method, *args, **kwargs):
    """One draw from the shared generator, safe while other threads draw or seed."""
    _refuse_in_capture()
    with _lock:
        return getattr(_generator, method)(*args, **kwargs)


def generator():
    """The shared NumPy random generator."""
    _refuse_in_capture()
    return _generator


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor that owns a copy of ``data``, as ``torch.tensor`` does: an
    optimizer updating it in place never changes the caller's array.
    (``Tensor(array)`` shares the array's memory, like ``torch.as_tensor``.)

    The dtype, unless given: an array's or a NumPy scalar's own (``np.float64(1.0)``
    gives float64, as in PyTorch); Python floats the default dtype, ints int64."""
    if isinstance(data, np.generic):
        data = np.asarray(data)  # a 0-d array of its own dtype, in new memory
    elif hasattr(data, "copy") and hasattr(data, "shape"):
        data = data.copy()
    elif isinstance(data, Tensor):
        data = data.data.copy()
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _make(array, dtype, device, requires_grad):
    dtype = backend.to_dtype(dtype) if dtype is not None else (
        backend.get_default_dtype() if array.dtype.kind == "f" else array.dtype)
    return Tensor(array.astype(dtype, copy=False), device=device, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape(size)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape(size)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    size = (size,) if isinstance(size, int) else tuple(size)
    kind_default = None if isinstance(fill_value, float) or dtype is not None else (
        np.int64 if isinstance(fill_value, int) and not isinstance(fill_value, bool) else None)
    return _make(np.full(size, fill_value, dtype=kind_default), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(np.eye(n, m), dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Like torch.arange: integers give int64, any float gives the default float dtype."""
    if end is None:
        start, end = 0, start
    array = np.arange(start, end, step)
    if dtype is None and array.dtype.kind in "iu":
        array = array.astype(np.int64)
    return _make(array, dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _make(np.linspace(start, end, steps), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    return _make(_draw("random", _shape(size)), dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    return _make(_draw("standard_normal", _shape(size)), dtype, device, requires_grad)


def randint(low, high, size, dtype=None, device=None):
    return _make(_draw("integers", low, high, size=size, dtype=np.int64), dtype, device, False)


def _like(make, t, *args, dtype, device, requires_grad):
    """``make(t.shape, *args)`` in ``t``'s dtype and on its device unless others are given:
    the rule of every ``*_like`` constructor."""
    return make(t.shape, *args, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(zeros, t, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(ones, t, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(full, t, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return _like(rand, t, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return _like(randn, t, dtype=dtype, device=device, requires_grad=requires_grad)
