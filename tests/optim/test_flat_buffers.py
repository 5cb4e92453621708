"""The flat-buffer path of the first-order optimizers (optim/flat.py) gives the
per-parameter path's bits exactly, keeps state_dict as it was, and falls back
whenever flattening would be unsafe (replaced arrays, new groups, 0-d or mixed
parameters, loaded or copied state)."""

import contextlib
import copy

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.optim import flat

CONFIGS = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    (optim.SGD, dict(lr=1e-3, momentum=0.9, nesterov=True, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, momentum_form="lecture")),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, momentum_form="lecture")),
    (optim.Adam, dict(lr=1e-2)),
    (optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    (optim.Adam, dict(lr=1e-3, maximize=True, eps_inside_sqrt=True)),
    (optim.Adam, dict(lr=1e-2, bias_correction=False, decoupled_weight_decay=True,
                      weight_decay=0.1)),
    (optim.AdamW, dict(lr=1e-2, amsgrad=True)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1,
                         initial_accumulator_value=0.1)),
    (optim.Adagrad, dict(lr=1e-3, maximize=True)),
    (optim.RMSprop, dict(lr=1e-2)),
    (optim.RMSprop, dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.1)),
    (optim.RMSprop, dict(lr=1e-3, eps_inside_sqrt=True, maximize=True)),
    (optim.Adadelta, dict()),
    (optim.Adadelta, dict(lr=0.1, weight_decay=0.1, maximize=True)),
    (optim.Adamax, dict(lr=1e-2)),
    (optim.Adamax, dict(lr=1e-3, weight_decay=0.1, maximize=True)),
    (optim.NAdam, dict(lr=1e-2)),
    (optim.NAdam, dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True)),
]


@contextlib.contextmanager
def default_dtype(dtype):
    previous = tg.get_default_dtype()
    tg.set_default_dtype(dtype)
    try:
        yield
    finally:
        tg.set_default_dtype(previous)


@contextlib.contextmanager
def flat_enabled(enabled):
    previous, flat.ENABLED = flat.ENABLED, enabled
    try:
        yield
    finally:
        flat.ENABLED = previous


def make_problem(dtype, seed=0):
    """A 3-8-8-2 MLP with random weights and a fixed batch: (model, loss_fn)."""
    rng = np.random.default_rng(seed)
    model = nn.MLP([3, 8, 8, 2])
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    X = tg.tensor(rng.standard_normal((16, 3)).astype(dtype))
    y = tg.tensor(rng.integers(0, 2, 16))
    return model, lambda: nn.functional.cross_entropy(model(X), y)


def train(opt, loss_fn, steps, hook=None):
    for i in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        if hook is not None:
            hook(i)
        opt.step()


def run(cls, kwargs, dtype, enabled, steps=100, hook=None):
    """Train ``steps`` steps with the flat path on or off; the parameters, the
    state dict and the optimizer."""
    with default_dtype(dtype), flat_enabled(enabled):
        model, loss_fn = make_problem(dtype)
        opt = cls(model.parameters(), **kwargs)
        train(opt, loss_fn, steps, hook and (lambda i: hook(i, model, opt)))
    return [p.data.copy() for p in model.parameters()], opt.state_dict(), opt


def assert_same_state(a, b):
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        assert a["state"][key].keys() == b["state"][key].keys()
        for name in a["state"][key]:
            np.testing.assert_array_equal(a["state"][key][name].data, b["state"][key][name].data)


def assert_same_run(flat_run, eager_run, flat_taken=True):
    assert bool(flat_run[2]._flat_layouts) == flat_taken
    assert not getattr(eager_run[2], "_flat_layouts", None)
    for x, y in zip(flat_run[0], eager_run[0]):
        assert np.isfinite(x).all()
        np.testing.assert_array_equal(x, y)
    assert_same_state(flat_run[1], eager_run[1])


def config_ids(configs):
    return [f"{cls.__name__}-{'-'.join(kwargs) or 'default'}" for cls, kwargs in configs]


def first_of_each_class(configs):
    first = {}
    for cls, kwargs in configs:
        first.setdefault(cls, kwargs)
    return list(first.items())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=config_ids(CONFIGS))
def test_flat_is_bit_identical_to_per_parameter(cls, kwargs, dtype):
    assert_same_run(run(cls, kwargs, dtype, enabled=True), run(cls, kwargs, dtype, enabled=False))


def test_state_dict_holds_per_parameter_copies():
    _, snapshot, opt = run(optim.Adam, dict(lr=1e-2), "float32", enabled=True, steps=3)
    shapes = [p.shape for p in opt.param_groups[0]["params"]]
    assert sorted(snapshot["state"]) == list(range(len(shapes)))
    for key, shape in enumerate(shapes):
        entry = snapshot["state"][key]
        assert set(entry) == {"step", "exp_avg", "exp_avg_sq"}
        assert entry["exp_avg"].shape == shape and entry["exp_avg"].data.base is None
    saved = snapshot["state"][0]["exp_avg"].data.copy()
    for p in opt.param_groups[0]["params"]:
        p.grad = tg.tensor(np.ones(p.shape, np.float32))
    opt.step()
    np.testing.assert_array_equal(snapshot["state"][0]["exp_avg"].data, saved)


def test_state_tensors_keep_their_identity_and_see_updates():
    with default_dtype("float32"):
        model, loss_fn = make_problem("float32")
        opt = optim.Adam(model.parameters(), lr=1e-2)
        train(opt, loss_fn, 1)   # creates the state, then the flat layout
        p = next(iter(model.parameters()))
        held = opt.state[p]["exp_avg"]
        before = held.data.copy()
        train(opt, loss_fn, 1)
        assert opt.state[p]["exp_avg"] is held
        assert not np.array_equal(held.data, before)


def replace_data(i, model, opt):
    if i == 40:  # a new array for the first weight: the flat copy must follow it
        p = next(iter(model.parameters()))
        p.data = p.data * 0.5


def replace_grads_with_strided_arrays(i, model, opt):
    for p in model.parameters():  # gradients that are views of something else
        if p.ndim == 2:
            p.grad = tg.tensor(np.ascontiguousarray(p.grad.data.T).T)


def add_group(i, model, opt):
    if i == 30:
        extra = tg.tensor(np.linspace(-1.0, 1.0, 5), dtype=tg.get_default_dtype(),
                          requires_grad=True)
        opt.add_param_group({"params": [extra]})
        opt._extra = extra
    if i >= 30:
        opt._extra.grad = tg.tensor(np.cos(opt._extra.data * i))


def drop_a_gradient(i, model, opt):
    if i % 3 == 0:
        list(model.parameters())[1].grad = None


def reload_state(i, model, opt):
    if i == 20:
        opt._saved = opt.state_dict()
    if i == 40:  # an older checkpoint replaces every state array
        opt.load_state_dict(opt._saved)


def replace_a_state_array(i, model, opt):
    if i == 30:  # a new array in a state tensor: the flat buffer must take it in
        state = opt.state[next(iter(model.parameters()))]
        name = next(name for name in state if state[name].data.ndim)  # a buffer
        state[name].data = state[name].data * 0.5


def edit_one_step_count(i, model, opt):
    if i == 30:  # written in place: the flat layout still matches, the steps differ
        state = opt.state[next(iter(model.parameters()))]
        if "step" in state:
            state["step"].data += 5


def edit_a_later_step_count(i, model, opt):
    if i == 30:  # the last parameter's count: one element of the flat step array
        state = opt.state[list(model.parameters())[-1]]
        if "step" in state:
            state["step"].data -= 1


def clear_one_state(i, model, opt):
    if i == 30:  # the parameter starts afresh (step 0, zero moments) at its next step
        opt.state[list(model.parameters())[2]].clear()


def replace_a_state_tensor(i, model, opt):
    if i == 30:  # a new Tensor object (with a copy of the values) in the state dict
        state = opt.state[list(model.parameters())[1]]
        for name in state:
            state[name] = tg.Tensor.constant(state[name].data.copy())


def step_count_of_another_dtype(i, model, opt):
    if i == 30:  # the same count in the other float dtype: one flat array cannot hold it
        state = opt.state[list(model.parameters())[3]]
        if "step" in state:
            count = state["step"].data
            other = np.float32 if count.dtype == np.float64 else np.float64
            state["step"] = tg.Tensor.constant(count.astype(other))


# hooks after which a parameter keeps a step count of its own (or, for
# step_count_of_another_dtype, of another dtype) for good
OWN_COUNT = (drop_a_gradient, edit_one_step_count, edit_a_later_step_count, clear_one_state,
             step_count_of_another_dtype)


@pytest.mark.parametrize("hook", [replace_data, replace_grads_with_strided_arrays, add_group,
                                  drop_a_gradient, reload_state, replace_a_state_array,
                                  edit_one_step_count, edit_a_later_step_count, clear_one_state,
                                  replace_a_state_tensor, step_count_of_another_dtype])
@pytest.mark.parametrize("cls,kwargs", [(optim.Adam, dict(lr=1e-2, amsgrad=True)),
                                        (optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (optim.Adagrad, {"lr": 0.1}),
                                        (optim.NAdam, dict(lr=1e-2))])
def test_user_changes_between_steps_match_per_parameter(cls, kwargs, hook):
    # A parameter that skips steps (or whose count is edited) keeps its own step
    # count from then on: Adam, Adagrad and NAdam must leave the flat path for
    # good; SGD (no step count) stays on it.
    taken = hook not in OWN_COUNT or cls is optim.SGD
    assert_same_run(run(cls, kwargs, "float64", True, steps=60, hook=hook),
                    run(cls, kwargs, "float64", False, steps=60, hook=hook), taken)


class CountedFlatGroup(flat.FlatGroup):
    """A FlatGroup that counts how often a layout is built."""

    built = 0

    def __init__(self, *args):
        CountedFlatGroup.built += 1
        super().__init__(*args)


@pytest.mark.parametrize("cls,kwargs", first_of_each_class(CONFIGS),
                         ids=config_ids(first_of_each_class(CONFIGS)))
def test_one_layout_serves_every_step_and_counts_them_in_one_array(cls, kwargs, monkeypatch):
    monkeypatch.setattr(flat, "FlatGroup", CountedFlatGroup)
    monkeypatch.setattr(CountedFlatGroup, "built", 0)
    _, snapshot, opt = run(cls, kwargs, "float32", enabled=True, steps=20)
    assert CountedFlatGroup.built == 1  # built at the first step with all states, then kept
    (layout,) = opt._flat_layouts.values()
    states = [opt.state[p] for p in layout.params]
    if "step" in states[0]:  # SGD keeps no count
        steps = layout.scalars["step"]
        assert steps.dtype == np.float32 and steps.tolist() == [20.0] * len(states)
        for state in states:  # each count a 0-d view of the one array
            assert state["step"].data.shape == () and state["step"].data.base is steps
        for entry in snapshot["state"].values():  # the snapshot: standalone copies
            assert entry["step"].data.base is None and float(entry["step"].data) == 20.0


def leaves(*arrays):
    return [tg.tensor(a, dtype=a.dtype, requires_grad=True) for a in arrays]


def strided_leaves():
    params = leaves(np.zeros((3, 2)), np.array([0.3, -1.2]))
    params[0].data = np.arange(6.0).reshape(2, 3).T / 7  # set as is (a Tensor may copy)
    assert not params[0].data.flags.c_contiguous
    return params


def overlapping_leaves():
    params = leaves(np.array([0.5, -0.25, 1.0]), np.zeros(2))
    params[1].data = params[0].data[1:]  # updated one after the other, each sees the other
    return params


UNFLATTENABLE = {  # parameters that must not share a flat buffer, and why
    "0-d": lambda: leaves(np.float64(0.7), np.array([0.3, -1.2])),
    "mixed dtypes": lambda: leaves(np.array([1.0, 2.0]), np.array([0.3, -1.2], np.float32)),
    "strided": strided_leaves,
    "overlapping": overlapping_leaves,
}


@pytest.mark.parametrize("kind", UNFLATTENABLE)
def test_unflattenable_parameters_fall_back(kind):
    results = []
    for enabled in (True, False):
        params = UNFLATTENABLE[kind]()
        opt = optim.Adam(params, lr=0.1)
        with flat_enabled(enabled):
            for _ in range(5):
                opt.zero_grad()
                for p in params:
                    p.grad = tg.tensor(np.cos(p.data) + p.data, dtype=p.dtype)
                opt.step()
        assert not opt._flat_layouts
        results.append([p.data.copy() for p in params])
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)


def test_deepcopied_optimizer_updates_only_its_own_copy():
    """A copy must not share the original's flat buffers (nor their views)."""
    results = []
    for enabled in (True, False):
        with default_dtype("float64"), flat_enabled(enabled):
            model, loss_fn = make_problem("float64")
            opt = optim.Adam(model.parameters(), lr=1e-2)
            train(opt, loss_fn, 5)
            originals = [p.data.copy() for p in model.parameters()]
            twin = copy.deepcopy(opt)
            twins = twin.param_groups[0]["params"]
            for t in range(5):
                for p in twins:
                    p.grad = tg.tensor(np.cos(p.data * (t + 1)))
                twin.step()
            assert bool(twin._flat_layouts) == enabled
            for p, before in zip(model.parameters(), originals):
                np.testing.assert_array_equal(p.data, before)
            assert_same_state({"state": dict(enumerate(opt.state.values()))},
                              opt.state_dict())
            results.append(([p.data.copy() for p in twins], twin.state_dict()))
    for x, y in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(x, y)
    assert_same_state(results[0][1], results[1][1])


def test_flat_step_marks_parameters_written():
    with default_dtype("float32"):
        model, loss_fn = make_problem("float32")
        opt = optim.SGD(model.parameters(), lr=0.1)
        train(opt, loss_fn, 2)
        assert opt._flat_layouts
        stale = loss_fn()  # recorded before the step below overwrites the weights
        train(opt, loss_fn, 1)
        with pytest.raises(RuntimeError):
            stale.backward()


@pytest.mark.parametrize("cls,kwargs", [(optim.Adam, dict(lr=1e-2)),
                                        (optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (optim.NAdam, dict(lr=1e-2))])
def test_large_parameters_stay_per_parameter_beside_a_flat_rest(cls, kwargs, monkeypatch):
    # the 3-8-8-2 MLP has sizes 24, 8, 64, 8, 16, 2: the two largest stay out
    monkeypatch.setattr(flat, "MAX_SIZE", 20)
    fast = run(cls, kwargs, "float32", True)
    (layout,) = fast[2]._flat_layouts.values()
    assert sorted(p.data.size for p in layout.params) == [2, 8, 8, 16]
    assert_same_run(fast, run(cls, kwargs, "float32", False))
