"""Fused GPU kernels: one pass over memory for each optimizer update and for ReLU's backward.

An optimizer's update written with array operations (``optim.adam._adam``) runs as
a dozen CuPy kernels, each reading and writing whole arrays; a first-order update
is memory-bound, so one kernel that reads θ, g and the moments once and writes
them once is several times faster. Here every first-order update has a fused
twin, a ``cupy.ElementwiseKernel`` whose body repeats the unfused function's
arithmetic operation for operation, in the same order and with the same
rounding (compiled with ``--fmad=false``, so no multiply-add is contracted):
the fused and unfused updates agree bit for bit, float32 and float64.

The update functions are decorated with :func:`fusable`: on CuPy arrays (float32
or float64, one dtype) they run the fused kernel, on anything else the array
code itself. ``ENABLED = False`` (or ``with unfused():``) turns the kernels off.

Each kernel body is a few lines of a small C subset -- ``T x = expr;`` and
``x = expr;`` with ``+ - * /``, comparisons, ``sqrt``, ``max`` and ``fabs``, no
branches (every option picks lines when the body is built, so each combination of
options is its own, small kernel, compiled once and cached by CuPy on disk).
That subset is also Python, so :func:`emulate` runs the very same bodies on NumPy
arrays: the CPU test suite checks every body against the unfused update without
a GPU.
"""

import contextlib
import functools
import re
import sys

import numpy as np

from .ops.elementwise import Relu

ENABLED = True
_EMULATE = False  # run the fused bodies on NumPy arrays (tests, see emulate())
_OPTIONS = ("--fmad=false",)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
UNFUSED = object()  # a fused function's answer when it cannot take the arrays


@contextlib.contextmanager
def unfused():
    """Inside the block the updates run as separate array operations, GPU or not."""
    global ENABLED
    previous, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = previous


@contextlib.contextmanager
def emulate():
    """Inside the block the fused bodies also run on NumPy arrays (interpreted as
    Python), which is how the CPU test suite checks them."""
    global _EMULATE
    previous, _EMULATE = _EMULATE, True
    try:
        yield
    finally:
        _EMULATE = previous


def _is_cupy(array):
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(array, cupy.ndarray)


def fusable(name):
    """Decorate an update function on arrays: CuPy arrays take the fused kernel
    :data:`FUSED` ``[name]`` (same signature), everything else the function itself."""
    def decorate(pure):
        @functools.wraps(pure)
        def update(param, *args, **kwargs):
            if type(param) is np.ndarray:
                if _EMULATE:
                    result = FUSED[name](param, *args, **kwargs)
                    if result is not UNFUSED:
                        return result
                return pure(param, *args, **kwargs)
            if ENABLED and _is_cupy(param):
                result = FUSED[name](param, *args, **kwargs)
                if result is not UNFUSED:
                    return result
            return pure(param, *args, **kwargs)

        update.pure = pure
        update.fused_name = name
        return update
    return decorate


def _same_float_dtype(*arrays):
    """True when every array (None skipped) has the first one's dtype, float32 or float64."""
    dtype = arrays[0].dtype
    return dtype in _FLOATS and all(a is None or a.dtype == dtype for a in arrays)


# ---------------------------------------------------------------------------------------
# Running a body: compiled on CuPy, interpreted on NumPy
# ---------------------------------------------------------------------------------------

_KERNELS = {}


def _used(body, scalars):
    """The scalars that ``body`` names (the others are left out of the kernel)."""
    return {k: scalars[k] for k in _names_in(body, tuple(scalars))}


@functools.cache
def _names_in(body, names):
    return tuple(k for k in names if re.search(rf"\b{k}\b", body))


def run(name, body, inputs, scalars, outputs):
    """Run ``body`` elementwise. ``inputs``: name -> array (read), ``scalars``:
    name -> number (cast to the arrays' type T), ``outputs``: name -> array (read and
    written in place). Returns None."""
    scalars = _used(body, scalars)
    if type(next(iter(outputs.values()))) is np.ndarray:
        return _interpret(body, inputs, scalars, outputs)
    kernel = _kernel(name, body, inputs, scalars, outputs)
    kernel(*inputs.values(), *scalars.values(), *outputs.values())
    return None


def _kernel(name, body, inputs, scalars, outputs):
    """The compiled ``cupy.ElementwiseKernel`` for a body (made once, then cached)."""
    key = (name, body, tuple(inputs), tuple(scalars), tuple(outputs))
    kernel = _KERNELS.get(key)
    if kernel is None:
        import cupy  # optional (the gpu extra): only a GPU run gets here

        in_params = ", ".join(f"T {n}" for n in list(inputs) + list(scalars))
        out_params = ", ".join(f"T {n}" for n in outputs)
        kernel = _KERNELS[key] = cupy.ElementwiseKernel(
            in_params, out_params, body, f"tinygrad_opt_{name}", options=_OPTIONS,
            no_return=True)
    return kernel


_DECLARATION = re.compile(r"^T\s+(?=[A-Za-z_]\w*\s*=)")


def to_python(body):
    """The kernel body as Python statements (the C subset is Python once the type
    names and semicolons go)."""
    lines = []
    for statement in body.split(";"):
        statement = statement.strip()
        if statement:
            lines.append(_DECLARATION.sub("", statement))
    return "\n".join(lines)


_PY_FUNCTIONS = {"sqrt": np.sqrt, "max": np.maximum, "fabs": np.abs}


def _interpret(body, inputs, scalars, outputs):
    """Run a body on NumPy arrays: variables are whole arrays, T is their dtype."""
    dtype = next(iter(outputs.values())).dtype
    env = dict(_PY_FUNCTIONS)
    env.update({k: np.array(v, copy=True) for k, v in inputs.items()})
    env.update({k: dtype.type(v) for k, v in scalars.items()})
    env.update({k: np.array(v, copy=True) for k, v in outputs.items()})
    with np.errstate(all="ignore"):
        exec(compile(to_python(body), "<fused kernel>", "exec"), {}, env)
    for k, array in outputs.items():
        array[...] = env[k]


# ---------------------------------------------------------------------------------------
# Pieces shared by the update bodies (each mirrors a function of optim/_rules.py)
# ---------------------------------------------------------------------------------------

def _gradient(maximize, weight_decay, decoupled=False):
    """d = ±g, then the L2 penalty d = θλ + d (PyTorch's coupled weight decay), or
    the decoupled decay θ ← θ(1 - γλ) first (AdamW)."""
    lines = ["T d = grad;"]
    if maximize:
        lines.append("d = -d;")
    if weight_decay != 0:
        lines.append("param = param * decay_factor;" if decoupled else
                     "d = param * weight_decay + d;")
    return lines


def _lerp(avg, weight):
    """avg ← avg + w(d - avg), or d - (d - avg)(1 - w) for w ≥ 0.5 (``_rules.lerp_``)."""
    if abs(weight) < 0.5:
        return [f"{avg} = {avg} + (d - {avg}) * lerp_w;"]
    return [f"{avg} = d - (d - {avg}) * lerp_1mw;"]


def _lerp_scalars(weight):
    return {"lerp_w": weight, "lerp_1mw": 1 - weight}


def _ema_square(avg, value, decay_name):
    """avg ← decay·avg + ((1 - decay)·x)·x (``_rules.ema_square_``)."""
    return [f"{avg} = {avg} * {decay_name} + {value} * one_minus_{decay_name} * {value};"]


# ---------------------------------------------------------------------------------------
# The fused updates: each takes exactly the arguments of its unfused function
# ---------------------------------------------------------------------------------------

def _sgd(param, grad, momentum_buffer, *, lr, momentum, dampening, weight_decay, nesterov,
         maximize):
    if not _same_float_dtype(param, grad, momentum_buffer):
        return UNFUSED
    body = _gradient(maximize, weight_decay)
    outputs = {"param": param}
    buf = None
    if momentum != 0:
        if momentum_buffer is None:                       # b ← g at the first step
            buf = _empty_like(param)
            body.append("buf = d;")
        else:                                             # b ← μb + (1 - τ)g
            buf = momentum_buffer
            body.append("buf = buf * momentum + d * one_minus_dampening;" if dampening != 0
                        else "buf = buf * momentum + d;")
        outputs["buf"] = buf
        body.append("d = d + buf * momentum;" if nesterov else "d = buf;")
    body.append("param = param - d * lr;" if lr != 1 else "param = param - d;")
    run("sgd", "\n".join(body), {"grad": grad},
        {"lr": lr, "momentum": momentum, "one_minus_dampening": 1 - dampening,
         "weight_decay": weight_decay}, outputs)
    return buf


def _adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
          weight_decay, amsgrad, maximize, decoupled_weight_decay=False,
          eps_inside_sqrt=False):
    if not _same_float_dtype(param, grad, exp_avg, exp_avg_sq,
                             max_exp_avg_sq if amsgrad else None):
        return UNFUSED
    body = _gradient(maximize, weight_decay, decoupled_weight_decay) + [
        "exp_avg = exp_avg * beta1 + d * one_minus_beta1;",
        "exp_avg_sq = exp_avg_sq * beta2 + d * d * one_minus_beta2;",
    ]
    outputs = {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    v = "exp_avg_sq"
    if amsgrad:
        body.append("max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq);")
        outputs["max_exp_avg_sq"] = max_exp_avg_sq
        v = "max_exp_avg_sq"
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    if eps_inside_sqrt:
        body.append(f"T den = sqrt({v} / bc2 + eps);")
        scale = lr / bc1
    else:
        root = bc2 ** 0.5
        body.append(f"T den = sqrt({v}) + eps_root;")
        scale = lr / bc1 * root
    body.append("param = param + exp_avg / den * neg_scale;")
    run("adam", "\n".join(body), {"grad": grad},
        {"weight_decay": weight_decay, "decay_factor": 1 - lr * weight_decay,
         "beta1": beta1, "one_minus_beta1": 1 - beta1, "beta2": beta2,
         "one_minus_beta2": 1 - beta2, "bc2": bc2, "eps": eps,
         "eps_root": None if eps_inside_sqrt else eps * root, "neg_scale": -scale},
        outputs)
    return None


def _adagrad(param, grad, state_sum, *, step, lr, lr_decay, weight_decay, eps, maximize):
    if not _same_float_dtype(param, grad, state_sum):
        return UNFUSED
    clr = lr / (1 + (step - 1) * lr_decay)
    body = _gradient(maximize, weight_decay) + [
        "state_sum = state_sum + d * d;",
        "T den = sqrt(state_sum) + eps;",
        "param = param + d * neg_clr / den;",
    ]
    run("adagrad", "\n".join(body), {"grad": grad},
        {"weight_decay": weight_decay, "eps": eps, "neg_clr": -clr},
        {"param": param, "state_sum": state_sum})
    return None


def _rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
             weight_decay, momentum, centered, maximize, eps_inside_sqrt=False):
    if not _same_float_dtype(param, grad, square_avg, grad_avg if centered else None,
                             momentum_buffer if momentum > 0 else None):
        return UNFUSED
    body = _gradient(maximize, weight_decay) + _ema_square("square_avg", "d", "alpha")
    outputs = {"param": param, "square_avg": square_avg}
    if centered:
        body += _lerp("grad_avg", 1 - alpha)
        body.append("T den = square_avg - grad_avg * grad_avg;")
        if eps_inside_sqrt:
            body.append("den = den + eps;")
        body.append("den = sqrt(den);")
        outputs["grad_avg"] = grad_avg
    elif eps_inside_sqrt:
        body.append("T den = sqrt(square_avg + eps);")
    else:
        body.append("T den = sqrt(square_avg);")
    if not eps_inside_sqrt:
        body.append("den = den + eps;")
    if momentum > 0:
        body.append("buf = buf * momentum + d / den;")
        body.append("param = param - buf * lr;" if lr != 1 else "param = param - buf;")
        outputs["buf"] = momentum_buffer
    else:
        body.append("param = param + d * neg_lr / den;")
    run("rmsprop", "\n".join(body), {"grad": grad},
        {"weight_decay": weight_decay, "alpha": alpha, "one_minus_alpha": 1 - alpha,
         **_lerp_scalars(1 - alpha), "eps": eps, "momentum": momentum, "lr": lr,
         "neg_lr": -lr}, outputs)
    return None


def _adadelta(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize):
    if not _same_float_dtype(param, grad, square_avg, acc_delta):
        return UNFUSED
    body = _gradient(maximize, weight_decay) + _ema_square("square_avg", "d", "rho") + [
        "T den = sqrt(square_avg + eps);",
        "T delta = sqrt(acc_delta + eps) / den * d;",
    ] + _ema_square("acc_delta", "delta", "rho")
    body.append("param = param - delta * lr;" if lr != 1 else "param = param - delta;")
    run("adadelta", "\n".join(body), {"grad": grad},
        {"weight_decay": weight_decay, "rho": rho, "one_minus_rho": 1 - rho, "eps": eps,
         "lr": lr}, {"param": param, "square_avg": square_avg, "acc_delta": acc_delta})
    return None


def _adamax(param, grad, exp_avg, exp_inf, *, step, lr, beta1, beta2, eps, weight_decay,
            maximize):
    if not _same_float_dtype(param, grad, exp_avg, exp_inf):
        return UNFUSED
    clr = lr / (1 - beta1 ** step)
    body = _gradient(maximize, weight_decay) + _lerp("exp_avg", 1 - beta1) + [
        "exp_inf = max(exp_inf * beta2, fabs(d) + eps);",
        "param = param + exp_avg * neg_clr / exp_inf;",
    ]
    run("adamax", "\n".join(body), {"grad": grad},
        {"weight_decay": weight_decay, **_lerp_scalars(1 - beta1), "beta2": beta2, "eps": eps,
         "neg_clr": -clr}, {"param": param, "exp_avg": exp_avg, "exp_inf": exp_inf})
    return None


def _nadam(param, grad, exp_avg, exp_avg_sq, mu_product, *, step, lr, beta1, beta2, eps,
           weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    if not _same_float_dtype(param, grad, exp_avg, exp_avg_sq) \
            or type(mu_product) is not np.ndarray:
        return UNFUSED  # mu_product is a host scalar; anywhere else, the unfused code copes
    bc2 = 1 - beta2 ** step
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    np.multiply(mu_product, mu, out=mu_product)     # Πₜ = Πₜ₋₁ μₜ (host scalar)
    prod = float(mu_product)
    prod_next = prod * mu_next
    body = _gradient(maximize, weight_decay, decoupled_weight_decay)
    body += _lerp("exp_avg", 1 - beta1) + _ema_square("exp_avg_sq", "d", "beta2")
    body += [
        "T den = sqrt(exp_avg_sq / bc2) + eps;",
        "param = param + d * grad_coef / den;",
        "param = param + exp_avg * avg_coef / den;",
    ]
    run("nadam", "\n".join(body), {"grad": grad},
        {"weight_decay": weight_decay, "decay_factor": 1 - lr * weight_decay,
         **_lerp_scalars(1 - beta1), "beta2": beta2, "one_minus_beta2": 1 - beta2,
         "bc2": bc2, "eps": eps, "grad_coef": -lr * (1.0 - mu) / (1.0 - prod),
         "avg_coef": (-lr * mu_next) / (1.0 - prod_next)},
        {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq})
    return None


FUSED = {"sgd": _sgd, "adam": _adam, "adagrad": _adagrad, "rmsprop": _rmsprop,
         "adadelta": _adadelta, "adamax": _adamax, "nadam": _nadam}


def _empty_like(array):
    if type(array) is np.ndarray:
        return np.empty_like(array)
    return sys.modules["cupy"].empty_like(array)


# ---------------------------------------------------------------------------------------
# ReLU's backward: g ⊙ [out > 0] in one kernel (instead of a mask kernel and a multiply)
# ---------------------------------------------------------------------------------------

# [out != 0] in the kernel subset (which has no '='): out is relu's output, so positive,
# zero or NaN; a comparison with NaN is false, so NaN gets 1 - 0 = 1, zero 1 - 1 = 0.
RELU_BACKWARD = "T mask = 1 - (out < 1) * (1 - (out > 0));\ny = g * mask;"


def relu_backward(g, out):
    """g ⊙ [out != 0] (at a NaN input the gradient passes, as in PyTorch) as one fused kernel on CuPy arrays of one float dtype and shape;
    None when the arrays are not such (the caller then multiplies by the mask).
    A NaN in g stays NaN where the mask is 0, as with the multiply."""
    if type(g) is np.ndarray:
        if not _EMULATE:
            return None
    elif not (ENABLED and _is_cupy(g)):
        return None
    if g.shape != out.shape or g.dtype != out.dtype or g.dtype not in _FLOATS:
        return None
    y = _empty_like(g)
    run("relu_backward", RELU_BACKWARD, {"g": g, "out": out}, {}, {"y": y})
    return y


# The kernel registers itself as ReLU's fused backward: the op consults it on device
# arrays, and the ops never import this module.
Relu.fused_backward = staticmethod(relu_backward)
