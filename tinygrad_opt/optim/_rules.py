"""Small pieces shared by the update rules (optax's transformations in spirit).

Each works on raw backend arrays (NumPy or CuPy) and follows PyTorch's
arithmetic order, so that float64 results agree with ``torch.optim`` to the
last few bits. None of them writes into a gradient array: a gradient may share
memory with another tensor, so a changed gradient is always a new array.

Python floats meet float32 arrays as "weak" scalars (NumPy >= 2, CuPy), so
every update of a float32 parameter stays float32, as in PyTorch.
"""


def ascent(grad, maximize):
    """g for minimisation, -g (a new array) when ``maximize``."""
    return -grad if maximize else grad


def l2_penalty(grad, param, weight_decay):
    """The gradient of L + (λ/2)‖θ‖²: g + λθ (a new array; g is untouched).
    PyTorch's coupled ``weight_decay``."""
    if weight_decay == 0:
        return grad
    out = param * weight_decay
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
    diff = xp.subtract(target, avg)
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
    sq = grad * (1 - decay)
    sq *= grad
    avg += sq
    return avg


def add_scaled_ratio_(param, num, den, value):
    """θ ← θ + (value·num)/den in place (PyTorch's ``addcdiv_``, same order)."""
    scaled = num * value
    scaled /= den
    param += scaled
    return param
