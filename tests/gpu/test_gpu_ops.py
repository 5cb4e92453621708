"""The whole op table on the GPU against the CPU, and gradcheck on the GPU in float64.

Marked ``gpu``: skipped unless CuPy sees an NVIDIA GPU (``make test-gpu`` runs them).
Nothing here imports CuPy at import time.
"""

import numpy as np
import pytest
from device_cases import derivatives, place
from engine.test_ops import OPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_opt as tg
from tinygrad_opt.autograd import gradcheck, gradgradcheck

pytestmark = pytest.mark.gpu
GPU = "cuda:0"
SETTINGS = settings(max_examples=5, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _close(got, want, dtype, what):
    tol = TOLERANCE[dtype]
    scale = max(float(np.abs(want).max()), 1.0) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(data=st.data())
def test_op_table_on_the_gpu_matches_the_cpu(name, dtype, data):
    case = OPS[name]
    arrays, kwargs = case.draw(data)
    out_c, *on_cpu = derivatives(case, arrays, kwargs, "cpu", dtype)
    out_g, *on_gpu = derivatives(case, arrays, kwargs, GPU, dtype)
    for kind, cpu_ts, gpu_ts in zip(("value", "first derivative", "second derivative"),
                                     [[out_c], *on_cpu], [[out_g], *on_gpu]):
        for i, (c, g) in enumerate(zip(cpu_ts, gpu_ts)):
            assert (c is None) == (g is None), f"{name}: {kind} {i}"
            if g is None:
                continue
            assert g.device == GPU, f"{name}: {kind} {i} left the GPU"
            assert g.dtype == c.dtype
            _close(g.numpy(), c.numpy(), dtype, f"{name} {dtype}: {kind} {i}")


@pytest.mark.parametrize("name", sorted(OPS))
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_gradcheck_and_gradgradcheck_on_the_gpu(name, data):
    case = OPS[name]
    arrays, kwargs = case.draw(data)
    kwargs = {k: place(v, GPU) for k, v in kwargs.items()}
    xs = [tg.tensor(a, dtype="float64", device=GPU, requires_grad=True) for a in arrays]
    assert gradcheck(lambda *ts: case.fn(*ts, **kwargs), xs)
    assert gradgradcheck(lambda *ts: case.fn(*ts, **kwargs), xs)


def test_an_op_on_two_devices_names_both():
    a, b = tg.ones(3), tg.ones(3, device="cuda")
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: tg.cat([a, b])):
        with pytest.raises(RuntimeError) as info:
            op()
        assert "cpu" in str(info.value) and GPU in str(info.value)


def test_constructors_to_cpu_cuda_and_numpy():
    import cupy

    for t in (tg.zeros(2, 3, device="cuda"), tg.randn(4, device="cuda:0"),
              tg.tensor([1.0, 2.0], device="cuda"), tg.arange(5, device="cuda"),
              tg.eye(3, device="cuda"), tg.ones(2).cuda(), tg.ones(2).to("cuda")):
        assert t.device == GPU and isinstance(t.data, cupy.ndarray)
    tg.manual_seed(1)
    a = tg.randn(3, 3, device="cuda")
    tg.manual_seed(1)
    b = tg.randn(3, 3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # one host generator
    assert type(a.numpy()) is np.ndarray and a.cpu().device == "cpu"
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    (x.cuda() ** 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0])
    assert x.grad.device == "cpu"


def test_cuda_helpers():
    assert tg.cuda.is_available() and tg.cuda.device_count() >= 1
    assert tg.cuda.current_device() == 0
    assert isinstance(tg.cuda.get_device_name(), str)
    before = tg.cuda.memory_allocated()
    x = tg.zeros(1024, 1024, device="cuda")
    assert tg.cuda.memory_allocated() >= before + x.numel() * 4
    assert tg.cuda.memory_reserved() >= tg.cuda.memory_allocated()
    free, total = tg.cuda.mem_get_info()
    assert 0 < free <= total
    tg.cuda.synchronize()
    with tg.cuda.device(0):
        assert tg.zeros(1, device="cuda").device == GPU
    del x
    tg.cuda.empty_cache()
