"""Array namespaces per device, and dtypes.

A Tensor holds a backend array: a ``numpy.ndarray`` on the CPU, a
``cupy.ndarray`` on an NVIDIA GPU. Ops never name numpy: they ask
:func:`xp_of` for the namespace of their inputs and call ``xp.exp`` etc., so
one code path serves every device. A backend is registered by its array type
(:func:`register_backend`) and a device family by its name (:func:`register_device`).
This module names no device but the CPU: ``cuda.py`` registers the 'cuda' family
when it is imported, and imports CuPy (registering its arrays) only the first time
a ``cuda`` device is asked for, so importing tinygrad_opt never imports CuPy.
"""

import numpy as np

# array type -> (namespace, function array -> device string)
_BACKENDS = {np.ndarray: (np, lambda array: "cpu")}

_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16,
    "int64": np.int64, "long": np.int64, "int32": np.int32, "int": np.int32,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}

_default_dtype = np.dtype(np.float32)


def register_backend(array_type, namespace, device_of_array):
    """Teach the engine a new array type (cupy.ndarray, a test array, ...)."""
    _BACKENDS[array_type] = (namespace, device_of_array)


# device family (the part before ':') -> (namespace, to_device(array, 'family:N')) for every
# device but 'cpu': 'cuda' (cuda.py registers it) and the test suite's strict arrays ('strict:0').
_DEVICES = {}


def register_device(family, namespace, to_device):
    """Teach ``normalize_device``, ``namespace_for_device`` and ``transfer`` a device
    family besides 'cpu' (with :func:`register_backend` for its arrays). ``namespace`` is
    the array module, or a function returning it, so that a device whose library is heavy
    or missing (CuPy) loads it only when a tensor first asks for that device."""
    _DEVICES[family] = (namespace, to_device)


def is_device(name):
    """True for 'cpu' and registered families: 'cuda', 'cuda:N', 'strict', 'strict:N'."""
    if not isinstance(name, str):
        return False
    family, _, index = name.partition(":")
    return (family == "cpu" or family in _DEVICES) and (not index or index.isdigit())


def _lookup(array):
    entry = _BACKENDS.get(type(array))
    if entry is None:
        for array_type, candidate in _BACKENDS.items():
            if isinstance(array, array_type):
                return candidate
        return _BACKENDS[np.ndarray]  # Python scalars, numpy scalars, lists
    return entry


def xp_of(arrays):
    """The array namespace (numpy, cupy, ...) of the first array in ``arrays``."""
    for array in arrays:
        if type(array) is np.ndarray:
            return np
        if hasattr(array, "shape"):
            return _lookup(array)[0]
    return np


def device_of(array):
    """'cpu', 'cuda:0', ... for a backend array."""
    return _lookup(array)[1](array)


def get_default_dtype():
    return _default_dtype


def set_default_dtype(dtype):
    """The floating dtype of tensors built from Python numbers (float32 unless set)."""
    global _default_dtype
    resolved = to_dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"set_default_dtype: {resolved} is not a floating dtype; "
                        "use 'float32' or 'float64'.")
    _default_dtype = resolved


def to_dtype(dtype):
    """Turn 'float64', np.float64, a numpy dtype, ... into a numpy dtype."""
    if dtype is None:
        return _default_dtype
    if isinstance(dtype, str):
        key = dtype.removeprefix("torch.").removeprefix("np.").removeprefix("numpy.")
        if key in _DTYPES:
            return np.dtype(_DTYPES[key])
    else:
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            resolved = None
        if resolved is not None and resolved.kind in "fiub":
            return resolved
    raise TypeError(f"unknown dtype {dtype!r}: use one of {', '.join(sorted(_DTYPES))}.")


# -- type promotion: PyTorch's rules ----------------------------------------------------------
#
# NumPy and PyTorch agree inside one category (bool < integer < floating: int32 with int64 is
# int64, float32 with float64 is float64) but not across categories or dimensions, so the
# engine asks these two functions whenever NumPy's result dtype differs from an input's.

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def promote_types(a, b):
    """``torch.promote_types``: a dtype of a higher category wins whole (float16 with
    int64 is float16, int8 with bool is int8); within one category the wider one wins."""
    a, b = np.dtype(a), np.dtype(b)
    rank_a, rank_b = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if rank_a != rank_b:
        return a if rank_a > rank_b else b
    return np.promote_types(a, b)


def _promote_all(dtypes):
    result = None
    for dtype in dtypes:
        result = dtype if result is None else promote_types(result, dtype)
    return result


def _python_number_dtype(value):
    """The dtype a Python (or NumPy scalar) number stands for: bool, int64, or the
    default float dtype -- its kind counts, never its size."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    return _default_dtype


def result_type(*operands):
    """``torch.result_type``: the dtype an op on ``operands`` (arrays, anything with a
    ``dtype`` and ``ndim`` such as Tensors, or Python numbers) computes in.

    Operands form three tiers: arrays with dimensions, 0-d arrays, Python numbers.
    A lower tier counts only when its category (bool < integer < floating) is higher
    than every tier above it: float32 (n-d) with a float64 0-d tensor is float32, int32
    (n-d) with 2.5 is the default float dtype, int32 with an int64 0-d tensor int32.
    """
    tiers = ([], [], [])
    for operand in operands:
        if hasattr(operand, "dtype") and not isinstance(operand, np.generic):
            tiers[0 if operand.ndim else 1].append(np.dtype(operand.dtype))
        else:
            tiers[2].append(_python_number_dtype(operand))
    dimensioned, zero_dim, numbers = (_promote_all(tier) for tier in tiers)
    return _combine_tiers(dimensioned, _combine_tiers(zero_dim, numbers))


def _combine_tiers(higher, lower):
    """The dtype of a higher tier, unless the lower tier's category is higher (ATen's
    ``combine_categories``); None stands for an empty tier."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return promote_types(higher, lower)
    return higher  # integers: a lower tier's integer or bool never widens them


def is_dtype(value):
    """True when ``value`` names a dtype we know ('float64', np.float32, ...)."""
    try:
        to_dtype(value)
    except TypeError:
        return False
    return value is not None


def namespace_for_device(device):
    """The array namespace for a device string: numpy for 'cpu', cupy for 'cuda'."""
    name = normalize_device(device)
    if name == "cpu":
        return np
    namespace = _DEVICES[name.partition(":")[0]][0]
    return namespace() if callable(namespace) else namespace  # modules are not callable


def normalize_device(device):
    """'cpu', 'cuda' -> 'cuda:0', 'cuda:1', ...; anything else is an error."""
    if device is None:
        return "cpu"
    name = str(device)
    if name == "cpu":
        return name
    family, _, index = name.partition(":")
    if family in _DEVICES and (not index or index.isdigit()):
        return f"{family}:{index or 0}"
    raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'.")


def to_host(array):
    """A NumPy copy of a device array."""
    if isinstance(array, np.ndarray):
        return array
    getter = getattr(array, "get", None)  # cupy.ndarray.get() copies to the host
    return getter() if getter is not None else np.asarray(array)


def host_floats(xp, *values):
    """Several device scalars as Python floats, in one transfer: the numbers a
    decision (a line search, a stopping test) needs, fetched without a sync each."""
    if xp.__name__ == "numpy":
        return [float(v) for v in values]
    return [float(v) for v in to_host(xp.stack([xp.asarray(v, dtype="float64")
                                                for v in values]))]


def transfer(array, device):
    """``array`` copied to ``device`` ('cpu' or 'cuda:N')."""
    device = normalize_device(device)
    if device == "cpu":
        return to_host(array)
    return _DEVICES[device.partition(":")[0]][1](array, device)
