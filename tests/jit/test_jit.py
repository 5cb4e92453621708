"""tg.jit: a captured training step replays bit for bit what eager computes, and refuses
what it cannot replay with one sentence."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.capture import CaptureError

F = nn.functional
SIZES = [3, 8, 8, 4]
STEPS = 100

# Every first-order optimizer, with the options that change its arithmetic.
CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, maximize=False)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
]
# Schedulers change the lr every call: the replay must read it, not bake it in.
SCHEDULERS = [
    None,
    lambda opt: optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5),
    lambda opt: optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS),
]


def batches(dtype, n=STEPS, batch=16, seed=0):
    """A different batch every call: the replay must read each one."""
    rng = np.random.default_rng(seed)
    return [(tg.tensor(rng.standard_normal((batch, SIZES[0])).astype(dtype)),
             tg.tensor(rng.integers(0, SIZES[-1], batch))) for _ in range(n)]


def mlp(dtype=np.float32, seed=0):
    """An MLP whose weights come from a generator of its own (threads may build several)."""
    rng = np.random.default_rng(seed)
    model = nn.MLP(SIZES).to(dtype)
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return model


def train(name, kw, dtype, jitted, schedule=None, clip=None, data=None):
    """Losses and final parameters of STEPS steps, eager or under tg.jit."""
    model = mlp(dtype)
    opt = getattr(optim, name)(model.parameters(), **kw)
    scheduler = schedule(opt) if schedule else None

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        return loss

    run = tg.jit(step) if jitted else step
    losses = [run(x, y).item() for x, y in (data or batches(dtype))]
    if jitted:
        assert run.replaying  # it did replay (not eager all along)
    return losses, [p.data.copy() for p in model.parameters()], opt


def assert_same(eager, jitted):
    (losses_e, params_e, opt_e), (losses_j, params_j, opt_j) = eager, jitted
    assert losses_e == losses_j  # bit for bit: == on Python floats
    for a, b in zip(params_e, params_j):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    state_e, state_j = opt_e.state_dict(), opt_j.state_dict()
    assert state_e["param_groups"] == state_j["param_groups"]
    for k, entry in state_e["state"].items():
        for name, value in entry.items():
            assert np.array_equal(np.asarray(value.data if hasattr(value, "data") else value),
                                  np.asarray(state_j["state"][k][name].data
                                             if hasattr(value, "data") else
                                             state_j["state"][k][name])), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_replay_equals_eager_bit_for_bit(name, kw, dtype):
    assert_same(train(name, kw, dtype, False), train(name, kw, dtype, True))


@pytest.mark.parametrize("schedule", SCHEDULERS[1:], ids=["StepLR", "OneCycleLR"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_schedulers_and_clipping_are_replayed(schedule, dtype):
    for name, kw in (("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01))):
        assert_same(train(name, kw, dtype, False, schedule, clip=0.5),
                    train(name, kw, dtype, True, schedule, clip=0.5))


def test_reduce_lr_on_plateau_reads_the_replayed_loss():
    def plateau(opt):
        return optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)

    def run(jitted):
        tg.manual_seed(0)
        model = nn.MLP(SIZES)
        opt = optim.SGD(model.parameters(), lr=0.5)
        scheduler = plateau(opt)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            scheduler.step(loss)
            return loss

        f = tg.jit(step) if jitted else step
        data = batches(np.float32, n=40)
        losses = [f(x, y).item() for x, y in data]
        return losses, opt.param_groups[0]["lr"]

    eager, jitted = run(False), run(True)
    assert eager == jitted and eager[1] < 0.5  # the plateau did cut the lr, the same way


def test_a_new_signature_records_again_and_stays_exact():
    data = batches(np.float32, n=30, batch=16) + batches(np.float32, n=30, batch=5, seed=1)
    data += batches(np.float32, n=10, batch=16, seed=2)
    assert_same(train("Adam", {"lr": 0.01}, np.float32, False, data=data),
                train("Adam", {"lr": 0.01}, np.float32, True, data=data))


def training_step(model, opt):
    """The plain step: zero_grad, forward, cross-entropy, backward, the optimizer's step."""
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _model_step():
    tg.manual_seed(0)
    model = nn.MLP(SIZES)
    opt = optim.SGD(model.parameters(), lr=0.1)
    return model, opt, training_step(model, opt)


def test_a_replaced_parameter_array_is_seen():
    (x, y), = batches(np.float32, n=1)
    results = []
    for jitted in (False, True):
        model, _opt, step = _model_step()
        f = tg.jit(step) if jitted else step
        for _ in range(4):
            f(x, y)
        first = next(iter(model.parameters()))
        first.data = np.zeros_like(first.data)  # the user replaces p.data between calls
        results.append([f(x, y).item() for _ in range(4)])
    assert results[0] == results[1]


def test_gradients_left_from_outside_are_not_overwritten():
    """zero_grad outside the function: a call that finds a gradient there must add to it,
    as eager does, not replay an assignment."""
    (x, y), = batches(np.float32, n=1)
    runs = []
    for jitted in (False, True):
        tg.manual_seed(0)
        model = nn.MLP(SIZES)
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        f = tg.jit(step) if jitted else step
        losses = []
        for k in range(8):
            if k != 5:  # the user forgets zero_grad once
                opt.zero_grad()
            losses.append(f(x, y).item())
        runs.append((losses, [p.data.copy() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_version_counters_hold_across_replays():
    (x, y), = batches(np.float32, n=1)
    model, _opt, step = _model_step()
    f = tg.jit(step)
    for _ in range(3):
        f(x, y)
    saved = (model(x) * 2).sum()  # a graph that saved the parameters
    f(x, y)  # a replay updates them in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


def test_returned_tensors_are_copies():
    (x, y), = batches(np.float32, n=1)
    _model, _opt, step = _model_step()
    f = tg.jit(step)
    losses = [f(x, y) for _ in range(5)]
    values = [loss.item() for loss in losses]
    assert len(set(values)) == 5 and values == sorted(values, reverse=True)


@pytest.mark.parametrize("body,words", [
    (lambda loss: loss.item(), "reads a tensor's value into Python"),
    (lambda loss: float(loss), "reads a tensor's value into Python"),
    (lambda loss: 1 if loss > 0 else 0, "takes a decision on a tensor's value"),
])
def test_reading_values_inside_is_refused(body, words):
    (x, y), = batches(np.float32, n=1)
    model, _opt, _step = _model_step()

    @tg.jit
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        body(loss)
        return loss

    with pytest.raises(CaptureError, match=words):
        step(x, y)
    assert all(type(p.data) is np.ndarray for p in model.parameters())  # nothing left traced


def test_dropout_in_training_mode_is_refused():
    (x, y), = batches(np.float32, n=1)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    f = tg.jit(lambda x, y: F.cross_entropy(model(x), y))
    with pytest.raises(CaptureError, match="random draw"):
        f(x, y)
    model.eval()  # no draw: captured
    eager = [F.cross_entropy(model(x), y).item() for _ in range(3)]
    assert [f(x, y).item() for _ in range(3)] == eager and f.replaying


def test_an_input_that_requires_grad_is_refused():
    x = tg.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pytest.raises(CaptureError, match="requires grad"):
        tg.jit(lambda x: (x * 2).sum())(x)


def test_a_changing_python_number_is_caught():
    (x, y), = batches(np.float32, n=1)
    model, _opt, _step = _model_step()
    scale = [1.0]

    def step(x, y):
        scale[0] += 1.0  # a value the capture cannot see change
        return F.cross_entropy(model(x), y) * scale[0]

    with pytest.raises(CaptureError, match="different array work"):
        f = tg.jit(step)
        f(x, y)
        f(x, y)


def test_accumulating_gradients_across_calls_is_refused():
    (x, y), = batches(np.float32, n=1)
    model, _opt, _step = _model_step()

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    f = tg.jit(step)
    f(x, y)
    with pytest.raises(CaptureError, match="zero_grad"):
        f(x, y)


def test_a_device_step_runs_eagerly_with_a_warning():
    """On a device (here the strict fake one that stands in for CuPy) the step runs eagerly."""
    import strict_array as strict
    strict.install()
    (x, y), = batches(np.float32, n=1)
    model, _opt, step = _model_step()
    model.to("strict:0")
    x, y = x.to("strict:0"), y.to("strict:0")
    f = tg.jit(step)
    with pytest.warns(UserWarning, match="runs eagerly"):
        first = f(x, y)
    later = [f(x, y) for _ in range(3)]
    assert all(type(t.data) is strict.StrictArray for t in [first, *later])
    assert not f.replaying


def test_forward_only_and_no_grad_steps():
    (x, y), = batches(np.float64, n=1)
    model = nn.MLP(SIZES).to(np.float64)

    @tg.jit
    def evaluate(x, y):
        with tg.no_grad():
            return F.cross_entropy(model(x), y), model(x).argmax(dim=1)

    eager = F.cross_entropy(model(x), y).item()
    for _ in range(4):
        loss, labels = evaluate(x, y)
        assert loss.item() == eager and labels.shape == (16,)
    assert evaluate.replaying


def test_threads_each_with_a_captured_step_match_their_eager_runs():
    import threading

    configs = [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.05, momentum=0.9)),
               ("RMSprop", dict(lr=0.005)), ("Adagrad", dict(lr=0.05))]
    expected = [train(name, kw, np.float32, False) for name, kw in configs]
    results, errors = [None] * len(configs), []

    def work(k):
        try:
            results[k] = train(*configs[k], np.float32, True)
        except Exception as error:  # reported below, with the thread's config
            errors.append((configs[k], error))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(configs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for eager, jitted in zip(expected, results):
        assert_same(eager, jitted)


def test_a_captured_function_called_inside_another_is_part_of_its_recording():
    (x, y), = batches(np.float32, n=1)
    model, opt, _step = _model_step()
    loss_of = tg.jit(lambda x, y: F.cross_entropy(model(x), y))

    def step(x, y):
        opt.zero_grad()
        loss = loss_of(x, y)  # a jitted function, called while `step` records
        loss.backward()
        opt.step()
        return loss

    _twin, _twin_opt, twin_step = _model_step()
    outer = tg.jit(step)
    assert [outer(x, y).item() for _ in range(5)] == [twin_step(x, y).item() for _ in range(5)]
    assert outer.replaying


def test_switching_a_module_to_training_mode_records_again():
    """Recorded in eval mode (dropout off), then model.train(): the next call must not replay
    the eval step; here it draws, which tg.jit refuses, rather than silently skip dropout."""
    (x, y), = batches(np.float32, n=1)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    model.eval()
    f = tg.jit(lambda x, y: F.cross_entropy(model(x), y))
    for _ in range(3):
        f(x, y)
    assert f.replaying
    model.train()
    with pytest.raises(CaptureError, match="random draw"):
        f(x, y)


def test_a_step_that_rebinds_data_matches_eager():
    """`w.data = ...` inside the function (a hand-written update): the replay writes the new
    values into the array it recorded, so later calls read them, as eager does."""
    (x, y), = batches(np.float32, n=1)
    runs = []
    for jitted in (False, True):
        model = mlp()

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            model.zero_grad()
            loss.backward()
            with tg.no_grad():
                for p in model.parameters():
                    p.data = (p - 0.1 * p.grad).data  # rebinds .data
            return loss

        f = tg.jit(step) if jitted else step
        runs.append([f(x, y).item() for _ in range(6)])
    assert runs[0] == runs[1] and f.replaying


def test_a_step_whose_guards_fail_every_call_says_so_and_runs_eagerly():
    """Gradients cleared by hand (`p.grad = None`, which a replay cannot redo) make every
    call record again; after a few, one warning, and eager from then on: still exact."""
    (x, y), = batches(np.float32, n=1)
    runs = []
    for jitted in (False, True):
        model = mlp()
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            for p in model.parameters():
                p.grad = None
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        f = tg.jit(step) if jitted else step
        if jitted:
            with pytest.warns(UserWarning, match="recorded again"):
                runs.append([f(x, y).item() for _ in range(12)])
        else:
            runs.append([f(x, y).item() for _ in range(12)])
    assert runs[0] == runs[1]


def test_boolean_mask_indexing_is_refused():
    x = tg.tensor(np.array([1.0, -2.0, 3.0], np.float32))
    with pytest.raises(CaptureError, match="boolean mask"):
        tg.jit(lambda x: x[x.data > 0].sum())(x)


def test_an_optimizer_step_with_a_closure_is_refused():
    """opt.step(closure) would, at a replay, re-evaluate with the recorded call's tensors."""
    (x, y), = batches(np.float64, n=1)
    model = mlp(np.float64)
    opt = optim.LBFGS(model.parameters(), lr=0.5)

    def step(x, y):
        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        return opt.step(closure)

    with pytest.raises(CaptureError, match="closure"):
        tg.jit(step)(x, y)


def test_returning_an_input_returns_the_new_one():
    data = batches(np.float32, n=5)
    f = tg.jit(lambda x, y: (x, (x * 2).sum()))
    for x, y in data:
        same, total = f(x, y)
        assert np.array_equal(same.data, x.data) and total.item() == (x * 2).sum().item()
    assert f.replaying


def test_a_hessian_vector_product_replays_exactly():
    """Double backward inside the function: tg.grad with create_graph, then a second grad."""
    model = mlp(np.float64)
    (x, y), = batches(np.float64, n=1)
    params = list(model.parameters())

    def hvp(*vs):
        loss = F.cross_entropy(model(x), y)
        grads = tg.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vs))
        return tg.grad(dot, params)

    f = tg.jit(hvp)
    rng = np.random.default_rng(1)
    for _ in range(5):
        vs = [tg.tensor(rng.standard_normal(p.shape)) for p in params]
        for a, b in zip(hvp(*vs), f(*vs)):
            assert np.array_equal(a.data, b.data)
    assert f.replaying


# Chains of ops, so that the recording meets what a single op never shows it: views of
# results, broadcasting both ways, reductions feeding elementwise ops, reused tensors.
UNARY = [lambda t: t.tanh(), lambda t: t.exp() * 0.1, lambda t: t.relu(), lambda t: t.sigmoid(),
         lambda t: t.T.reshape(3, 4), lambda t: t.sum(dim=0, keepdim=True) - t,
         lambda t: t.softmax(dim=-1), lambda t: t.abs().sqrt(), lambda t: t.max(dim=1)[0][:, None] * t,
         lambda t: t[::-1] * t, lambda t: t.clamp(-0.5, 0.5), lambda t: tg.cat([t[:, :2], t[:, 2:]], 1)]
BINARY = [lambda a, b: a * b, lambda a, b: a - b.mean(), lambda a, b: (a @ b.T) @ b * 0.1,
          lambda a, b: tg.maximum(a, b), lambda a, b: tg.where(a > b, a, b * 2)]


@pytest.mark.parametrize("seed", range(12))
def test_random_chains_of_ops_replay_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    a = tg.tensor(rng.standard_normal((3, 4)), dtype="float64", requires_grad=True)
    b = tg.tensor(rng.standard_normal((3, 4)), dtype="float64", requires_grad=True)
    plan = [(rng.integers(len(UNARY)), rng.integers(len(BINARY))) for _ in range(4)]

    def step(seed_grad):
        tg.nn.utils.zero_grads([a, b])
        x = a
        for unary, binary in plan:  # every op keeps the shape (3, 4)
            x = BINARY[binary](UNARY[unary](x), b)
        (x * seed_grad).sum().backward()
        return x, a.grad, b.grad

    f = tg.jit(step)
    for _ in range(4):
        a.data[...] = rng.standard_normal((3, 4))
        b.data[...] = rng.standard_normal((3, 4))
        g = tg.tensor(rng.standard_normal((3, 4)), dtype="float64")
        for e, j in zip(step(g), f(g)):
            assert (e is None and j is None) or np.array_equal(e.data, j.data, equal_nan=True)
    assert f.replaying


@pytest.mark.parametrize("setup", ["adam", "sgd-clip-per-iteration-schedule", "adamw-plateau"])
def test_fit_with_jit_keeps_the_history_bit_for_bit(setup):
    from tinygrad_opt.data import make_moons
    from tinygrad_opt.train import fit

    X, y = make_moons(230, noise=0.2, seed=0)  # 150 / 32: a short last batch, two signatures
    histories = []
    for jitted in (False, True):
        model = nn.MLP([2, 8, 8, 2])
        rng = np.random.default_rng(0)
        for p in model.parameters():
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
        options = {}
        if setup == "adam":
            opt = optim.Adam(model.parameters(), lr=0.01)
        elif setup.startswith("sgd"):
            opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            options = dict(clip_grad_norm=0.5, scheduler_interval="iteration",
                           scheduler=optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2,
                                                                   total_steps=6 * 5))
        else:
            opt = optim.AdamW(model.parameters(), lr=0.02)
            options = dict(scheduler=optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0))
        history = fit(model, nn.CrossEntropyLoss(), opt, (X[:150], y[:150]),
                      val=(X[150:], y[150:]), epochs=6, batch_size=32, progress=False,
                      jit=jitted, **options)
        histories.append((history, [p.data.copy() for p in model.parameters()]))
    (eager, params_e), (jit_run, params_j) = histories
    for column in ("iteration_loss", "train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert getattr(eager, column) == getattr(jit_run, column), column
    assert all(np.array_equal(a, b) for a, b in zip(params_e, params_j))


def test_the_train_step_of_fit_replays_and_still_stops_on_a_nan_loss():
    from tinygrad_opt.train_step import TrainStep

    model = mlp()
    step = TrainStep(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters()), jit=True)
    seen = []
    for x, y in batches(np.float32, n=4):
        _outputs, value = step(x, y, seen.append)
    assert step.first_order.replaying and seen[-1] == value and len(set(seen)) == 4

    def refuse_nan(value):
        if value != value:
            raise FloatingPointError("nan loss")

    before = [p.data.copy() for p in model.parameters()]
    bad = tg.tensor(np.full((16, 3), np.nan, np.float32))
    with pytest.raises(FloatingPointError):
        step(bad, y, refuse_nan)  # a replay: the check runs before anything is stepped
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))


def test_hooks_and_kfac_are_refused():
    """Python run by hooks and K-FAC's factor capture would not run at a replay."""
    (x, y), = batches(np.float32, n=1)
    model = mlp()
    handle = model.register_forward_hook(lambda module, args, output: None)
    with pytest.raises(CaptureError, match="hooks"):
        tg.jit(lambda x, y: F.cross_entropy(model(x), y))(x, y)
    handle.remove()
    w = next(iter(model.parameters()))
    w.register_hook(lambda g: g * 2)
    with pytest.raises(CaptureError, match="tensor hook"):
        tg.jit(lambda x, y: F.cross_entropy(model(x), y).backward())(x, y)

    model = mlp()
    with pytest.raises(CaptureError, match="callback"):
        tg.jit(training_step(model, optim.KFAC(model, lr=0.05)))(x, y)


def test_a_sweep_trial_with_jit_scores_the_same():
    from tinygrad_opt.study.sweep import train_trial

    config = {"optimizer": "adam", "lr": 0.02, "epochs": 3, "n_samples": 120, "cv": 2}
    eager, jitted = train_trial(config), train_trial({**config, "jit": True})
    for key in ("score", "val_loss", "val_acc", "train_loss", "fold_scores"):
        assert eager[key] == jitted[key], key


def test_arguments_that_change_every_call_end_in_eager_with_a_warning():
    x = tg.tensor(np.ones(3, np.float32))
    f = tg.jit(lambda x, scale: (x * scale).sum())
    with pytest.warns(UserWarning, match="different signatures"):
        values = [f(x, float(k)).item() for k in range(40)]
    assert values == [3.0 * k for k in range(40)] and len(f.steps) == 0
    with pytest.raises(CaptureError, match="NumPy array"):
        tg.jit(lambda x, scale: (x * scale).sum())(np.ones(3), 1.0)


def _with_ignored_labels(data, calls):
    """``data`` with some labels set to cross-entropy's ignore_index (-100) in the batches
    at ``calls``."""
    out = []
    for k, (x, y) in enumerate(data):
        if k in calls:
            labels = y.data.copy()
            labels[::3] = -100
            y = tg.tensor(labels)
        out.append((x, y))
    return out


@pytest.mark.parametrize("calls", [{1}, {1, 2, 3}, {40, 41, 42, 43, 44}, set(range(50, 100, 2))],
                         ids=["second", "early", "middle", "alternating"])
def test_batches_with_ignored_labels_replay_their_own_branch_bit_for_bit(calls):
    """Labels given as an input are checked before every replay: cross-entropy takes its
    plain path when no label is ignore_index and its masked one otherwise, eager and
    replayed alike, whatever batch brings ignored labels (the second, a run of them, or
    every other one)."""
    data = _with_ignored_labels(batches(np.float32), calls)
    assert_same(train("Adam", {"lr": 0.01}, np.float32, False, data=data),
                train("Adam", {"lr": 0.01}, np.float32, True, data=data))


def _labels_out_of_range_at_a_replay(step_of):
    """Run 5 good calls, one with a label out of range, then 3 good ones, eager and
    jitted; return the losses and the errors of each run."""
    data = batches(np.float64, n=9)
    bad = data[5][1].data.copy()
    bad[2] = SIZES[-1]  # one class too far
    data[5] = (data[5][0], tg.tensor(bad))
    runs = []
    for jitted in (False, True):
        model = mlp(np.float64)
        step = step_of(model, optim.Adam(model.parameters(), lr=0.01))
        run = tg.jit(step) if jitted else step
        losses, errors = [], []
        for x, y in data:
            try:
                losses.append(run(x, y).item())
            except IndexError as error:
                errors.append(str(error))
        runs.append((losses, errors, [p.data.copy() for p in model.parameters()]))
        if jitted:
            assert run.replaying
    return runs


def test_a_label_out_of_range_at_a_replay_raises_as_eager_does():
    (losses_e, errors_e, params_e), (losses_j, errors_j, params_j) = \
        _labels_out_of_range_at_a_replay(training_step)
    assert len(errors_e) == 1 and "out of bounds" in errors_e[0] and errors_j == errors_e
    assert losses_j == losses_e and all(map(np.array_equal, params_e, params_j))


def test_labels_computed_inside_the_step_are_checked_by_every_replay():
    """Labels the step computes itself (here a copy) are not an input: the masked path is
    recorded, and the range check runs as Python at every replay."""
    def step_of(model, opt):
        plain = training_step(model, opt)
        return lambda x, y: plain(x, y * 1)

    (losses_e, errors_e, params_e), (losses_j, errors_j, params_j) = \
        _labels_out_of_range_at_a_replay(step_of)
    assert len(errors_e) == 1 and errors_j == errors_e
    assert losses_j == losses_e and all(map(np.array_equal, params_e, params_j))


def test_the_replay_calls_every_recorded_call_in_order():
    from tinygrad_opt.jit import _compiled

    seen = []
    program = [(seen.append, (1,), {}), (np.copyto, (np.zeros(2), np.ones(2)), {}),
               (lambda a, *, out: seen.append((a, out)), ("a",), {"out": "b"}),
               (lambda **kw: seen.append(kw), (), {"class": 1, "not a name": 2}),
               (seen.append, (1,), {})]
    replay = _compiled(program)
    replay()
    replay()
    assert seen == [1, ("a", "b"), {"class": 1, "not a name": 2}, 1] * 2
    _compiled([])()  # an empty step replays as nothing
