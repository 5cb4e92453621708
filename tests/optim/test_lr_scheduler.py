"""Learning-rate schedules: closed forms, PyTorch step by step, composition,
checkpoints and errors."""

import copy
import math
import warnings

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import optim
from tinygrad_opt.optim import lr_scheduler as S

BASE = (0.1, 0.02)  # two param groups with their own initial lr


def _optimizer(lib=None, cls="SGD"):
    """An optimizer with two groups; ``lib`` = torch builds PyTorch's twin."""
    if lib is None:
        a, b = tg.tensor([1.0], requires_grad=True), tg.tensor([2.0], requires_grad=True)
        return getattr(optim, cls)([{"params": [a]}, {"params": [b], "lr": BASE[1]}],
                                   lr=BASE[0])
    a, b = (lib.tensor([v], requires_grad=True) for v in (1.0, 2.0))
    return getattr(lib.optim, cls)([{"params": [a]}, {"params": [b], "lr": BASE[1]}], lr=BASE[0])


def _run(opt, sched, epochs, metrics=None):
    """The lrs used in epochs 0..epochs-1 (optimizer.step, then scheduler.step)."""
    out = []
    for t in range(epochs):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step(*(() if metrics is None else (metrics[t],)))
    return np.array(out)


def _closed(fn, epochs):
    return np.array([[base * fn(t) for base in BASE] for t in range(epochs)])


CLOSED_FORMS = [  # (name, build, factor(t) such that lr_t = α₀ · factor(t), epochs)
    ("StepLR", lambda o: S.StepLR(o, step_size=3, gamma=0.5), lambda t: 0.5 ** (t // 3), 20),
    ("MultiStepLR", lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     lambda t: 0.3 ** sum(m <= t for m in [2, 5, 5, 9]), 15),
    ("ExponentialLR", lambda o: S.ExponentialLR(o, gamma=0.9), lambda t: 0.9 ** t, 30),
    ("CosineAnnealingLR (lecture)", lambda o: S.CosineAnnealingLR(o, T_max=10),
     lambda t: 0.5 * (1 + math.cos(t * math.pi / 10)), 11),
    ("CosineAnnealingLR past T_max", lambda o: S.CosineAnnealingLR(o, T_max=7),
     lambda t: 0.5 * (1 + math.cos(t * math.pi / 7)), 30),
    ("LinearLR decay (lecture)", lambda o: S.LinearLR(o, 1.0, 0.0, total_iters=10),
     lambda t: 1 - min(t, 10) / 10, 14),
    ("LinearLR", lambda o: S.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=4),
     lambda t: 0.25 + 0.5 * min(t, 4) / 4, 8),
    ("LambdaLR", lambda o: S.LambdaLR(o, lambda t: 1 / (t + 1) ** 2), lambda t: 1 / (t + 1) ** 2,
     10),
    ("InverseTimeLR (lecture)", lambda o: S.InverseTimeLR(o, decay_rate=1.0),
     lambda t: 1 / (1 + t), 20),
    ("InverseTimeLR staircase", lambda o: S.InverseTimeLR(o, 0.5, decay_steps=3, staircase=True),
     lambda t: 1 / (1 + 0.5 * (t // 3)), 20),
    ("InverseSqrtLR (lecture)", lambda o: S.InverseSqrtLR(o), lambda t: 1 / math.sqrt(t + 1), 20),
    ("InverseSqrtLR warmup", lambda o: S.InverseSqrtLR(o, warmup_steps=4),
     lambda t: (t + 1) / 4 if t + 1 < 4 else math.sqrt(4 / (t + 1)), 20),
    ("CosineAnnealingWarmRestarts", lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
     lambda t: 0.5 * (1 + math.cos(math.pi * _sgdr(t, 3, 2)[0] / _sgdr(t, 3, 2)[1])), 25),
    ("LinearWarmup + cosine", lambda o: S.LinearWarmup(S.CosineAnnealingLR(o, T_max=10), 5),
     lambda t: t / 5 if t < 5 else 0.5 * (1 + math.cos((t - 5) * math.pi / 10)), 16),
    ("LinearWarmup + inverse time", lambda o: S.LinearWarmup(S.InverseTimeLR(o, 0.5), 4, 0.2),
     lambda t: 0.2 + 0.8 * t / 4 if t < 4 else 1 / (1 + 0.5 * (t - 4)), 12),
    ("LinearWarmup + step", lambda o: S.LinearWarmup(S.StepLR(o, 2, 0.5), 3),
     lambda t: t / 3 if t < 3 else 0.5 ** ((t - 3) // 2), 12),
    ("SequentialLR", lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.5, 1.0, 2),
                                                  S.ExponentialLR(o, 0.8)], milestones=[3]),
     lambda t: 0.5 + 0.5 * min(t, 2) / 2 if t < 3 else 0.8 ** (t - 3), 10),
    ("ConstantLR", lambda o: S.ConstantLR(o, factor=0.25, total_iters=4),
     lambda t: 0.25 if t < 4 else 1.0, 8),
    ("MultiplicativeLR", lambda o: S.MultiplicativeLR(o, lambda t: 1 / (t + 1)),
     lambda t: 1 / math.factorial(t + 1), 10),
    ("PolynomialLR", lambda o: S.PolynomialLR(o, total_iters=6, power=2.0),
     lambda t: (1 - min(t, 6) / 6) ** 2, 9),
    ("ChainedScheduler", lambda o: S.ChainedScheduler([S.ConstantLR(o, 0.1, total_iters=3),
                                                       S.ExponentialLR(o, gamma=0.9)]),
     lambda t: (0.1 if t < 3 else 1.0) * 0.9 ** t, 10),
]


def _sgdr(t, T0, mult):
    """(T_cur, T_i) of SGDR at epoch t."""
    Ti = T0
    while t >= Ti:
        t -= Ti
        Ti *= mult
    return t, Ti


@pytest.mark.parametrize("name,build,factor,epochs", CLOSED_FORMS, ids=[c[0] for c in CLOSED_FORMS])
def test_schedule_matches_its_closed_form(name, build, factor, epochs):
    opt = _optimizer()
    sched = build(opt)
    lrs = _run(opt, sched, epochs)
    np.testing.assert_allclose(lrs, _closed(factor, epochs), rtol=1e-12, atol=1e-15)
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE)


TORCH_CASES = [
    ("StepLR", lambda L, o: L.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", lambda L, o: L.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", lambda L, o: L.ExponentialLR(o, gamma=0.93)),
    ("CosineAnnealingLR", lambda L, o: L.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts",
     lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001)),
    ("LinearLR", lambda L, o: L.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6)),
    ("LambdaLR", lambda L, o: L.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1 / (1 + e)])),
    ("SequentialLR", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, 1.0, 4), L.CosineAnnealingLR(o, T_max=10)], milestones=[5])),
    ("SequentialLR x3", lambda L, o: L.SequentialLR(
        o, [L.ExponentialLR(o, 0.5), L.StepLR(o, 2), L.MultiStepLR(o, [1, 3])],
        milestones=[2, 7])),
    ("ConstantLR", lambda L, o: L.ConstantLR(o, factor=0.3, total_iters=6)),
    ("MultiplicativeLR", lambda L, o: L.MultiplicativeLR(o, [lambda e: 0.95,
                                                             lambda e: 1 - 0.01 * e])),
    ("PolynomialLR", lambda L, o: L.PolynomialLR(o, total_iters=30, power=1.7)),
    ("ChainedScheduler", lambda L, o: L.ChainedScheduler(
        [L.ConstantLR(o, 0.5, total_iters=5), L.ExponentialLR(o, 0.9),
         L.CosineAnnealingLR(o, T_max=12)])),
] + [  # the cyclical schedules, which also move the momentum (compared below)
    ("CyclicLR triangular", lambda L, o: L.CyclicLR(o, 0.01, [0.1, 0.05], step_size_up=4)),
    ("CyclicLR triangular2", lambda L, o: L.CyclicLR(o, [0.01, 0.002], 0.1, step_size_up=3,
                                                     step_size_down=5, mode="triangular2")),
    ("CyclicLR exp_range", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=5,
                                                   mode="exp_range", gamma=0.97,
                                                   base_momentum=0.7, max_momentum=0.95)),
    ("CyclicLR scale_fn", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=3,
                                                  scale_fn=lambda x: 1 / (1 + x),
                                                  scale_mode="iterations",
                                                  cycle_momentum=False)),
    ("OneCycleLR cos", lambda L, o: L.OneCycleLR(o, [0.5, 0.1], total_steps=40)),
    ("OneCycleLR linear", lambda L, o: L.OneCycleLR(o, 0.5, epochs=4, steps_per_epoch=11,
                                                    pct_start=0.25, anneal_strategy="linear",
                                                    div_factor=10.0, final_div_factor=100.0)),
    ("OneCycleLR three_phase", lambda L, o: L.OneCycleLR(o, 0.3, total_steps=41,
                                                         three_phase=True, base_momentum=0.8,
                                                         max_momentum=[0.9, 0.99])),
]
CYCLICAL = [c for c in TORCH_CASES if c[0].startswith(("CyclicLR", "OneCycleLR"))]


@pytest.mark.parametrize("name,build", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_step_by_step(name, build):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizer(), _optimizer(torch)
    a = build(S, ours)
    b = build(torch.optim.lr_scheduler, theirs)
    assert a.get_last_lr() == b.get_last_lr()
    for _ in range(40):
        ours.step()
        theirs.step()
        a.step()
        b.step()
        assert getattr(a, "last_epoch", None) == getattr(b, "last_epoch", None)  # not chained
        np.testing.assert_allclose(a.get_last_lr(), b.get_last_lr(), rtol=1e-13, atol=0)
        np.testing.assert_allclose([g["lr"] for g in ours.param_groups],
                                   [g["lr"] for g in theirs.param_groups], rtol=1e-13)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "LinearLR", "CosineAnnealingWarmRestarts", "ConstantLR",
                                  "PolynomialLR"])
def test_step_with_an_epoch_uses_the_closed_form_as_torch(name):
    torch = pytest.importorskip("torch")
    build = dict(TORCH_CASES)[name]
    ours, theirs = _optimizer(), _optimizer(torch)
    a, b = build(S, ours), build(torch.optim.lr_scheduler, theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in (3, 7, 2, 11, 11, 0, 25):
            ours.step()
            theirs.step()
            a.step(epoch)
            b.step(epoch)
            np.testing.assert_allclose(a.get_last_lr(), b.get_last_lr(), rtol=1e-13)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


@pytest.mark.parametrize("cls", ["SGD", "Adam"])
@pytest.mark.parametrize("name,build", CYCLICAL, ids=[c[0] for c in CYCLICAL])
def test_cyclical_schedules_move_momentum_and_beta1_as_torch(name, build, cls):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizer(cls=cls), _optimizer(torch, cls=cls)
    a = build(S, ours)
    b = build(torch.optim.lr_scheduler, theirs)
    for _ in range(40):
        assert _momenta(ours) == pytest.approx(_momenta(theirs), rel=1e-13, abs=0)
        assert [g["lr"] for g in ours.param_groups] == \
            pytest.approx([g["lr"] for g in theirs.param_groups], rel=1e-13, abs=0)
        ours.step()
        theirs.step()
        a.step()
        b.step()
    keys = {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"}
    for g, h in zip(ours.param_groups, theirs.param_groups):
        assert {k: g[k] for k in keys & set(h)} == {k: h[k] for k in keys & set(h)}
        assert g.get("betas", (0, 0))[1] == h.get("betas", (0, 0))[1]  # β₂ untouched


def test_cyclic_lr_closed_form_triangles():
    """triangular2 with up 2, down 2 from 0.01 to 0.09: heights 0.08, 0.04, 0.02..."""
    opt = _optimizer()
    sched = S.CyclicLR(opt, 0.01, 0.09, step_size_up=2, mode="triangular2",
                       cycle_momentum=False)
    lrs = _run(opt, sched, 12)[:, 0]
    height = 0.08 * 0.5 ** (np.arange(12) // 4)
    np.testing.assert_allclose(lrs, 0.01 + height * np.tile([0, 0.5, 1, 0.5], 3), rtol=1e-12)


def test_one_cycle_closed_form_ends():
    """Starts at max_lr / div_factor, peaks at max_lr after pct_start, ends at
    (max_lr / div_factor) / final_div_factor; the momentum mirrors it."""
    opt = _optimizer(cls="Adam")
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=20, pct_start=0.55, div_factor=10.0,
                         final_div_factor=1e3)
    lrs, beta1 = [], []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        beta1.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(1e-4)
    assert np.argmax(lrs) == 10 and lrs[10] == pytest.approx(1.0)
    assert np.all(np.diff(lrs[:11]) > 0) and np.all(np.diff(lrs[10:]) < 0)
    assert (beta1[0], beta1[10], beta1[-1]) == pytest.approx((0.95, 0.85, 0.95))
    assert np.argmin(beta1) == 10 and opt.param_groups[0]["betas"][1] == 0.999


PLATEAU = [
    dict(),
    dict(mode="max", factor=0.5, patience=2, threshold=0.1, threshold_mode="abs", cooldown=2),
    dict(patience=0, min_lr=[0.05, 0.0], cooldown=1),
    dict(patience=1, factor=0.5, threshold=0.05, eps=0.01),
]


@pytest.mark.parametrize("kw", PLATEAU)
def test_reduce_lr_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1, 0.5, 10), 0.5 + 0.01 * rng.standard_normal(40),
                              np.linspace(0.5, 2, 10)])
    ours, theirs = _optimizer(), _optimizer(torch)
    a = S.ReduceLROnPlateau(ours, **kw)
    b = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw)
    for m in metrics:
        a.step(m)
        b.step(m)
        assert a.get_last_lr() == b.get_last_lr()
        assert (a.best, a.num_bad_epochs, a.cooldown_counter) == \
            (b.best, b.num_bad_epochs, b.cooldown_counter)
    assert a.get_last_lr()[0] < BASE[0]


def test_reduce_lr_on_plateau_by_hand():
    opt = _optimizer()
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95]:  # best 0.9, three bad epochs
        sched.step(loss)
    assert sched.get_last_lr() == [BASE[0] * 0.5, BASE[1] * 0.5]
    sched.step(tg.tensor(0.5))  # a one-element tensor works as a metric
    assert sched.best == 0.5 and isinstance(sched, S.LRScheduler)


# -- checkpoints ------------------------------------------------------------------

def _roundtrip(state, tmp_path, name):
    try:
        from tinygrad_opt import serialization  # noqa: F401
    except ImportError:
        return copy.deepcopy(state)
    path = tmp_path / f"{name}.npz"
    tg.save(state, str(path))
    return tg.load(str(path))


RESUMABLE = [(c[0], c[1]) for c in CLOSED_FORMS] + [
    ("ReduceLROnPlateau", lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, cooldown=1)),
] + [(name, lambda o, build=build: build(S, o)) for name, build in CYCLICAL]


@pytest.mark.parametrize("name,build", RESUMABLE, ids=[c[0] for c in RESUMABLE])
def test_state_dict_round_trip_resumes_the_schedule(name, build, tmp_path):
    metrics = list(np.abs(np.sin(np.arange(30.0))) + 1.0)
    plateau = name == "ReduceLROnPlateau"
    opt = _optimizer()
    straight = _run(opt, build(opt), 30, metrics if plateau else None)

    opt = _optimizer()
    sched = build(opt)
    first = _run(opt, sched, 12, metrics[:12] if plateau else None)
    saved_opt = _roundtrip(opt.state_dict(), tmp_path, "opt")
    saved = _roundtrip(sched.state_dict(), tmp_path, "sched")

    # PyTorch's order: build the scheduler, then load the optimizer, then the scheduler
    fresh = _optimizer()
    resumed = build(fresh)
    fresh.load_state_dict(saved_opt)
    resumed.load_state_dict(saved)
    assert getattr(resumed, "last_epoch", None) == getattr(sched, "last_epoch", None)
    rest = _run(fresh, resumed, 18, metrics[12:] if plateau else None)
    np.testing.assert_array_equal(np.concatenate([first, rest]), straight)


def test_state_dict_holds_only_plain_values():
    opt = _optimizer()
    sched = S.LinearWarmup(S.MultiStepLR(opt, [3, 6]), 2)
    state = sched.state_dict()

    def plain(v):
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (bool, int, float, str))

    assert plain(state), state
    assert state["_schedulers"][1]["milestones"] == [3, 6]
    assert state["_schedulers"][0]["lr_lambdas"] == [{"start_factor": 0.0, "warmup_steps": 2}] * 2


# -- semantics and errors ----------------------------------------------------------

def test_scheduler_stepped_before_the_optimizer_warns():
    opt = _optimizer()
    sched = S.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt = _optimizer()
    sched = S.StepLR(opt, 2)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()


def test_resuming_with_last_epoch_needs_initial_lr():
    opt = _optimizer()
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(opt, 2, last_epoch=4)
    S.StepLR(opt, 2)  # sets initial_lr
    resumed = S.ExponentialLR(opt, 0.5, last_epoch=4)
    assert resumed.last_epoch == 5


def test_schedulers_compose_with_any_optimizer():
    opt = _optimizer(cls="Adam")
    sched = S.LinearWarmup(S.InverseSqrtLR(opt), warmup_steps=3)
    lrs = _run(opt, sched, 6)[:, 0]
    np.testing.assert_allclose(lrs, [0.0, 0.1 / 3, 0.2 / 3, 0.1, 0.1 / math.sqrt(2),
                                     0.1 / math.sqrt(3)], rtol=1e-12)


SCHED_ERRORS = [
    (lambda o: S.StepLR("opt", 2), TypeError, "is not an Optimizer"),
    (lambda o: S.StepLR(o, 0), ValueError, "step_size must be a positive integer"),
    (lambda o: S.LambdaLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas"),
    (lambda o: S.LinearLR(o, start_factor=0.0), ValueError, "Starting multiplicative factor"),
    (lambda o: S.LinearLR(o, end_factor=1.5), ValueError, "Ending multiplicative factor"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be positive"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "positive integer T_0"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError, "T_mult >= 1"),
    (lambda o: S.InverseTimeLR(o, decay_rate=-1), ValueError, "decay_rate must be >= 0"),
    (lambda o: S.InverseSqrtLR(o, warmup_steps=-1), ValueError, "warmup_steps must be >= 0"),
    (lambda o: S.LinearWarmup(S.StepLR(o, 2), 0), ValueError, "warmup_steps must be a positive"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], [3]), ValueError,
     "one more than the number of milestone points"),
    (lambda o: S.SequentialLR(o, [], []), ValueError, "at least one scheduler"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(_optimizer(), 2)], [3]), ValueError,
     "same optimizer"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.ReduceLROnPlateau(o)], [3]), ValueError,
     "does not support ReduceLROnPlateau"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0"),
    (lambda o: S.ReduceLROnPlateau(o, mode="up"), ValueError, "mode 'up' is unknown"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold mode 'x'"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs"),
    (lambda o: S.LambdaLR(o, 0.5), TypeError, "lr_lambda should be a function"),
    (lambda o: S.ConstantLR(o, factor=1.5), ValueError, "Constant multiplicative factor"),
    (lambda o: S.ChainedScheduler([]), ValueError, "at least one scheduler to be chained"),
    (lambda o: S.ChainedScheduler([S.StepLR(o, 2), S.StepLR(_optimizer(), 2)]), ValueError,
     "same optimizer"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, mode="sawtooth"), ValueError, "mode 'sawtooth' is unknown"),
    (lambda o: S.CyclicLR(o, [0.1], 1.0), ValueError, "base_lr must have the same length"),
    (lambda o: S.CyclicLR(optim.Adagrad([tg.tensor([1.0], requires_grad=True)]), 0.1, 1.0),
     ValueError, "must support momentum or beta1"),
    (lambda o: S.OneCycleLR(o, 1.0), ValueError, "either total_steps OR"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=0), ValueError, "positive integer total_steps"),
    (lambda o: S.OneCycleLR(o, 1.0, 10, pct_start=1), ValueError, "float between 0 and 1"),
    (lambda o: S.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"), ValueError, "'cos' or 'linear'"),
]


@pytest.mark.parametrize("call,exc,words", SCHED_ERRORS, ids=[e[2] for e in SCHED_ERRORS])
def test_scheduler_error_table(call, exc, words):
    with pytest.raises(exc, match=words.replace("(", "\\(")):
        call(_optimizer())
