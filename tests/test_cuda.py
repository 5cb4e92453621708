"""tg.cuda without a GPU: nothing imports CuPy until asked, nothing raises where PyTorch
would not, and asking for 'cuda' says exactly what is missing and how to install it."""

import subprocess
import sys
import types

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import cuda, nn


@pytest.fixture
def no_cupy(monkeypatch):
    """As on a machine where `import cupy` fails."""
    monkeypatch.setattr(cuda, "_cupy", lambda: None)
    monkeypatch.setattr(cuda, "_why_no_cupy", ModuleNotFoundError("No module named 'cupy'"))


def _fake_cupy(count):
    """A stand-in for the cupy module that sees ``count`` GPUs (or whose driver call
    fails, for count=None)."""
    def get_device_count():
        if count is None:
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return count
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count, getDevice=lambda: 0)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime),
                                 ndarray=type("ndarray", (), {}))


@pytest.fixture
def cupy_without_gpu(monkeypatch):
    monkeypatch.setattr(cuda, "_cupy", lambda: _fake_cupy(None))


def test_importing_tinygrad_opt_does_not_import_cupy():
    code = "import sys, tinygrad_opt as tg; tg.tensor([1.0]).cpu(); print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_availability_never_raises(no_cupy):
    assert cuda.is_available() is False
    assert cuda.device_count() == 0
    assert cuda.memory_allocated() == 0 and cuda.memory_reserved() == 0
    cuda.empty_cache()


def test_availability_with_cupy_but_no_gpu(cupy_without_gpu):
    assert cuda.is_available() is False
    assert cuda.device_count() == 0


WAYS_TO_ASK_FOR_CUDA = {
    "zeros": lambda: tg.zeros(2, device="cuda"),
    "tensor": lambda: tg.tensor([1.0], device="cuda:0"),
    "randn": lambda: tg.randn(2, 2, device="cuda"),
    "Tensor.cuda": lambda: tg.ones(2).cuda(),
    "Tensor.to": lambda: tg.ones(2).to("cuda"),
    "Module.to": lambda: nn.Linear(2, 2).to("cuda"),
    "Module.cuda": lambda: nn.Linear(2, 2).cuda(),
    "synchronize": lambda: cuda.synchronize(),
    "set_device": lambda: cuda.set_device(0),
    "current_device": lambda: cuda.current_device(),
}


@pytest.mark.parametrize("way", sorted(WAYS_TO_ASK_FOR_CUDA))
def test_cuda_without_cupy_says_install_it(no_cupy, way):
    with pytest.raises(RuntimeError) as info:
        WAYS_TO_ASK_FOR_CUDA[way]()
    message = str(info.value)
    assert "needs CuPy, which is not installed" in message
    assert "pip install tinygrad-opt[gpu]" in message
    assert "No module named 'cupy'" in message  # the import's own reason
    assert "device='cpu'" in message


@pytest.mark.parametrize("way", ["zeros", "Tensor.to", "Module.to", "synchronize"])
def test_cuda_without_a_gpu_says_no_gpu(cupy_without_gpu, way):
    with pytest.raises(RuntimeError) as info:
        WAYS_TO_ASK_FOR_CUDA[way]()
    message = str(info.value)
    assert "CuPy is installed but sees no NVIDIA GPU" in message
    assert "pip install tinygrad-opt[gpu]" in message and "nvidia-smi" in message


def test_a_gpu_number_past_the_last_says_how_many(monkeypatch):
    monkeypatch.setattr(cuda, "_cupy", lambda: _fake_cupy(2))
    with pytest.raises(RuntimeError, match=r"'cuda:5' does not exist: this machine has 2 GPU"):
        cuda._index("cuda:5")
    assert cuda._index("cuda:1") == 1 and cuda._index(1) == 1
    with pytest.raises(ValueError, match="not a GPU"):
        cuda._index("cpu")


def test_a_failing_cupy_import_is_remembered_and_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    cuda._cupy.cache_clear()
    try:
        assert cuda._cupy() is None
        assert cuda.is_available() is False
        with pytest.raises(RuntimeError, match="needs CuPy, which is not installed"):
            cuda.namespace()
    finally:
        cuda._cupy.cache_clear()


def test_device_strings():
    from tinygrad_opt.backend import is_device, normalize_device

    assert normalize_device("cuda") == "cuda:0" and normalize_device("cuda:3") == "cuda:3"
    assert normalize_device(None) == "cpu"
    assert is_device("cuda:1") and is_device("cpu") and not is_device("float32")
    with pytest.raises(ValueError, match="use 'cpu', 'cuda' or 'cuda:N'"):
        normalize_device("cuda:x")


def test_cpu_tensors_report_cpu():
    x = tg.tensor(np.ones(3))
    assert x.device == "cpu" and x.cpu() is x and x.to("cpu") is x
