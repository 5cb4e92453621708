"""The GPU backend: CuPy arrays on NVIDIA devices, loaded only when asked for.

``tg.cuda.is_available()`` never raises; everything else raises one sentence
saying what is missing (CuPy, or a GPU) and how to get it.
"""

import functools

INSTALL = "pip install tinygrad-opt[gpu]"


@functools.lru_cache(maxsize=None)
def _cupy():
    """Import CuPy and register its arrays with the engine, or None."""
    try:
        import cupy
    except ImportError:
        return None
    from .backend import register_backend

    register_backend(cupy.ndarray, cupy, lambda array: f"cuda:{array.device.id}")
    return cupy


def is_available():
    """True when CuPy imports and sees at least one GPU."""
    return device_count() > 0


def device_count():
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
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed; install it with "
                           f"`{INSTALL}` (and an NVIDIA driver), or use device='cpu'.")
    if device_count() == 0:
        raise RuntimeError("device 'cuda': CuPy is installed but sees no NVIDIA GPU (no device "
                           "or no driver); use device='cpu' on this machine.")
    return cupy


def to_device(array, device):
    """``array`` (NumPy or CuPy) copied onto the GPU named by ``device`` ('cuda:N')."""
    cupy = namespace()
    index = int(device.split(":")[1])
    if index >= device_count():
        raise RuntimeError(f"device {device!r} does not exist: this machine has "
                           f"{device_count()} GPU(s); use cuda:0 .. cuda:{device_count() - 1}.")
    with cupy.cuda.Device(index):
        return cupy.asarray(array)
