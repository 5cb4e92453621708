"""First-order optimizers: the documented rules, PyTorch, identities, convergence,
checkpoints, the lecture's forms, the Optimizer contract and its error messages."""

import copy

import numpy as np
import pytest
from optim_reference import RULES

import tinygrad_opt as tg
from tinygrad_opt import optim

SHAPES = [(3, 4), (5,)]

# (class name, keyword arguments): every option of every optimizer at least once.
CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, momentum_form="lecture")),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, momentum_form="lecture")),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)),
    ("Adam", dict(lr=0.05, eps=1e-3, eps_inside_sqrt=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3,
                     eps=1e-6)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, eps=1e-4, eps_inside_sqrt=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, betas=(0.7, 0.9), weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
       for name, kw in CONFIGS]
TORCH_ONLY = ("momentum_form", "eps_inside_sqrt")  # our lecture options


def _problem(seed=0):
    """Start points, curvatures and per-step noise of a noisy separable quadratic:
    g(θ) = c ⊙ θ + noise_t, so the gradient depends on the trajectory."""
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(s) for s in SHAPES]
    curv = [rng.uniform(0.1, 3.0, s) for s in SHAPES]
    noise = [[rng.standard_normal(s) * 0.5 for s in SHAPES] for _ in range(100)]
    return starts, curv, noise


def _run_ours(name, kw, steps, dtype="float64", seed=0, lrs=None):
    starts, curv, noise = _problem(seed)
    params = [tg.tensor(x, dtype=dtype, requires_grad=True) for x in starts]
    opt = getattr(optim, name)(params, **kw)
    path = []
    for t in range(steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[t]
        for p, c, n in zip(params, curv, noise[t]):
            p.grad = tg.tensor(c * p.numpy() + n, dtype=dtype)
        opt.step()
        path.append([p.numpy().copy() for p in params])
    return path


def _run_reference(name, kw, steps, seed=0, lrs=None):
    starts, curv, noise = _problem(seed)
    thetas = [x.copy() for x in starts]
    states = [{} for _ in thetas]
    path = []
    for t in range(steps):
        hyper = dict(kw) if lrs is None else dict(kw, lr=lrs[t])
        thetas = [RULES[name](th, c * th + n, st, t + 1, **hyper)
                  for th, c, n, st in zip(thetas, curv, noise[t], states)]
        path.append([th.copy() for th in thetas])
    return path


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_matches_documented_rule_float64(name, kw):
    tg.set_default_dtype("float64")  # NAdam's mu_product follows the default dtype
    ours = _run_ours(name, kw, 100)
    ref = _run_reference(name, kw, 100)
    for t, (a, b) in enumerate(zip(ours, ref)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{name} {kw}: step {t + 1}")


# -- PyTorch, step by step ---------------------------------------------------------

HIGH_LR = [
    ("SGD", dict(lr=1.0, momentum=0.9, weight_decay=0.5)),
    ("SGD", dict(lr=0.9, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=3.0, amsgrad=True)),
    ("AdamW", dict(lr=3.0, weight_decay=0.2)),
    ("RMSprop", dict(lr=1.0, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=5.0)),
    ("Adamax", dict(lr=3.0)),
    ("NAdam", dict(lr=3.0)),
    ("Adadelta", dict(lr=10.0)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", [c for c in CONFIGS
                                     if not any(k in c[1] for k in TORCH_ONLY)] + HIGH_LR)
def test_matches_torch_step_by_step(name, kw, dtype):
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(tdtype)  # the dtype of torch's step / mu_product scalars
    tg.set_default_dtype(dtype)
    try:
        steps = 60
        starts, curv, noise = _problem(1)
        ours = [tg.tensor(x, dtype=dtype, requires_grad=True) for x in starts]
        theirs = [torch.tensor(x, dtype=tdtype, requires_grad=True) for x in starts]
        opt = getattr(optim, name)(ours, **kw)
        ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
        tol = 1e-11 if dtype == "float64" else 2e-5
        for t in range(steps):
            for p, q, c, n in zip(ours, theirs, curv, noise[t]):
                g = c * q.detach().numpy().astype(np.float64) + n  # the same g for both
                p.grad = tg.tensor(g, dtype=dtype)
                q.grad = torch.tensor(g, dtype=tdtype)
            opt.step()
            ref.step()
            for p, q in zip(ours, theirs):
                x, y = p.numpy(), q.detach().numpy()
                scale = 1 + np.abs(y)
                assert np.max(np.abs(x - y) / scale) < tol, f"{name} {kw}: step {t + 1}"
                p.data[...] = y  # resynchronise: compare one step at a time
            # the same state, under the same names
            for p, q in zip(ours, theirs):
                assert set(opt.state[p]) == set(ref.state[q])
                for key, value in ref.state[q].items():
                    x, y = opt.state[p][key].numpy(), value.detach().numpy()
                    assert x.shape == y.shape and x.dtype == y.dtype, (name, key)
                    # the states are not resynchronised: compare against their scale
                    assert np.max(np.abs(x - y)) <= tol * np.max(np.abs(y)), (name, key)
    finally:
        torch.set_default_dtype(previous)


# -- identities --------------------------------------------------------------------

def test_adamw_without_decay_is_adam_bitwise():
    for amsgrad in (False, True):
        a = _run_ours("AdamW", dict(lr=0.05, weight_decay=0, amsgrad=amsgrad), 50, "float32")
        b = _run_ours("Adam", dict(lr=0.05, amsgrad=amsgrad), 50, "float32")
        for x, y in zip(a, b):
            for u, v in zip(x, y):
                assert np.array_equal(u, v)


def test_sgd_without_momentum_is_plain_gradient_descent():
    starts, curv, noise = _problem()
    path = _run_ours("SGD", dict(lr=0.1), 30)
    thetas = [x.copy() for x in starts]
    for t in range(30):
        thetas = [th - 0.1 * (c * th + n) for th, c, n in zip(thetas, curv, noise[t])]
        for a, b in zip(path[t], thetas):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,kw", [c for c in CONFIGS if c[0] in
                                     ("SGD", "Adam", "RMSprop", "NAdam", "Adagrad")][::2])
def test_two_param_groups_equal_two_optimizers(name, kw):
    starts, curv, noise = _problem()
    other = dict(kw, lr=kw.get("lr", 1.0) * 0.5)
    a = [tg.tensor(x, requires_grad=True) for x in starts]
    b = [tg.tensor(x, requires_grad=True) for x in starts]
    cls = getattr(optim, name)
    grouped = cls([{"params": [a[0]]}, {"params": [a[1]], "lr": other["lr"]}], **kw)
    single = [cls([b[0]], **kw), cls([b[1]], **other)]
    for t in range(40):
        for p, q, c, n in zip(a, b, curv, noise[t]):
            g = (c * p.numpy() + n).astype(np.float32)
            p.grad, q.grad = tg.tensor(g), tg.tensor(g.copy())
        grouped.step()
        for o in single:
            o.step()
        for p, q in zip(a, b):
            assert np.array_equal(p.numpy(), q.numpy())


# -- every optimizer makes progress on a parabola and on Rosenbrock ----------------

PROGRESS = {  # name -> (kwargs on the parabola, kwargs on Rosenbrock)
    "SGD": (dict(lr=0.1, momentum=0.9), dict(lr=1e-3, momentum=0.9)),
    "Adam": (dict(lr=0.1), dict(lr=0.05)),
    "AdamW": (dict(lr=0.1), dict(lr=0.05)),
    "Adagrad": (dict(lr=0.5), dict(lr=1.0)),
    "RMSprop": (dict(lr=0.05), dict(lr=0.01)),
    "Adadelta": (dict(lr=3.0), dict(lr=3.0, rho=0.99)),
    "Adamax": (dict(lr=0.1), dict(lr=0.1)),
    "NAdam": (dict(lr=0.1), dict(lr=0.05)),
}


def _descend(name, kw, f, start, steps):
    x = tg.tensor(start, dtype="float64", requires_grad=True)
    opt = getattr(optim, name)([x], **kw)

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    losses = [float(opt.step(closure)) for _ in range(steps)]
    return losses, float(f(x))


@pytest.mark.parametrize("name", sorted(PROGRESS))
def test_decreases_a_parabola(name):
    scales = tg.tensor([1.0, 10.0], dtype="float64")
    losses, final = _descend(name, PROGRESS[name][0], lambda x: (scales * x * x).sum(),
                             [2.0, -1.5], 500)
    assert final < 1e-2 * losses[0], (name, losses[0], final)


@pytest.mark.parametrize("name", sorted(PROGRESS))
def test_makes_progress_on_rosenbrock(name):
    def rosen(v):
        x, y = v[0], v[1]
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2

    losses, final = _descend(name, PROGRESS[name][1], rosen, [-1.5, 2.0], 1000)
    assert np.isfinite(final)
    assert final < 0.1 * losses[0], (name, losses[0], final)


# -- checkpoints ---------------------------------------------------------------------

def _roundtrip(state_dict, tmp_path):
    """Through tg.save / tg.load when the serialization module exists, else a deep copy."""
    try:
        from tinygrad_opt import serialization  # noqa: F401
    except ImportError:
        return copy.deepcopy(state_dict)
    path = tmp_path / "opt.npz"
    tg.save(state_dict, str(path))
    return tg.load(str(path))


@pytest.mark.parametrize("name,kw", CONFIGS[::2] + CONFIGS[1::6], ids=IDS[::2] + IDS[1::6])
def test_state_dict_round_trip_continues_bit_for_bit(name, kw, tmp_path):
    starts, curv, noise = _problem(2)
    cls = getattr(optim, name)

    def feed(params, t):
        for p, c, n in zip(params, curv, noise[t]):
            p.grad = tg.tensor((c * p.numpy() + n).astype(np.float32))

    straight = [tg.tensor(x, dtype="float32", requires_grad=True) for x in starts]
    opt = cls(straight, **kw)
    for t in range(30):
        feed(straight, t)
        opt.step()

    resumed = [tg.tensor(x, dtype="float32", requires_grad=True) for x in starts]
    first = cls(resumed, **kw)
    for t in range(12):
        feed(resumed, t)
        first.step()
    saved = _roundtrip(first.state_dict(), tmp_path)
    params = [tg.tensor(p.numpy().copy(), requires_grad=True) for p in resumed]
    second = cls(params, **kw)
    second.load_state_dict(saved)
    for t in range(12, 30):
        feed(params, t)
        second.step()
    for p, q in zip(straight, params):
        assert np.array_equal(p.numpy(), q.numpy())
    assert second.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_load_state_dict_accepts_what_a_checkpoint_file_hands_back():
    """NumPy scalars and arrays instead of Python numbers and tuples, string ids."""
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([p], lr=0.1, betas=(0.8, 0.9))
    p.grad = tg.tensor([1.0, -1.0])
    opt.step()
    sd = opt.state_dict()
    group = {k: (np.array(v) if not isinstance(v, list) else np.array(v))
             for k, v in sd["param_groups"][0].items()}
    state = {"0": {k: v.numpy() for k, v in sd["state"][0].items()}}
    fresh = optim.Adam([p], lr=0.5)
    fresh.load_state_dict({"state": state, "param_groups": [group]})
    g = fresh.param_groups[0]
    assert g["betas"] == (0.8, 0.9) and type(g["betas"][0]) is float
    assert g["lr"] == 0.1 and g["amsgrad"] is False and g["params"] == [p]
    assert isinstance(fresh.state[p]["exp_avg"], tg.Tensor)
    fresh.step()


def test_docstring_examples_run():
    import doctest

    from tinygrad_opt.optim import adam, sgd

    for module in (sgd, adam):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_state_dict_is_a_snapshot_and_packs_ids_in_group_order():
    a, b, c = (tg.tensor([1.0, 2.0], requires_grad=True) for _ in range(3))
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.1}])
    for p in (a, c):
        p.grad = tg.tensor([0.5, -0.5])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sorted(sd["state"]) == [0, 2]  # b had no gradient: no state
    assert sd["param_groups"][1]["lr"] == 0.1 and sd["param_groups"][0]["lr"] == 1e-3
    before = sd["state"][0]["exp_avg"].numpy().copy()
    opt.step()
    assert np.array_equal(sd["state"][0]["exp_avg"].numpy(), before)
    assert float(sd["state"][0]["step"]) == 1.0


def test_load_state_dict_casts_to_each_parameter_dtype():
    p64 = tg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([p64], lr=0.1)
    p64.grad = tg.tensor([1.0, 1.0], dtype="float64")
    opt.step()
    p32 = tg.tensor([1.0, 2.0], requires_grad=True)
    fresh = optim.Adam([p32], lr=0.1)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state[p32]["exp_avg"].dtype == np.float32
    assert fresh.state[p32]["step"].shape == () and float(fresh.state[p32]["step"]) == 1.0


def test_load_state_dict_checks_groups_and_sizes():
    a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([2.0], requires_grad=True)
    two = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    one = optim.SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        one.load_state_dict(two.state_dict())
    small = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        small.load_state_dict(one.state_dict())
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        small.load_state_dict({"lr": 0.1})



def _stepped(cls, params, **kw):
    opt = cls(params, **kw)
    for p in params:
        p.grad = tg.ones(*p.shape)
    opt.step()
    return opt


def _snapshot(opt):
    return ([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
            {id(p): {k: v.numpy().copy() for k, v in st.items()} for p, st in opt.state.items()})


@pytest.mark.parametrize("source,target,words", [
    ("Adam", "SGD", "hyperparameters amsgrad, betas"),
    ("SGD", "Adam", "hyperparameters dampening, momentum"),
    ("RMSprop", "Adagrad", "hyperparameters alpha"),
])
def test_load_state_dict_refuses_another_optimizer_and_changes_nothing(source, target, words):
    """Adam's state used to be accepted by SGD: its lr replaced SGD's, momentum vanished,
    and the next step died with a bare KeyError."""
    kw = {"SGD": dict(lr=0.5, momentum=0.9)}.get(target, dict(lr=0.5))
    mine = _stepped(getattr(optim, target), [tg.tensor([1.0, 2.0], requires_grad=True)], **kw)
    before = _snapshot(mine)
    other = _stepped(getattr(optim, source), [tg.tensor([3.0, 4.0], requires_grad=True)])
    with pytest.raises(ValueError, match=f"{words}.*another kind of optimizer"):
        mine.load_state_dict(other.state_dict())
    after = _snapshot(mine)
    assert before[0] == after[0]
    assert all(np.array_equal(before[1][k][n], after[1][k][n]) for k in before[1]
               for n in before[1][k])
    mine.step()  # still a working optimizer


def test_load_state_dict_refuses_foreign_state_names_and_wrong_shapes():
    params = [tg.tensor([1.0, 2.0], requires_grad=True)]
    adam = _stepped(optim.Adam, params)
    saved = adam.state_dict()
    saved["state"][0]["momentum_buffer"] = saved["state"][0].pop("exp_avg")
    with pytest.raises(ValueError, match="holds momentum_buffer, which Adam does not have"):
        adam.load_state_dict(saved)
    bigger = _stepped(optim.Adam, [tg.tensor([1.0, 2.0, 3.0], requires_grad=True)])
    before = adam.state[params[0]]["exp_avg"].numpy().copy()
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(3,\) but the "
                                         r"parameter has shape \(2,\)"):
        adam.load_state_dict(bigger.state_dict())
    np.testing.assert_array_equal(adam.state[params[0]]["exp_avg"].numpy(), before)


def test_load_state_dict_keeps_hyperparameters_the_snapshot_lacks():
    """A snapshot from before an option existed (here Adam's bias_correction) loads."""
    adam = _stepped(optim.Adam, [tg.tensor([1.0, 2.0], requires_grad=True)], lr=0.1)
    saved = adam.state_dict()
    del saved["param_groups"][0]["bias_correction"]
    saved["param_groups"][0]["lr"] = 0.2
    adam.load_state_dict(saved)
    assert adam.param_groups[0]["lr"] == 0.2 and adam.param_groups[0]["bias_correction"]
    adam.step()


# -- the lecture's forms -------------------------------------------------------------

def test_lecture_momentum_equals_pytorch_momentum_while_lr_is_constant():
    for nesterov in (False, True):
        kw = dict(lr=0.05, momentum=0.9, nesterov=nesterov)
        a = _run_ours("SGD", kw, 100)
        b = _run_ours("SGD", dict(kw, momentum_form="lecture"), 100)
        for x, y in zip(a, b):
            for u, v in zip(x, y):
                np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def test_lecture_momentum_differs_when_lr_changes():
    lrs = [0.1] * 20 + [0.01] * 20  # a step decay at step 20
    kw = dict(lr=0.1, momentum=0.9)
    a = _run_ours("SGD", kw, 40, lrs=lrs)
    b = _run_ours("SGD", dict(kw, momentum_form="lecture"), 40, lrs=lrs)
    # identical up to the change, then apart: PyTorch's form rescales the whole
    # velocity by the new lr at once, the lecture's only the new gradients
    np.testing.assert_allclose(a[19][0], b[19][0], rtol=1e-10)
    gap = max(np.max(np.abs(x[0] - y[0])) for x, y in zip(a[20:], b[20:]))
    assert gap > 1e-2
    # and each still follows its own documented rule, with the schedule
    for form, path in (("pytorch", a), ("lecture", b)):
        ref = _run_reference("SGD", dict(kw, momentum_form=form), 40, lrs=lrs)
        for x, y in zip(path, ref):
            np.testing.assert_allclose(x[0], y[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_eps_inside_sqrt_matters_only_for_tiny_gradients(name):
    def final_step(scale):
        x = tg.tensor([1.0, -1.0], dtype="float64", requires_grad=True)
        out = []
        for inside in (False, True):
            x.data[...] = [1.0, -1.0]
            opt = getattr(optim, name)([x], lr=0.01, eps_inside_sqrt=inside)
            for _ in range(5):
                x.grad = tg.tensor(scale * x.numpy(), dtype="float64")
                opt.step()
            out.append(1.0 - x.numpy()[0])
        return out

    outside, inside = final_step(1.0)  # v̂ ≈ 1e-2..1 ≫ ε: the same steps to ~1e-7
    assert abs(outside - inside) < 1e-6 * abs(outside)
    outside, inside = final_step(1e-6)  # v̂ ≈ 1e-12 ≪ ε = 1e-8: inside damps 100x
    assert outside > 50 * inside > 0


# -- the Optimizer contract -----------------------------------------------------------

def test_param_groups_are_filled_from_defaults():
    a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([2.0], requires_grad=True)
    opt = optim.SGD([{"params": a}, {"params": [b], "momentum": 0.5}], lr=0.1)
    assert opt.param_groups[0]["params"] == [a]
    assert opt.param_groups[0]["momentum"] == 0 and opt.param_groups[1]["momentum"] == 0.5
    assert all(g["lr"] == 0.1 and g["nesterov"] is False for g in opt.param_groups)
    c = tg.tensor([3.0], requires_grad=True)
    opt.add_param_group({"params": [c], "lr": 0.2})
    assert opt.param_groups[2]["lr"] == 0.2 and opt.param_groups[2]["dampening"] == 0
    assert "Parameter Group 2" in repr(opt)


def test_adagrad_state_for_a_group_added_later():
    a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([2.0], requires_grad=True)
    opt = optim.Adagrad([a], lr=0.1, initial_accumulator_value=0.5)
    assert set(opt.state[a]) == {"step", "sum"}  # eager, as PyTorch
    opt.add_param_group({"params": [b], "initial_accumulator_value": 1.0})
    a.grad, b.grad = tg.tensor([1.0]), tg.tensor([1.0])
    opt.step()
    assert float(opt.state[b]["sum"]) == 2.0 and float(opt.state[b]["step"]) == 1.0


def test_a_deep_copy_steps_itself_not_the_original():
    x = tg.tensor([1.0], requires_grad=True)
    opt = optim.SGD([x], lr=0.5)
    optim.lr_scheduler.StepLR(opt, 2)  # wraps opt.step
    twin = copy.deepcopy(opt)
    y = twin.param_groups[0]["params"][0]
    y.grad = tg.tensor([1.0])
    twin.step()
    assert y.item() == 0.5 and x.item() == 1.0


def test_params_may_be_a_generator():
    params = [tg.tensor([1.0], requires_grad=True) for _ in range(3)]
    opt = optim.Adam(p for p in params)
    assert opt.param_groups[0]["params"] == params


def test_zero_grad_never_writes_into_a_gradient():
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    shared = np.array([3.0, 4.0], dtype=np.float32)
    p.grad = tg.Tensor(shared)
    opt.zero_grad(set_to_none=False)
    assert np.array_equal(shared, [3.0, 4.0])  # the old array is untouched
    assert np.array_equal(p.grad.numpy(), [0.0, 0.0]) and p.grad.data is not shared
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_step_never_modifies_the_gradient(name, kw):
    p = tg.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    opt = getattr(optim, name)([p], **kw)
    g = np.array([[0.3, -0.2], [1.0, 0.0]], dtype=np.float32)
    before = g.copy()
    for _ in range(3):
        p.grad = tg.Tensor(g)
        opt.step()
    assert np.array_equal(g, before)


def test_step_runs_the_closure_with_grad_and_returns_its_loss():
    x = tg.tensor([2.0], requires_grad=True)
    opt = optim.SGD([x], lr=0.25)

    def closure():
        assert tg.is_grad_enabled()
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    with tg.no_grad():
        loss = opt.step(closure)
    assert float(loss) == 4.0 and x.item() == 1.0
    assert opt.step() is None


def test_parameters_without_gradient_are_skipped():
    a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([2.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = tg.tensor([1.0])
    opt.step()
    assert b.item() == 2.0 and len(opt.state[b]) == 0 and a.item() != 1.0


STATE_NAMES = {
    ("SGD", "momentum"): {"momentum_buffer"},
    ("Adam", "amsgrad"): {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    ("AdamW", ""): {"step", "exp_avg", "exp_avg_sq"},
    ("Adagrad", ""): {"step", "sum"},
    ("RMSprop", "centered"): {"step", "square_avg", "grad_avg", "momentum_buffer"},
    ("Adadelta", ""): {"step", "square_avg", "acc_delta"},
    ("Adamax", ""): {"step", "exp_avg", "exp_inf"},
    ("NAdam", ""): {"step", "mu_product", "exp_avg", "exp_avg_sq"},
}


@pytest.mark.parametrize("name,flag", sorted(STATE_NAMES))
def test_state_has_pytorchs_names(name, flag):
    kw = {"momentum": dict(momentum=0.9), "amsgrad": dict(amsgrad=True),
          "centered": dict(centered=True, momentum=0.9), "": {}}[flag]
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = getattr(optim, name)([p], **kw)
    p.grad = tg.tensor([0.1, 0.2])
    opt.step()
    assert set(opt.state[p]) == STATE_NAMES[(name, flag)]
    for value in opt.state[p].values():
        assert isinstance(value, tg.Tensor) and not value.requires_grad


ERRORS = [  # (call, exception, words of the message)
    (lambda p: optim.SGD([p], lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=-0.5), ValueError, "Invalid momentum value"),
    (lambda p: optim.SGD([p], lr=0.1, weight_decay=-1), ValueError, "Invalid weight_decay"),
    (lambda p: optim.SGD([p], lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5, nesterov=True), ValueError,
     "zero dampening"),
    (lambda p: optim.SGD([p], momentum=0.9, momentum_form="sutskever"), ValueError,
     "Invalid momentum_form"),
    (lambda p: optim.SGD([p], momentum=0.9, dampening=0.1, momentum_form="lecture"),
     ValueError, "has no dampening"),
    (lambda p: optim.Adam([p], lr=-0.1), ValueError, "Invalid learning rate"),
    (lambda p: optim.Adam([p], betas=(1.0, 0.999)), ValueError,
     "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adam([p], betas=(0.9, -0.1)), ValueError, "beta parameter at index 1"),
    (lambda p: optim.Adam([p], betas=0.9), ValueError, "Invalid betas"),
    (lambda p: optim.Adam([p], eps=-1e-8), ValueError, "Invalid epsilon value"),
    (lambda p: optim.AdamW([p], weight_decay=-0.01), ValueError, "Invalid weight_decay"),
    (lambda p: optim.Adam([p], lr="fast"), ValueError, "lr must be a number"),
    (lambda p: optim.Adagrad([p], lr_decay=-1), ValueError, "Invalid lr_decay value"),
    (lambda p: optim.Adagrad([p], initial_accumulator_value=-1), ValueError,
     "initial_accumulator_value"),
    (lambda p: optim.RMSprop([p], alpha=-0.1), ValueError, "Invalid alpha value"),
    (lambda p: optim.RMSprop([p], momentum=-0.1), ValueError, "Invalid momentum value"),
    (lambda p: optim.Adadelta([p], rho=1.5), ValueError, "Invalid rho value: 1.5"),
    (lambda p: optim.Adamax([p], betas=(0.9, 1.0)), ValueError, "beta parameter at index 1"),
    (lambda p: optim.NAdam([p], momentum_decay=-1), ValueError, "Invalid momentum_decay"),
    (lambda p: optim.SGD([{"params": [p], "lr": -2.0}], lr=0.1), ValueError,
     "Invalid learning rate: -2.0"),
    (lambda p: optim.SGD({p}, lr=0.1), TypeError, "ordered collections"),
    (lambda p: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda p: optim.SGD(p, lr=0.1), TypeError, "iterable of Tensors or dicts"),
    (lambda p: optim.SGD({"params": [p]}, lr=0.1), TypeError, "wrap the param group in a list"),
    (lambda p: optim.SGD([p], lr=tg.tensor(0.1)), ValueError, "lr must be a number"),
    (lambda p: optim.SGD([p * 2], lr=0.1), ValueError, "can't optimize a non-leaf Tensor"),
    (lambda p: optim.SGD([p.numpy()], lr=0.1), TypeError, "can only optimize Tensors"),
    (lambda p: optim.SGD([p, p], lr=0.1), ValueError, "more than once"),
    (lambda p: optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1), ValueError,
     "more than one parameter group"),
    (lambda p: optim.SGD([p], lr=0.1).add_param_group([p]), TypeError,
     "param_group must be a dict"),
    (lambda p: optim.Optimizer([{"params": [p]}], {"lr": optim.required}), ValueError,
     "required optimization parameter lr"),
    (lambda p: optim.Optimizer([p], {}).step(), NotImplementedError, "_step_group"),
]


@pytest.mark.parametrize("call,exc,words", ERRORS, ids=[e[2] for e in ERRORS])
def test_error_table(call, exc, words):
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(exc) as info:
        call(p)
    message = str(info.value)
    assert words in message
    assert message.count(". ") <= 1 and "\n" not in message  # one sentence


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_device_arrays_without_a_gpu(name, kw):
    """On the strict CuPy stand-in: the same numbers bit for bit, no host round trip
    inside step() or zero_grad(), state on the parameter's device (step and
    mu_product on the host), and a checkpoint loads back onto the device."""
    strict_array = pytest.importorskip("strict_array")
    strict_array.install()
    starts, curv, noise = _problem(3)
    cpu = [tg.tensor(x, dtype="float32", requires_grad=True) for x in starts]
    dev = [tg.tensor(x, dtype="float32", requires_grad=True, device="strict") for x in starts]
    a, b = getattr(optim, name)(cpu, **kw), getattr(optim, name)(dev, **kw)
    grads = [[(c + n).astype(np.float32) for c, n in zip(curv, noise[t])] for t in range(4)]
    dgrads = [[tg.tensor(g, device="strict") for g in gs] for gs in grads]
    with strict_array.no_transfers():
        for t in range(4):
            for p, q, g, h in zip(cpu, dev, grads[t], dgrads[t]):
                p.grad, q.grad = tg.Tensor(g), h
            a.step()
            b.step()
        b.zero_grad(set_to_none=False)
    for p, q in zip(cpu, dev):
        assert np.array_equal(p.numpy(), q.numpy())
        assert q.grad.device == "strict:0"
    for key, value in b.state[dev[0]].items():
        assert value.device == ("cpu" if key in ("step", "mu_product") else "strict:0"), key
    fresh = getattr(optim, name)(dev, **kw)
    fresh.load_state_dict(a.state_dict())  # a CPU checkpoint onto device parameters
    for key, value in fresh.state[dev[0]].items():
        assert value.device == ("cpu" if key in ("step", "mu_product") else "strict:0"), key
        assert np.array_equal(value.numpy(), a.state[cpu[0]][key].numpy())


@pytest.mark.gpu
@pytest.mark.parametrize("name,kw", CONFIGS[::3], ids=IDS[::3])
def test_gpu_matches_cpu(name, kw):
    starts, curv, noise = _problem(3)
    cpu = [tg.tensor(x, requires_grad=True) for x in starts]
    gpu = [tg.tensor(x, requires_grad=True, device="cuda") for x in starts]
    a, b = getattr(optim, name)(cpu, **kw), getattr(optim, name)(gpu, **kw)
    for t in range(20):
        for p, q, c, n in zip(cpu, gpu, curv, noise[t]):
            g = (c * p.numpy() + n).astype(np.float32)
            p.grad, q.grad = tg.tensor(g), tg.tensor(g, device="cuda")
        a.step()
        b.step()
    for p, q in zip(cpu, gpu):
        assert q.device.startswith("cuda")
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-5, atol=1e-6)
    for key, value in b.state[gpu[0]].items():
        expected = "cpu" if key in ("step", "mu_product") else "cuda:0"
        assert value.device == expected, key
    saved = b.state_dict()
    fresh = getattr(optim, name)(gpu, **kw)
    fresh.load_state_dict(saved)
    for key, value in fresh.state[gpu[0]].items():
        assert value.device == ("cpu" if key in ("step", "mu_product") else "cuda:0")


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_without_bias_correction_is_the_lectures_adam_almost(amsgrad):
    """With a constant gradient, m_t = (1 - β₁ᵗ)g and v_t = (1 - β₂ᵗ)g², so "Adam (almost)"
    steps γ(1 - β₁ᵗ)/√(1 - β₂ᵗ): 3.16γ, 4.25γ, 4.95γ, ... where Adam steps γ."""
    lr, (b1, b2), eps = 1e-3, (0.9, 0.999), 1e-8
    x = tg.tensor([0.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([x], lr=lr, eps=eps, amsgrad=amsgrad, bias_correction=False)
    steps = []
    for _ in range(20):
        before = x.item()
        x.grad = tg.tensor([-2.0], dtype="float64")  # constant g = -2: steps go up
        opt.step()
        steps.append((x.item() - before) / lr)
    t = np.arange(1, 21)
    closed = 2 * (1 - b1 ** t) / (2 * np.sqrt(1 - b2 ** t) + eps)
    np.testing.assert_allclose(steps, closed, rtol=1e-10)
    np.testing.assert_allclose(steps[:3], [3.16, 4.25, 4.95], atol=6e-3)  # the slide's
    assert float(opt.state[x]["step"]) == 20  # the state counts steps as Adam's does
    unbiased = optim.Adam([x], lr=lr, eps=0.0, amsgrad=amsgrad)
    before = x.item()
    x.grad = tg.tensor([-2.0], dtype="float64")
    unbiased.step()
    assert (x.item() - before) / lr == pytest.approx(1.0, rel=1e-12)
