"""Training on the GPU follows the CPU: an MLP's trajectory, every optimizer (fused kernels
against the unfused updates too), state dicts and checkpoints moved across devices, and
the second-order methods on GPU parameters.

Marked ``gpu``: skipped unless CuPy sees an NVIDIA GPU (``make test-gpu`` runs them).
"""

import copy

import numpy as np
import pytest
from device_cases import OPT_IDS, OPTIMIZERS, exponential_fit, quadratic, set_grads

import tinygrad_opt as tg
from tinygrad_opt import cuda_kernels, nn, optim

pytestmark = pytest.mark.gpu
GPU = "cuda:0"


def _run(name, kw, device, dtype, steps=20):
    params, curv, noise = quadratic(device, dtype, shapes=((64, 33), (257,)), steps=steps)
    opt = getattr(optim, name)(params, **kw)
    path = []
    for t in range(steps):
        set_grads(params, curv, noise[t])
        opt.step()
        path.append([p.numpy().copy() for p in params])
    return path, opt, params


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=OPT_IDS)
def test_each_optimizer_on_the_gpu_follows_the_cpu(name, kw, dtype):
    tg.set_default_dtype(dtype)
    cpu_path, _, _ = _run(name, kw, "cpu", dtype)
    gpu_path, opt, params = _run(name, kw, GPU, dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for t, (a, b) in enumerate(zip(gpu_path, cpu_path)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=tol, atol=tol, err_msg=f"{name} step {t}")
    for p in params:
        for key, value in opt.state[p].items():
            assert value.device == ("cpu" if key in ("step", "mu_product") else GPU), key


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=OPT_IDS)
def test_fused_kernels_equal_the_unfused_updates(name, kw):
    """float32, 20 steps: the fused kernel and the separate array operations agree to
    1e-6 (they are written to agree bit for bit)."""
    tg.set_default_dtype("float32")
    fused, _, _ = _run(name, kw, GPU, "float32")
    with cuda_kernels.unfused():
        plain, _, _ = _run(name, kw, GPU, "float32")
    for t, (a, b) in enumerate(zip(fused, plain)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6, err_msg=f"{name} step {t}")


def test_the_fused_kernels_are_the_ones_that_run():
    cuda_kernels._KERNELS.clear()
    _run("Adam", dict(lr=0.01), GPU, "float32", steps=2)
    assert any(key[0] == "adam" for key in cuda_kernels._KERNELS)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_relu_backward_equals_the_mask_multiply(dtype):
    import cupy

    rng = np.random.default_rng(0)
    g = cupy.asarray(rng.standard_normal((257, 129)).astype(dtype))
    out = cupy.maximum(cupy.asarray(rng.standard_normal((257, 129)).astype(dtype)), 0)
    fused = cuda_kernels.relu_backward(g, out)
    assert fused is not None
    cupy.testing.assert_array_equal(fused, g * (out > 0))
    x = tg.tensor(rng.standard_normal((8, 5)), dtype=dtype, device=GPU, requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.numpy() > 0).astype(dtype))
    # double backward still sees the mask as a constant
    y = tg.tensor(rng.standard_normal(6), dtype=dtype, device=GPU, requires_grad=True)
    (g1,) = tg.grad((y.relu() * y).sum(), [y], create_graph=True)
    (g2,) = tg.grad(g1.sum(), [y])
    np.testing.assert_allclose(g2.numpy(), 2.0 * (y.numpy() > 0), rtol=1e-6)


def _mlp_run(device, dtype, steps=25, opt_name="SGD", **opt_kw):
    tg.set_default_dtype(dtype)
    tg.manual_seed(0)
    model = nn.MLP([20, 64, 64, 5])
    model.to(device)
    opt = getattr(optim, opt_name)(model.parameters(), **(opt_kw or dict(lr=0.1, momentum=0.9)))
    rng = np.random.default_rng(1)
    x = tg.tensor(rng.standard_normal((128, 20)), dtype=dtype, device=device)
    y = tg.tensor(rng.integers(0, 5, 128), device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return model, opt, [float(l) for l in losses]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_mlp_training_on_the_gpu_follows_the_cpu_trajectory(dtype, tol, opt_name):
    kw = dict(lr=0.1, momentum=0.9) if opt_name == "SGD" else dict(lr=0.01)
    cpu_model, _, cpu_losses = _mlp_run("cpu", dtype, opt_name=opt_name, **kw)
    gpu_model, _, gpu_losses = _mlp_run(GPU, dtype, opt_name=opt_name, **kw)
    assert gpu_losses[-1] < gpu_losses[0]
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=tol)
    for (name, p), (_, q) in zip(gpu_model.named_parameters(), cpu_model.named_parameters()):
        assert p.device == GPU and p.grad.device == GPU
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=tol * 10, atol=tol, err_msg=name)


def test_state_dicts_move_across_devices(tmp_path):
    """A model and its optimizer trained on the GPU, saved, loaded on the CPU (and back
    on the GPU) continue exactly as if nothing had moved."""
    model, opt, _ = _mlp_run(GPU, "float64", steps=3, opt_name="Adam", lr=0.01)
    path = tmp_path / "checkpoint.npz"
    tg.save({"model": model.state_dict(), "optim": opt.state_dict()}, path)
    rng = np.random.default_rng(5)
    x_np, y_np = rng.standard_normal((16, 20)), rng.integers(0, 5, 16)

    def continue_on(device, checkpoint):
        tg.manual_seed(0)
        m = nn.MLP([20, 64, 64, 5]).to(device)
        m.load_state_dict(checkpoint["model"])
        o = optim.Adam(m.parameters(), lr=0.01)
        o.load_state_dict(checkpoint["optim"])
        x, y = tg.tensor(x_np, device=device), tg.tensor(y_np, device=device)
        for _ in range(3):
            o.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            o.step()
        return [p.numpy() for p in m.parameters()]

    on_cpu = continue_on("cpu", tg.load(path, map_location="cpu"))
    on_gpu = continue_on(GPU, tg.load(path))
    moved_in_memory = continue_on("cpu", {"model": model.state_dict(),
                                          "optim": opt.state_dict()})
    for a, b, c in zip(on_cpu, on_gpu, moved_in_memory):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(a, c)
    loaded = tg.load(path, map_location="cpu")
    assert all(v.device == "cpu" for v in loaded["model"].values())
    assert all(v.device == GPU for v in tg.load(path)["model"].values())


def test_module_to_moves_parameters_and_gradients():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ref = copy.deepcopy(model)
    model.to("cuda")
    assert all(p.device == GPU for p in model.parameters())
    out = model(tg.randn(5, 3, device="cuda"))
    out.sum().backward()
    model.cpu()
    assert all(p.device == "cpu" and p.grad.device == "cpu" for p in model.parameters())
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


SECOND_ORDER = [("Newton", dict()), ("NewtonCG", dict()), ("BFGS", dict()),
                ("LBFGS", dict(line_search_fn="strong_wolfe")), ("GD", dict()),
                ("GaussNewton", dict()), ("LevenbergMarquardt", dict())]


@pytest.mark.parametrize("name,kw", SECOND_ORDER, ids=[n for n, _ in SECOND_ORDER])
def test_second_order_methods_on_gpu_parameters(name, kw):
    """A small nonlinear least-squares fit, the same iterates on the GPU as on the CPU."""
    if not hasattr(optim, name):
        pytest.skip(f"optim.{name} is not there")
    tg.set_default_dtype("float64")
    cpu_theta = exponential_fit(name, getattr(optim, name), kw, "cpu")
    gpu_theta = exponential_fit(name, getattr(optim, name), kw, GPU)
    assert gpu_theta.device == GPU
    np.testing.assert_allclose(gpu_theta.numpy(), cpu_theta.numpy(), rtol=1e-8, atol=1e-10)
