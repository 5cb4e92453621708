"""Small pieces shared by the update rules (optax's transformations in spirit).

Each works on raw backend arrays (NumPy or CuPy) and follows PyTorch's
arithmetic order, so that float64 results agree with ``torch.optim`` to the
last few bits. None of them writes into a gradient array: a gradient may share
memory with another tensor, so a changed gradient is always a new array.

Python floats meet float32 arrays as "weak" scalars (NumPy >= 2, CuPy), so
every update of a float32 parameter stays float32, as in PyTorch.

0-d parameters: NumPy's operators return a NumPy *scalar*, not a 0-d array,
when every operand is 0-d. A scalar cannot be an ``out=`` and its in-place
operators (``s *= 2``) make a new scalar instead of writing, so a state buffer
kept as a scalar silently stops updating. Every temporary that a rule later
writes into, and every new state buffer, therefore passes through
:func:`as_array`.
"""

import numpy as np


def as_array(value):
    """``value`` as an array: a NumPy scalar (what NumPy returns for 0-d operands)
    becomes a 0-d array; arrays (NumPy or CuPy) pass unchanged."""
    if type(value) is _NDARRAY:  # the common case, decided without isinstance
        return value
    return np.asarray(value) if isinstance(value, np.generic) else value


_NDARRAY = np.ndarray


def ascent(grad, maximize):
    """g for minimisation, -g (a new array) when ``maximize``."""
    return as_array(-grad) if maximize else grad


def l2_penalty(grad, param, weight_decay):
    """The gradient of L + (λ/2)‖θ‖²: g + λθ (a new array; g is untouched).
    PyTorch's coupled ``weight_decay``."""
    if weight_decay == 0:
        return grad
    out = as_array(param * weight_decay)
    out += grad
    return out


def decoupled_decay_(param, lr, weight_decay):
    """θ ← θ(1 - γλ) in place: decoupled weight decay (AdamW, Loshchilov & Hutter)."""
    if weight_decay != 0:
        param *= 1 - lr * weight_decay


def bias_correction(beta, step):
    """1 - β^t: the factor that unbiases a zero-initialised moving average."""
    return 1 - beta ** step


def lerp_(xp, avg, target, weight):
    """avg ← avg + w(target - avg) = (1 - w)·avg + w·target, in place.

    PyTorch's ``lerp_``: for w >= 0.5 it computes target - (target - avg)(1 - w),
    which is the same number in exact arithmetic and better rounded there.
    """
    diff = as_array(xp.subtract(target, avg))
    if abs(weight) < 0.5:
        diff *= weight
        avg += diff
    else:
        diff *= 1 - weight
        xp.subtract(target, diff, out=avg)
    return avg


def ema_square_(avg, grad, decay):
    """avg ← decay·avg + (1 - decay)·g⊙g, in place (PyTorch's mul_ then addcmul_)."""
    avg *= decay
    sq = as_array(grad * (1 - decay))
    sq *= grad
    avg += sq
    return avg


def add_scaled_ratio_(param, num, den, value):
    """θ ← θ + (value·num)/den in place (PyTorch's ``addcdiv_``, same order)."""
    scaled = as_array(num * value)
    scaled /= den
    param += scaled
    return param
