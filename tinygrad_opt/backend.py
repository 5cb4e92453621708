"""Array namespaces per device, and dtypes.

A Tensor holds a backend array: a ``numpy.ndarray`` on the CPU, a
``cupy.ndarray`` on an NVIDIA GPU. Ops never name numpy: they ask
:func:`xp_of` for the namespace of their inputs and call ``xp.exp`` etc., so
one code path serves every device. A backend is registered by its array type
(:func:`register_backend`); CuPy registers itself lazily, the first time a
``cuda`` device is asked for, so importing tinygrad_opt never imports CuPy.
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


# device family (the part before ':') -> (namespace, to_device(array, 'family:N')), for
# devices other than 'cpu' and 'cuda' -- the test suite's strict arrays ('strict:0') use it.
_DEVICES = {}


def register_device(family, namespace, to_device):
    """Teach ``normalize_device``, ``namespace_for_device`` and ``transfer`` a device
    family besides 'cpu' and 'cuda' (with :func:`register_backend` for its arrays)."""
    _DEVICES[family] = (namespace, to_device)


def is_device(name):
    """True for 'cpu', 'cuda', 'cuda:N' and registered families ('strict', 'strict:N')."""
    if not isinstance(name, str):
        return False
    family, _, index = name.partition(":")
    return (family in ("cpu", "cuda") or family in _DEVICES) and (not index or index.isdigit())


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
    family = name.partition(":")[0]
    if family in _DEVICES:
        return _DEVICES[family][0]
    from . import cuda

    return cuda.namespace()


def normalize_device(device):
    """'cpu', 'cuda' -> 'cuda:0', 'cuda:1', ...; anything else is an error."""
    if device is None:
        return "cpu"
    name = str(device)
    if name == "cpu":
        return name
    if name == "cuda":
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
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


def transfer(array, device):
    """``array`` copied to ``device`` ('cpu' or 'cuda:N')."""
    device = normalize_device(device)
    if device == "cpu":
        return to_host(array)
    family = device.partition(":")[0]
    if family in _DEVICES:
        return _DEVICES[family][1](array, device)
    from . import cuda

    return cuda.to_device(array, device)
