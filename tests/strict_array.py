"""A strict test backend: NumPy arrays dressed as device arrays that behave like CuPy's.

CI has no GPU, yet the CuPy path must not rot. Code that works on NumPy can still
break on CuPy in three ways, and this backend makes each one fail loudly on the CPU:

* mixing: a device array meets a host ``numpy.ndarray`` in one op (CuPy raises
  TypeError) -- a ``StrictArray`` refuses any plain ``numpy.ndarray`` operand,
  output or ``__setitem__`` value (Python and NumPy scalars are fine, as on CuPy);
* naming numpy: ``np.where(x, ...)`` / ``np.zeros(...)`` in library code instead of
  the array's namespace -- NumPy functions refuse a ``StrictArray``
  (``__array_function__``) and ``np.asarray(x)`` refuses to convert one
  (``__array__``, CuPy's "Implicit conversion to a NumPy array is not allowed");
* hidden host round trips: ``.item()``, ``float(x)``, ``bool(x)``, ``.tolist()``
  and ``.get()`` are counted as downloads, and raise inside :func:`no_transfers`;
  host data made into a device array (``xp.asarray(host)``, a NumPy index) counts
  as an upload.

Ufuncs called as ``np.exp(x)`` work (CuPy implements ``__array_ufunc__``), results
of reductions are 0-d StrictArrays (CuPy never returns NumPy scalars), and
arrays live on numbered devices (``strict:0``, ``strict:1``) that refuse to mix.

``install()`` registers the backend with ``tinygrad_opt.backend``: ``xp_of``
gives :data:`xp` for these arrays, ``Tensor.device`` reports ``'strict:0'``, and
``tg.zeros(3, device='strict')``, ``t.to('strict:1')``, ``t.cpu()`` work.
"""

import contextlib
import numbers

import numpy as np

from tinygrad_opt import backend

FAMILY = "strict"


class StrictTransferError(RuntimeError):
    """Data crossed between host and device where that was forbidden."""


class _Counters:
    def __init__(self):
        self.downloads = 0   # device -> host (get, item, float, bool, tolist, ...)
        self.uploads = 0     # host -> device (asarray of host data, host index arrays)
        self.forbid = 0      # > 0 inside no_transfers()
        self.log = []        # what crossed, for the error messages and the tests

    def count(self, direction, what):
        self.log.append(f"{direction}: {what}")
        if direction == "download":
            self.downloads += 1
        else:
            self.uploads += 1
        if self.forbid:
            raise StrictTransferError(
                f"{what} moves data {'to the host' if direction == 'download' else 'to the device'}"
                " inside a block that must not (a GPU would synchronise or copy here); keep the "
                "value on the device, or convert explicitly outside the hot path.")


counters = _Counters()

# The current device: where functions without array arguments (xp.zeros, xp.asarray of
# host data) allocate, as cupy.cuda.Device(n).use() decides for CuPy.
_current = [0]


@contextlib.contextmanager
def device(index):
    """``with device(1):`` makes strict:1 the current device inside the block."""
    previous, _current[0] = _current[0], index
    try:
        yield
    finally:
        _current[0] = previous


def reset():
    counters.downloads = counters.uploads = 0
    counters.log = []


@contextlib.contextmanager
def no_transfers():
    """Inside the block, any host <-> device transfer raises StrictTransferError."""
    counters.forbid += 1
    try:
        yield counters
    finally:
        counters.forbid -= 1


@contextlib.contextmanager
def count_transfers():
    """Counts the transfers made inside the block: ``with count_transfers() as c: ...``."""
    before = (counters.downloads, counters.uploads, len(counters.log))
    box = _Count()
    try:
        yield box
    finally:
        box.downloads = counters.downloads - before[0]
        box.uploads = counters.uploads - before[1]
        box.log = counters.log[before[2]:]


class _Count:
    downloads = uploads = 0
    log = ()


# ---------------------------------------------------------------------------------------
# Unwrapping operands, wrapping results
# ---------------------------------------------------------------------------------------

def _describe(value):
    if isinstance(value, np.ndarray):
        return f"a host numpy.ndarray of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _refuse(where, value):
    return TypeError(f"{where}: cannot mix a strict device array with {_describe(value)}; "
                     "move it to the device first (as CuPy requires).")


class _Devices:
    """Collects the devices of the StrictArray operands of one call."""

    __slots__ = ("index",)

    def __init__(self):
        self.index = None

    def see(self, where, array):
        if self.index is None:
            self.index = array._dev
        elif self.index != array._dev:
            raise TypeError(f"{where}: operands on two devices, strict:{self.index} and "
                            f"strict:{array._dev}; move them to one device first.")

    @property
    def device(self):
        return _current[0] if self.index is None else self.index


def _unwrap(value, where, devices, allow_host=False):
    """The raw ndarray of a StrictArray (recursing into lists and tuples); a host
    ndarray is refused unless ``allow_host`` (then it counts as an upload)."""
    if type(value) is StrictArray:
        devices.see(where, value)
        return value._a
    if isinstance(value, np.ndarray):
        if not allow_host:
            raise _refuse(where, value)
        counters.count("upload", f"{where} with {_describe(value)}")
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where, devices, allow_host) for v in value)
    return value


def _unwrap_kwargs(kwargs, where, devices):
    return {k: _unwrap(v, where, devices) for k, v in kwargs.items()}


def _wrap(value, device):
    """Arrays, NumPy scalars and bools become StrictArrays (0-d for scalars)."""
    if isinstance(value, np.ndarray):
        return StrictArray(value, device)
    if isinstance(value, (np.generic, bool)):
        return StrictArray(np.asarray(value), device)
    if isinstance(value, tuple):
        return tuple(_wrap(v, device) for v in value)
    if isinstance(value, list):
        return [_wrap(v, device) for v in value]
    return value


def _is_operand(value):
    """What a binary operator accepts (anything else: NotImplemented, so that a
    Tensor's reflected operator runs)."""
    return isinstance(value, (StrictArray, np.ndarray, np.generic, numbers.Number))


# ---------------------------------------------------------------------------------------
# The array
# ---------------------------------------------------------------------------------------

_METADATA = {"shape", "dtype", "ndim", "size", "itemsize", "nbytes", "strides", "flags"}
_HOST_ONLY = {"tobytes", "tofile", "dump", "dumps", "ctypes", "data", "__array_interface__",
              "__array_struct__", "flat", "__dlpack__"}


class StrictArray:
    """A NumPy array that acts as if it lived on a device (see the module doc)."""

    __slots__ = ("_a", "_dev")
    __hash__ = None

    def __init__(self, array, device=0):
        if type(array) is not np.ndarray:
            raise TypeError(f"StrictArray wraps a numpy.ndarray, not {type(array).__name__}")
        self._a = array
        self._dev = device

    # -- NumPy protocols ---------------------------------------------------------------

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (strict device "
                        "array, as CuPy); convert explicitly with tinygrad_opt.backend.to_host "
                        "(or .get()).")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        devices = _Devices()
        if method == "at":  # ufunc.at(a, indices, b): indices may be host data (CuPy copies)
            a, index, *rest = inputs
            if type(a) is not StrictArray:
                raise _refuse(where, a)
            raw = [_unwrap(a, where, devices), _unwrap(index, where, devices, allow_host=True)]
            raw += [_unwrap(v, where, devices) for v in rest]
            getattr(ufunc, method)(*raw, **kwargs)
            return None
        for value in inputs:
            if not isinstance(value, (StrictArray, np.ndarray, np.generic, numbers.Number)):
                if isinstance(value, (list, tuple)):
                    raise TypeError(f"{where}: a Python {type(value).__name__} operand; CuPy "
                                    "ufuncs take arrays and scalars only.")
                return NotImplemented
        raw_inputs = [_unwrap(v, where, devices) for v in inputs]
        out = kwargs.get("out")
        if out is not None:
            for o in out:
                if type(o) is not StrictArray:
                    raise _refuse(where + " (out=)", o)
            kwargs["out"] = tuple(_unwrap(o, where, devices) for o in out)
        if "where" in kwargs:
            kwargs["where"] = _unwrap(kwargs["where"], where, devices)
        result = getattr(ufunc, method)(*raw_inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else tuple(out)
        return _wrap(result, devices.device)

    def __array_function__(self, func, types, args, kwargs):
        name = getattr(func, "__name__", str(func))
        if name in ("shape", "ndim", "size", "result_type", "iscomplexobj", "isrealobj"):
            devices = _Devices()
            return func(*_unwrap(args, name, devices), **_unwrap_kwargs(kwargs, name, devices))
        raise TypeError(f"numpy.{name} was called on a strict device array: library code must "
                        f"call the array's namespace (backend.xp_of(arrays).{name}), which is "
                        "cupy for GPU arrays.")

    # -- host transfers ----------------------------------------------------------------

    def get(self, stream=None, order="C", out=None):
        """An explicit copy to the host (CuPy's ``get``): counted as a download."""
        counters.count("download", f"get() of an array of shape {self._a.shape}")
        return self._a.copy()

    def set(self, host):
        """An explicit copy from the host into this array (CuPy's ``set``)."""
        counters.count("upload", f"set() of an array of shape {self._a.shape}")
        self._a[...] = host

    def item(self, *args):
        counters.count("download", f"item() of an array of shape {self._a.shape}")
        return self._a.item(*args)

    def tolist(self):
        counters.count("download", f"tolist() of an array of shape {self._a.shape}")
        return self._a.tolist()

    def __float__(self):
        counters.count("download", f"float() of an array of shape {self._a.shape}")
        return float(self._a)

    def __int__(self):
        counters.count("download", f"int() of an array of shape {self._a.shape}")
        return int(self._a)

    def __index__(self):
        counters.count("download", f"operator.index() of an array of shape {self._a.shape}")
        return self._a.__index__()

    def __complex__(self):
        counters.count("download", f"complex() of an array of shape {self._a.shape}")
        return complex(self._a)

    def __bool__(self):
        counters.count("download", f"bool() of an array of shape {self._a.shape}")
        return bool(self._a)

    def __reduce__(self):
        raise TypeError("pickling a strict device array would copy it to the host behind the "
                        "user's back; save host arrays (backend.to_host) instead.")

    def __repr__(self):  # for messages and debugging only: not counted
        return "strict" + repr(self._a).removeprefix("array") + (
            f" on strict:{self._dev}" if self._dev else "")

    __str__ = __repr__

    def __format__(self, spec):
        return format(self.__repr__(), spec)

    # -- the rest of the ndarray API ---------------------------------------------------

    def __getattr__(self, name):
        if name in _METADATA:
            return getattr(self._a, name)
        if name in _HOST_ONLY:
            raise AttributeError(f"{name!r} exposes host memory; a device array has no such "
                                 "attribute (convert with backend.to_host).")
        value = getattr(self._a, name)
        if not callable(value):
            return _wrap(value, self._dev)
        return _Method(self, name, value)

    def __copy__(self):
        return StrictArray(self._a.copy(), self._dev)

    def __deepcopy__(self, memo):
        return StrictArray(self._a.copy(), self._dev)

    @property
    def T(self):
        return StrictArray(self._a.T, self._dev)

    @property
    def device(self):
        return f"{FAMILY}:{self._dev}"

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for row in self._a:
            yield _wrap(row, self._dev)

    def __getitem__(self, index):
        devices = _Devices()
        devices.see("__getitem__", self)
        return _wrap(self._a[_unwrap(index, "indexing", devices, allow_host=True)], self._dev)

    def __setitem__(self, index, value):
        devices = _Devices()
        devices.see("__setitem__", self)
        raw_index = _unwrap(index, "indexing", devices, allow_host=True)
        self._a[raw_index] = _unwrap(value, "__setitem__", devices)


class _Method:
    """A bound ndarray method: StrictArray arguments unwrapped, results wrapped;
    ``astype(copy=False)`` and friends that return the very array give self back."""

    __slots__ = ("method", "name", "owner")

    def __init__(self, owner, name, method):
        self.owner, self.name, self.method = owner, name, method

    def __call__(self, *args, **kwargs):
        where = f"ndarray.{self.name}"
        devices = _Devices()
        devices.see(where, self.owner)
        out = kwargs.get("out")
        if out is not None and type(out) is not StrictArray:
            raise _refuse(where + " (out=)", out)
        result = self.method(*_unwrap(args, where, devices), **_unwrap_kwargs(kwargs, where,
                                                                              devices))
        if result is self.owner._a:
            return self.owner
        if out is not None and result is out._a:
            return out
        return _wrap(result, self.owner._dev)


def _binary(ufunc, reflected=False):
    if reflected:
        def method(self, other):
            return ufunc(other, self) if _is_operand(other) else NotImplemented
    else:
        def method(self, other):
            return ufunc(self, other) if _is_operand(other) else NotImplemented
    return method


def _inplace(ufunc):
    def method(self, other):
        if not _is_operand(other):
            return NotImplemented
        ufunc(self, other, out=(self,))
        return self
    return method


def _unary(ufunc):
    def method(self):
        return ufunc(self)
    return method


for _name, _ufunc in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                      ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                      ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                      ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                      ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
    setattr(StrictArray, f"__r{_name}__", _binary(_ufunc, reflected=True))
    if _name != "matmul":
        setattr(StrictArray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                      ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
for _name, _ufunc in [("neg", np.negative), ("pos", np.positive), ("abs", np.absolute),
                      ("invert", np.invert)]:
    setattr(StrictArray, f"__{_name}__", _unary(_ufunc))


# ---------------------------------------------------------------------------------------
# The namespace (what ``xp`` is for these arrays: a stand-in for the cupy module)
# ---------------------------------------------------------------------------------------

# Functions that answer with host metadata, never with arrays.
_PASS_THROUGH = {"shape", "ndim", "size", "result_type", "can_cast", "promote_types",
                 "issubdtype", "isscalar", "broadcast_shapes", "iscomplexobj", "isrealobj",
                 "dtype", "finfo", "iinfo", "errstate", "seterr", "geterr"}
# Functions that turn host data into a device array: explicit uploads (cupy.asarray(host)).
_UPLOADS = {"asarray", "array", "asanyarray", "ascontiguousarray"}
# Creation functions: device allocations, no transfer.
_CREATION = {"zeros", "ones", "empty", "full", "arange", "eye", "identity", "linspace",
             "logspace", "tri"}


class _Ufunc:
    """``xp.exp`` etc.: NumPy's ufunc, refusing host arrays, always giving StrictArrays."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args, **kwargs):
        where = f"xp.{self.__name__}"
        out = kwargs.get("out")
        if out is not None:
            out = kwargs["out"] = out if isinstance(out, tuple) else (out,)
            for value in out:
                if type(value) is not StrictArray:
                    raise _refuse(where + " (out=)", value)
        for value in args:
            if isinstance(value, np.ndarray):
                raise _refuse(where, value)
        if out is not None or any(type(v) is StrictArray for v in args):
            return self._ufunc(*args, **kwargs)  # StrictArray.__array_ufunc__ checks the rest
        return _wrap(self._ufunc(*args, **kwargs), _current[0])  # scalars only: a 0-d array

    def at(self, a, indices, b=None):
        if type(a) is not StrictArray:
            raise _refuse(f"xp.{self.__name__}.at", a)
        args = (a, indices) if b is None else (a, indices, b)
        return self._ufunc.at(*args)

    def reduce(self, array, *args, **kwargs):
        if type(array) is not StrictArray:
            raise _refuse(f"xp.{self.__name__}.reduce", array)
        return self._ufunc.reduce(array, *args, **kwargs)

    def accumulate(self, array, *args, **kwargs):
        if type(array) is not StrictArray:
            raise _refuse(f"xp.{self.__name__}.accumulate", array)
        return self._ufunc.accumulate(array, *args, **kwargs)

    def outer(self, a, b, **kwargs):
        return self._ufunc.outer(a, b, **kwargs)


class _Function:
    """``xp.where`` etc.: unwraps StrictArray arguments (refusing host arrays), calls
    NumPy's function, wraps what comes back."""

    def __init__(self, func, name):
        self._func = func
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        where = f"xp.{self.__name__}"
        devices = _Devices()
        out = kwargs.get("out")
        if out is not None and type(out) is not StrictArray:
            raise _refuse(where + " (out=)", out)
        result = self._func(*_unwrap(args, where, devices),
                            **_unwrap_kwargs(kwargs, where, devices))
        if out is not None:
            return out
        return _wrap(result, devices.device)


class _Upload:
    """``xp.asarray(data)``: a StrictArray stays (a copy for ``array``); host data is
    copied to the device, and counted as an upload."""

    def __init__(self, func, name):
        self._func = func
        self.__name__ = name

    def __call__(self, data, dtype=None, *args, **kwargs):
        if type(data) is StrictArray:
            raw = self._func(data._a, dtype, *args, **kwargs)
            return data if raw is data._a else StrictArray(raw, data._dev)
        if isinstance(data, (list, tuple)) and any(type(v) is StrictArray for v in data):
            raise TypeError(f"xp.{self.__name__} of a list of device arrays: use xp.stack.")
        counters.count("upload", f"xp.{self.__name__}({_describe(data)})")
        return StrictArray(np.array(self._func(data, dtype, *args, **kwargs)), _current[0])


class _Namespace:
    """A module-like object: ``xp.exp``, ``xp.zeros``, ``xp.add.at``, ``xp.float32``,
    ``xp.linalg.norm``, ... all NumPy's, made strict."""

    def __init__(self, module, name):
        self._module = module
        self.__name__ = name
        self.ndarray = StrictArray

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = self.__dict__[name] = self._strict(name)  # looked up once
        return value

    def _strict(self, name):
        value = getattr(self._module, name)
        if isinstance(value, np.ufunc):
            return _Ufunc(value)
        if name in _PASS_THROUGH or isinstance(value, type) or not callable(value):
            if hasattr(value, "__name__") and type(value).__name__ == "module":
                return _Namespace(value, f"{self.__name__}.{name}")
            return value
        if name in _UPLOADS:
            return _Upload(value, name)
        return _Function(value, name)

    def __repr__(self):
        return f"<strict namespace {self.__name__}>"


xp = _Namespace(np, "strict")


# ---------------------------------------------------------------------------------------
# Registration with the engine
# ---------------------------------------------------------------------------------------

def to_device(array, device):
    """``array`` (host or strict) copied to ``device`` ('strict:N')."""
    index = int(device.partition(":")[2] or 0)
    if type(array) is StrictArray:
        return array if array._dev == index else StrictArray(array._a.copy(), index)
    counters.count("upload", f"a transfer of {_describe(np.asarray(array))} to {device}")
    return StrictArray(np.array(array), index)


def device_of(array):
    return f"{FAMILY}:{array._dev}"


def install():
    """Register the strict arrays and the 'strict' device with tinygrad_opt (idempotent)."""
    backend.register_backend(StrictArray, xp, device_of)
    backend.register_device(FAMILY, xp, to_device)


def strict(array, device=0):
    """A StrictArray holding a copy of ``array`` (a test helper: not counted)."""
    return StrictArray(np.array(array), device)
