"""The GPU code path, guarded on the CPU: everything runs on strict arrays (see
strict_array.py), which refuse to mix with host NumPy arrays, refuse NumPy's functions
and implicit conversion, and count every host transfer -- the ways that code which works
on NumPy breaks (or crawls) on CuPy.

Checked: the engine's whole op table (forward, backward, double backward), gradcheck,
every first-order optimizer (and its state dict moved across devices), an MLP's training
step with each loss, devices and their error messages. Each runs on 'strict:0' and on
'cpu' and must give the same numbers, keep every result on the device, and move nothing
to the host inside the step.
"""

import contextlib
import copy

import numpy as np
import pytest
import strict_array as strict
from device_cases import OPT_IDS, OPTIMIZERS, derivatives, exponential_fit, quadratic, set_grads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strict_array import StrictArray, StrictTransferError

import tinygrad_opt as tg
from tinygrad_opt import backend, nn, optim
from tinygrad_opt.autograd import gradcheck, gradgradcheck

strict.install()
DEV = "strict:0"


@pytest.fixture(autouse=True)
def _fresh_counters():
    strict.reset()
    yield


def on_device(t, device=DEV):
    """True when a Tensor (or array) lives on the strict device as a StrictArray."""
    data = t.data if isinstance(t, tg.Tensor) else t
    return type(data) is StrictArray and backend.device_of(data) == device


def host(t):
    return None if t is None else t.numpy()


# ---------------------------------------------------------------------------------------------
# The strict array refuses what CuPy refuses
# ---------------------------------------------------------------------------------------------


def test_strict_array_refuses_host_arrays_numpy_functions_and_implicit_conversion():
    a = strict.strict(np.arange(6.0).reshape(2, 3))
    host_array = np.ones(3)
    for mix in (lambda: a + host_array, lambda: host_array * a, lambda: np.add(a, host_array),
                lambda: strict.xp.maximum(a, host_array), lambda: a.__setitem__(0, host_array),
                lambda: np.exp(host_array, out=a)):
        with pytest.raises(TypeError, match="host numpy.ndarray"):
            mix()
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="numpy.where was called on a strict device array"):
        np.where(a > 1, a, 0)
    with pytest.raises(TypeError, match="two devices"):
        a + strict.strict(np.ones(3), device=1)
    # what CuPy accepts: Python and NumPy scalars, ufuncs called through numpy, reductions
    # that stay 0-d device arrays
    assert type(a * 2.0 + np.float32(1)) is StrictArray
    assert type(np.exp(a)) is StrictArray
    assert type(a.sum()) is StrictArray and a.sum().shape == ()
    assert type(strict.xp.where(a > 1, a, 0)) is StrictArray


def test_strict_array_counts_downloads_and_forbids_them_when_asked():
    a = strict.strict(np.arange(3.0))
    with strict.count_transfers() as c:
        assert float(a.sum()) == 3.0
        assert a.tolist() == [0.0, 1.0, 2.0]
        assert backend.to_host(a).tolist() == [0.0, 1.0, 2.0]
    assert c.downloads == 3 and c.uploads == 0
    with strict.no_transfers():
        for leak in (lambda: float(a[0]), lambda: bool(a[0]), lambda: a.item(0), a.get,
                     lambda: strict.xp.asarray(np.ones(2))):
            with pytest.raises(StrictTransferError):
                leak()


# ---------------------------------------------------------------------------------------------
# Devices: constructors, .to / .cpu, errors naming both devices
# ---------------------------------------------------------------------------------------------

CONSTRUCTORS = {
    "tensor": lambda d: tg.tensor([[1.0, 2.0]], device=d),
    "Tensor": lambda d: tg.Tensor([1, 2, 3], device=d),
    "zeros": lambda d: tg.zeros(2, 3, device=d),
    "ones": lambda d: tg.ones((2, 3), device=d),
    "full": lambda d: tg.full((2,), 1.5, device=d),
    "eye": lambda d: tg.eye(3, device=d),
    "arange": lambda d: tg.arange(5, device=d),
    "linspace": lambda d: tg.linspace(0, 1, 5, device=d),
    "rand": lambda d: tg.rand(2, 2, device=d),
    "randn": lambda d: tg.randn(2, 2, device=d),
    "randint": lambda d: tg.randint(0, 5, (3,), device=d),
    "zeros_like": lambda d: tg.zeros_like(tg.ones(2), device=d),
    "ones_like": lambda d: tg.ones_like(tg.ones(2), device=d),
    "full_like": lambda d: tg.full_like(tg.ones(2), 3.0, device=d),
    "rand_like": lambda d: tg.rand_like(tg.ones(2), device=d),
    "randn_like": lambda d: tg.randn_like(tg.ones(2), device=d),
}


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_every_constructor_takes_a_device(name):
    tg.manual_seed(3)
    on_cpu = CONSTRUCTORS[name]("cpu")
    tg.manual_seed(3)
    t = CONSTRUCTORS[name]("strict")
    assert t.device == DEV and on_device(t)
    assert t.dtype == on_cpu.dtype
    np.testing.assert_array_equal(t.numpy(), on_cpu.numpy())  # one host generator


def test_like_constructors_follow_their_tensor_device():
    x = tg.ones(2, 3, device=DEV)
    for make in (tg.zeros_like, tg.ones_like, tg.rand_like, tg.randn_like):
        assert on_device(make(x))
    assert on_device(tg.full_like(x, 2.0))


def test_to_cpu_and_back_are_differentiable_copies():
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.to("strict")
    assert y.device == DEV and on_device(y)
    assert x.to("cpu") is x and y.to(DEV) is y
    z = y.to("strict:1")
    assert z.device == "strict:1"
    back = (z * z).cpu()
    assert back.device == "cpu" and type(back.data) is np.ndarray
    back.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0, 6.0])
    assert x.grad.device == "cpu"
    w = x.to("strict", dtype="float64")
    assert w.device == DEV and w.dtype == np.float64
    assert x.to("float64").device == "cpu"


def test_an_op_on_two_devices_names_both():
    a, b = tg.ones(3), tg.ones(3, device="strict")
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: tg.maximum(b, a),
               lambda: tg.cat([a, b]), lambda: tg.where(a > 0, a, b)):
        with pytest.raises(RuntimeError) as info:
            op()
        assert "cpu" in str(info.value) and DEV in str(info.value)
        assert "different devices" in str(info.value)


def test_numpy_leaves_a_strict_tensor_only_through_to_host():
    x = tg.randn(3, device="strict")
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x.data)
    with strict.count_transfers() as c:
        x.numpy(), x.tolist(), x[0].item(), repr(x)
    assert c.downloads == 4


def test_unknown_device_errors_list_the_choices():
    with pytest.raises(ValueError, match="use 'cpu', 'cuda' or 'cuda:N'"):
        tg.zeros(2, device="tpu")


# ---------------------------------------------------------------------------------------------
# The op table: forward, backward and double backward on the device, equal to the CPU
# ---------------------------------------------------------------------------------------------

from engine.test_ops import OPS

# ops that make a host index tensor themselves (x[tg.tensor([2, 0, 2])]): the index is
# copied to the device, as CuPy (and PyTorch) do
HOST_INDEX_OPS = {"getitem_tensor_index"}


_UPLOADING = [OPS[name] for name in HOST_INDEX_OPS if name in OPS]


@pytest.mark.parametrize("name", sorted(OPS))
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_op_table_on_the_strict_device(name, data):
    case = OPS[name]
    arrays, kwargs = case.draw(data)
    on_cpu = derivatives(case, arrays, kwargs, "cpu")
    on_dev = derivatives(case, arrays, kwargs, DEV,
                         guard=None if case in _UPLOADING else strict.no_transfers())
    out = on_dev[0]
    assert on_device(out), f"{name}: the forward left the device"
    for kind, cpu_ts, dev_ts in zip(("first", "second"), on_cpu[1:], on_dev[1:]):
        for i, (c, d) in enumerate(zip(cpu_ts, dev_ts)):
            assert (c is None) == (d is None), f"{name}: {kind} derivative {i}"
            if d is not None:
                assert on_device(d), f"{name}: {kind} derivative {i} left the device"
                np.testing.assert_allclose(host(d), host(c), rtol=1e-12, atol=1e-12,
                                           err_msg=f"{name}: {kind} derivative {i}")
    np.testing.assert_allclose(host(out), host(on_cpu[0]), rtol=1e-12, atol=1e-12)


def test_op_table_covers_every_op_class():
    """A new op class in tinygrad_opt.ops must get a row in the engine's table (and so
    a run here)."""
    from tinygrad_opt import ops
    covered_by_composites = {"Cast", "Copy", "ToDevice", "SumTo", "IndexAdd", "ScatterAlong",
                             "SelectAlong"}
    names = {n.lower() for n in OPS}
    missing = [cls for cls in ops.__all__ if cls not in covered_by_composites
               and not any(cls.lower() in n or n in cls.lower() for n in names)]
    assert not missing, f"op classes without a row in tests/engine/test_ops.py: {missing}"


def test_relu_backward_asks_its_registered_fused_kernel_on_the_device(monkeypatch):
    """Fused kernels register as an op's override (cuda_kernels does for ReLU's
    backward): on device arrays the op asks it, and multiplies by its mask when
    the answer is None (as the kernel answers for arrays it cannot take)."""
    from tinygrad_opt.ops.elementwise import Relu

    asked = []

    def override(g, out):  # answers None: "not for these arrays"
        asked.append(type(g))

    monkeypatch.setattr(Relu, "fused_backward", staticmethod(override))
    x = tg.tensor([1.0, -2.0, 3.0], device=DEV, requires_grad=True)
    x.relu().sum().backward()
    assert asked == [StrictArray]
    np.testing.assert_array_equal(host(x.grad), [1.0, 0.0, 1.0])


def test_gradcheck_and_gradgradcheck_run_on_the_device():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.uniform(0.5, 1.5, (3, 2)), dtype="float64", device=DEV,
                  requires_grad=True)
    w = tg.tensor(rng.standard_normal((2, 4)), dtype="float64", device=DEV, requires_grad=True)
    f = lambda x, w: (x @ w).tanh().log_softmax(-1)
    assert gradcheck(f, (x, w))
    assert gradgradcheck(f, (x, w))
    big = tg.tensor(rng.standard_normal((40, 30)), dtype="float64", device=DEV,
                    requires_grad=True)
    assert gradcheck(lambda a: (a * a).sin().sum(0), (big,))  # the projected check


# ---------------------------------------------------------------------------------------------
# Optimizers: a few steps on the device, equal to the CPU, state on the device, no transfer
# ---------------------------------------------------------------------------------------------

HOST_STATE = {"step", "mu_product"}  # host scalars, as PyTorch keeps `step` on the CPU


def _steps(opt, params, curv, noise, steps, start=0, device=DEV):
    path = []
    for t in range(start, start + steps):
        set_grads(params, curv, noise[t])
        with strict.no_transfers() if device != "cpu" else contextlib.nullcontext():
            opt.step()
        path.append([p.numpy().copy() for p in params])
    return path


def _assert_same_paths(a, b, what):
    for t, (xs, ys) in enumerate(zip(a, b)):
        for x, y in zip(xs, ys):
            np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-13, err_msg=f"{what} {t}")


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_steps_on_the_device(name, kw):
    tg.set_default_dtype("float64")
    cpu_params, curv, noise = quadratic("cpu")
    cpu_path = _steps(getattr(optim, name)(cpu_params, **kw), cpu_params, curv, noise, 4,
                      device="cpu")
    params, curv, noise = quadratic(DEV)
    opt = getattr(optim, name)(params, **kw)
    path = _steps(opt, params, curv, noise, 4)
    _assert_same_paths(path, cpu_path, f"{name} {kw}: step")
    for p in params:
        assert on_device(p)
        for key, value in opt.state[p].items():
            if key in HOST_STATE:
                assert type(value.data) is np.ndarray, f"{key} should stay a host scalar"
            else:
                assert on_device(value), f"state {key!r} left the device"


@pytest.mark.parametrize("name,kw", OPTIMIZERS[1::2], ids=OPT_IDS[1::2])
def test_optimizer_state_dict_moves_across_devices(name, kw):
    """Two steps on the device, the state dict loaded by an optimizer of CPU parameters,
    two more steps there: the same path as four steps on the device (and back again)."""
    tg.set_default_dtype("float64")
    params, curv, noise = quadratic(DEV)
    opt = getattr(optim, name)(params, **kw)
    _steps(opt, params, curv, noise, 2)
    saved, saved_params = opt.state_dict(), [p.detach().cpu() for p in params]
    rest_on_device = _steps(opt, params, curv, noise, 2, start=2)

    cpu_params = [p.detach().requires_grad_() for p in saved_params]
    cpu_opt = getattr(optim, name)(cpu_params, **kw)
    cpu_opt.load_state_dict(saved)
    for p in cpu_params:
        for key, value in cpu_opt.state[p].items():
            assert type(value.data) is np.ndarray, f"{key} did not come to the CPU"
    cpu_curv = [c.cpu() for c in curv]
    cpu_noise = [[n.cpu() for n in row] for row in noise]
    rest_on_cpu = _steps(cpu_opt, cpu_params, cpu_curv, cpu_noise, 2, start=2, device="cpu")
    _assert_same_paths(rest_on_cpu, rest_on_device, f"{name}: step after the move")

    back = [p.detach().to(DEV).requires_grad_() for p in cpu_params]
    back_opt = getattr(optim, name)(back, **kw)
    back_opt.load_state_dict(cpu_opt.state_dict())
    for p in back:
        for key, value in back_opt.state[p].items():
            assert (type(value.data) is np.ndarray) if key in HOST_STATE else on_device(value)
    _steps(back_opt, back, curv, noise, 1, start=4)


def test_schedulers_drive_a_device_optimizer_without_transfers():
    params, curv, noise = quadratic(DEV, "float32")
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for t in range(3):
        set_grads(params, curv, noise[t])
        with strict.no_transfers():
            opt.step()
            sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0125)


# ---------------------------------------------------------------------------------------------
# A training step of an MLP, with each loss
# ---------------------------------------------------------------------------------------------

LOSSES = {
    "cross_entropy": (lambda out, y: nn.functional.cross_entropy(out, y), "labels"),
    "cross_entropy_smoothing": (lambda out, y: nn.functional.cross_entropy(
        out, y, label_smoothing=0.1), "labels"),
    "nll_loss": (lambda out, y: nn.functional.nll_loss(out.log_softmax(-1), y), "labels"),
    "multi_margin_loss": (lambda out, y: nn.functional.multi_margin_loss(out, y), "labels"),
    "mse_loss": (lambda out, y: nn.functional.mse_loss(out, y), "values"),
    "l1_loss": (lambda out, y: nn.functional.l1_loss(out, y), "values"),
    "bce_with_logits": (lambda out, y: nn.functional.binary_cross_entropy_with_logits(out, y),
                        "probabilities"),
    "bce": (lambda out, y: nn.functional.binary_cross_entropy(out.sigmoid(), y),
            "probabilities"),
}


def _batch(kind, device, n=16, classes=3):
    rng = np.random.default_rng(1)
    floats = tg.get_default_dtype()  # the model's: float64 into float32 is an error, as in torch
    x = tg.tensor(rng.standard_normal((n, 4)), dtype=floats, device=device)
    if kind == "labels":
        y = tg.tensor(rng.integers(0, classes, n), device=device)
    elif kind == "values":
        y = tg.tensor(rng.standard_normal((n, classes)), dtype=floats, device=device)
    else:
        y = tg.tensor(rng.uniform(0, 1, (n, classes)), dtype=floats, device=device)
    return x, y


def _train(device, loss_name, opt_name="Adam", steps=3):
    tg.manual_seed(0)
    model = nn.MLP([4, 8, 8, 3])
    if device != "cpu":
        model.to(device)
    opt = getattr(optim, opt_name)(model.parameters(), lr=0.01)
    loss_fn, kind = LOSSES[loss_name]
    x, y = _batch(kind, device)
    losses = []
    for _ in range(steps):
        with strict.no_transfers() if device != "cpu" else contextlib.nullcontext():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        losses.append(loss)
    return model, [float(l) for l in losses]


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_mlp_training_step_on_the_device(loss_name):
    cpu_model, cpu_losses = _train("cpu", loss_name)
    model, losses = _train(DEV, loss_name)
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-6)
    for (name, p), (_, q) in zip(model.named_parameters(), cpu_model.named_parameters()):
        assert on_device(p) and on_device(p.grad), f"{name} left the device"
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("opt_name", ["SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax",
                                      "NAdam", "AdamW"])
def test_mlp_trains_with_every_optimizer_on_the_device(opt_name):
    _, cpu_losses = _train("cpu", "cross_entropy", opt_name)
    _, losses = _train(DEV, "cross_entropy", opt_name)
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-6)


def test_module_to_and_state_dict_across_devices():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    reference = copy.deepcopy(model)
    assert model.to("strict") is model
    assert all(on_device(p) for p in model.parameters())
    state = model.state_dict()
    assert all(on_device(v) for v in state.values())
    cpu_model = copy.deepcopy(reference)
    cpu_model.load_state_dict(state)  # device arrays land on the CPU parameters
    for p, q in zip(cpu_model.parameters(), reference.parameters()):
        assert type(p.data) is np.ndarray
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    model.cpu()
    assert all(type(p.data) is np.ndarray for p in model.parameters())


def test_clip_grad_norm_and_zero_grad_stay_on_the_device():
    model, _ = _train(DEV, "mse_loss", steps=1)
    loss_fn, kind = LOSSES["mse_loss"]
    x, y = _batch(kind, DEV)
    loss_fn(model(x), y).backward()
    with strict.no_transfers():
        total = nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        model.zero_grad()
    assert on_device(total)


def test_save_writes_host_arrays_and_load_places_them(tmp_path):
    """tg.save copies device arrays to the host (explicitly); tg.load(map_location=...)
    puts them on the device asked for, or back where they were saved from."""
    tg.manual_seed(0)
    model = nn.MLP([3, 4, 2]).to(DEV)
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = _batch("values", DEV, classes=2)
    x = x[:, :3]
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    path = tmp_path / "checkpoint.npz"
    tg.save({"model": model.state_dict(), "optim": opt.state_dict()}, path)
    same = tg.load(path)
    assert all(on_device(v) for v in same["model"].values())
    on_cpu = tg.load(path, map_location="cpu")
    assert all(type(v.data) is np.ndarray for v in on_cpu["model"].values())
    moved = tg.load(path, map_location={DEV: "strict:1"})
    assert all(on_device(v, "strict:1") for v in moved["model"].values())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(on_cpu["model"][key].numpy(), value.numpy())
    fresh = optim.Adam(model.parameters(), lr=0.01)
    fresh.load_state_dict(same["optim"])
    for p in model.parameters():
        assert on_device(fresh.state[p]["exp_avg"])


def test_layers_built_on_the_device():
    tg.manual_seed(0)
    model = nn.MLP([4, 8, 3], device="strict")
    assert all(on_device(p) for p in model.parameters())
    x, _ = _batch("labels", DEV)
    with strict.no_transfers():
        model(x).sum().backward()
    assert all(on_device(p.grad) for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Second-order methods: the same iterates on the device; host scalars only through to_host
# ---------------------------------------------------------------------------------------------

SECOND_ORDER = {"Newton": "newton", "NewtonCG": "newton_cg", "BFGS": "bfgs", "LBFGS": "lbfgs",
                "GD": "gd", "GaussNewton": "gauss_newton",
                "LevenbergMarquardt": "gauss_newton"}


def _second_order(name):
    import importlib

    found = getattr(optim, name, None)
    if found is None:
        try:
            found = getattr(importlib.import_module(f"tinygrad_opt.optim.{SECOND_ORDER[name]}"),
                            name, None)
        except ImportError:
            found = None
    if found is None:
        pytest.skip(f"optim.{name} is not there")
    return found


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_second_order_methods_on_device_parameters(name):
    """A nonlinear least-squares fit: the same iterates on the device as on the CPU, the
    parameters never leave the device (the scalars a line search tests come to the host
    through backend.to_host, as .get() on CuPy)."""
    cls = _second_order(name)
    tg.set_default_dtype("float64")
    kw = dict(line_search_fn="strong_wolfe") if name == "LBFGS" else {}
    on_cpu = exponential_fit(name, cls, kw, "cpu")
    on_dev = exponential_fit(name, cls, kw, DEV)
    assert on_device(on_dev)
    np.testing.assert_allclose(on_dev.numpy(), on_cpu.numpy(), rtol=1e-10, atol=1e-12)


def test_jacobians_hessians_and_products_on_the_device():
    from tinygrad_opt.autograd import functional as F

    def f(x, w):
        return ((x @ w).tanh() ** 2).sum()

    def g(x, w):
        return (x @ w).tanh()

    def run(device):
        rng = np.random.default_rng(0)
        x = tg.tensor(rng.standard_normal((3, 2)), dtype="float64", device=device)
        w = tg.tensor(rng.standard_normal((2, 4)), dtype="float64", device=device)
        v = (tg.tensor(rng.standard_normal((3, 2)), device=device),
             tg.tensor(rng.standard_normal((2, 4)), device=device))
        u = tg.tensor(rng.standard_normal((3, 4)), device=device)
        calls = {"jacobian": lambda: F.jacobian(g, (x, w)),
                 "jacobian_vectorized": lambda: F.jacobian(g, (x, w), vectorize=True),
                 "hessian": lambda: F.hessian(f, (x, w)),
                 "hessian_vectorized": lambda: F.hessian(f, (x, w), vectorize=True),
                 "hvp": lambda: F.hvp(f, (x, w), v), "vhp": lambda: F.vhp(f, (x, w), v),
                 "jvp": lambda: F.jvp(g, (x, w), v), "vjp": lambda: F.vjp(g, (x, w), u)}
        out = {}
        for name, call in calls.items():
            with strict.count_transfers() as c:
                result = call()
            assert c.downloads == 0, f"{name}: {c.log}"
            out[name] = list(_flatten(result))
        return out

    on_cpu, on_dev = run("cpu"), run(DEV)
    for name in on_cpu:
        for a, b in zip(on_cpu[name], on_dev[name]):
            assert on_device(b), f"{name} left the device"
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-12,
                                       err_msg=name)


def _flatten(value):
    if isinstance(value, tg.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _flatten(v)
