"""The GPU backend: CuPy arrays on NVIDIA devices, loaded only when asked for.

``tg.cuda.is_available()`` and ``tg.cuda.device_count()`` never raise; everything
that needs a GPU raises one sentence saying what is missing (CuPy, or a GPU)
and how to get it. Importing tinygrad_opt never imports CuPy: it is imported,
and its arrays registered with the engine, the first time a ``cuda`` device is
asked for.

PyTorch's helpers, with the same names::

    tg.cuda.is_available()  tg.cuda.device_count()  tg.cuda.current_device()
    tg.cuda.set_device(1)   with tg.cuda.device(1): ...
    tg.cuda.synchronize()   tg.cuda.get_device_name()
    tg.cuda.memory_allocated()  tg.cuda.memory_reserved()  tg.cuda.empty_cache()
    tg.cuda.mem_get_info()

GPU work is asynchronous: a timing must call ``synchronize()`` before it reads
the clock, and ``.numpy()``, ``.item()`` and ``float(t)`` wait for the GPU (a
training step never calls them on its own).

Several GPUs: ``device='cuda:1'`` puts a tensor on GPU 1, but, as in CuPy, kernels
run on the *current* GPU, so compute on GPU 1 inside ``with tg.cuda.device(1):``
(or after ``tg.cuda.set_device(1)``).

The optimizers' updates and ReLU's backward run as fused kernels on the GPU
(``tinygrad_opt.cuda_kernels``).
"""

import functools

from .backend import normalize_device, register_backend, register_device, to_host

INSTALL = "pip install tinygrad-opt[gpu]"

_why_no_cupy = None  # the ImportError (or CUDA library error) of the last failed import


@functools.cache
def _cupy():
    """Import CuPy and register its arrays with the engine, or None."""
    global _why_no_cupy
    try:
        import cupy  # optional (the gpu extra): imported at the first GPU tensor
    except Exception as error:  # ImportError, or a CUDA library that fails to load
        _why_no_cupy = error
        return None
    register_backend(cupy.ndarray, cupy, _device_of)
    # Imported here, with CuPy, not at the top: its fused kernels register themselves as
    # overrides of ops (ReLU's backward), and a CPU-only session needs none of them.
    from . import cuda_kernels  # noqa: F401
    return cupy


def _device_of(array):
    return f"cuda:{array.device.id}"


def is_available():
    """True when CuPy imports and sees at least one GPU."""
    return device_count() > 0


def device_count():
    """How many GPUs CuPy sees (0 without CuPy, a driver or a device)."""
    cupy = _cupy()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CuPy installed but no driver / no device
        return 0


def namespace():
    """The cupy module, or one clear error saying what is missing."""
    cupy = _cupy()
    if cupy is None:
        reason = f" ({_why_no_cupy})" if _why_no_cupy is not None else ""
        raise RuntimeError(
            f"device 'cuda' needs CuPy, which is not installed{reason}; install it with "
            f"`{INSTALL}` (CuPy for CUDA 12, on a machine with an NVIDIA GPU and driver), "
            "or use device='cpu'.")
    if device_count() == 0:
        raise RuntimeError(
            "device 'cuda': CuPy is installed but sees no NVIDIA GPU (no device, or no NVIDIA "
            "driver: `nvidia-smi` should list the GPU; the CuPy wheel must match the CUDA "
            f"version, `{INSTALL}` installs the CUDA 12 one); use device='cpu' on this machine.")
    return cupy


def _index(device=None):
    """A GPU number from None (the current one), an int, 'cuda' or 'cuda:N'."""
    if device is None:
        return int(namespace().cuda.runtime.getDevice())
    if isinstance(device, int) and not isinstance(device, bool):
        index = device
    else:
        name = normalize_device(device)
        if not name.startswith("cuda:"):
            raise ValueError(f"{device!r} is not a GPU; use 'cuda', 'cuda:N' or an int.")
        index = int(name[5:])
    count = device_count() if _cupy() is not None else 0
    if count == 0:
        namespace()  # raises the error that says what is missing
    if not 0 <= index < count:
        raise RuntimeError(f"device 'cuda:{index}' does not exist: this machine has {count} "
                           f"GPU(s); use cuda:0 .. cuda:{count - 1}.")
    return index


def current_device():
    """The number of the GPU that new CUDA tensors go to by default ('cuda' means it)."""
    return _index(None)


def set_device(device):
    """Make ``device`` (an int, 'cuda:N') the current GPU."""
    namespace().cuda.Device(_index(device)).use()


class device:
    """``with tg.cuda.device(1):`` runs the block with GPU 1 current (as torch.cuda.device)."""

    def __init__(self, device):
        self._target = device

    def __enter__(self):
        cupy = namespace()
        self._previous = int(cupy.cuda.runtime.getDevice())
        cupy.cuda.runtime.setDevice(_index(self._target))
        return self

    def __exit__(self, *exc):
        namespace().cuda.runtime.setDevice(self._previous)


def synchronize(device=None):
    """Wait until every kernel queued on ``device`` (default: the current GPU) has run."""
    cupy = namespace()
    with cupy.cuda.Device(_index(device)):
        cupy.cuda.Device().synchronize()


def get_device_name(device=None):
    """The GPU's model name, e.g. 'NVIDIA H100 80GB HBM3'."""
    cupy = namespace()
    name = cupy.cuda.runtime.getDeviceProperties(_index(device))["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def memory_allocated(device=None):
    """Bytes held by live CuPy arrays on ``device`` (0 without a GPU)."""
    if not is_available():
        return 0
    cupy = namespace()
    with cupy.cuda.Device(_index(device)):
        return int(cupy.get_default_memory_pool().used_bytes())


def memory_reserved(device=None):
    """Bytes CuPy's memory pool holds on ``device``, in use or cached (0 without a GPU)."""
    if not is_available():
        return 0
    cupy = namespace()
    with cupy.cuda.Device(_index(device)):
        return int(cupy.get_default_memory_pool().total_bytes())


def empty_cache():
    """Give the cached, unused blocks of CuPy's memory pools back to the driver."""
    if not is_available():
        return
    cupy = namespace()
    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()


def mem_get_info(device=None):
    """(free, total) bytes of ``device``'s memory, as the driver reports them."""
    cupy = namespace()
    with cupy.cuda.Device(_index(device)):
        free, total = cupy.cuda.runtime.memGetInfo()
    return int(free), int(total)


def to_device(array, device):
    """``array`` (NumPy or CuPy) copied onto the GPU named by ``device`` ('cuda:N')."""
    cupy = namespace()
    index = _index(device)
    with cupy.cuda.Device(index):
        if isinstance(array, cupy.ndarray):  # copy() copies onto the current GPU
            return array if array.device.id == index else array.copy()
        if not hasattr(array, "__array_interface__"):
            array = to_host(array)  # another backend's array goes through the host
        return cupy.asarray(array)


# The backend names no device but the CPU: this module teaches it 'cuda' when imported
# (tinygrad_opt/__init__.py imports it), and namespace() loads CuPy at the first GPU tensor.
register_device("cuda", namespace, to_device)
