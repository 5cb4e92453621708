"""The fused GPU kernels, checked without a GPU.

Each kernel body in tinygrad_opt/cuda_kernels.py is a few lines of a C subset that is
also Python; here the bodies run on NumPy arrays (``cuda_kernels.emulate()``) and must
give, bit for bit, what the unfused update functions of tinygrad_opt/optim give, in
float32 and float64, for every combination of options. When an update function of
optim/ changes its arithmetic, its fused body must change the same way: the failing
test names the one.
"""

import itertools
import re
import sys
import types

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import cuda_kernels as K
from tinygrad_opt import optim
from tinygrad_opt.optim import adadelta, adagrad, adam, adamax, nadam, rmsprop, sgd

DTYPES = [np.float32, np.float64]


def _arrays(seed, dtype, *kinds):
    """Arrays of shape (6, 5): 'any' normal, 'pos' positive (second moments), None."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in kinds:
        a = rng.standard_normal((6, 5))
        out.append(None if kind is None else (a * a + 0.1 if kind == "pos" else a).astype(dtype))
    return out


def _copies(arrays):
    return [None if a is None else a.copy() for a in arrays]


def _check(update, arrays, kw):
    """The fused body (emulated) against the unfused function: same arrays after, same
    return value, bit for bit."""
    ours, theirs = _copies(arrays), _copies(arrays)
    expected = update.pure(*theirs, **kw)
    got = K.FUSED[update.fused_name](*ours, **kw)
    assert got is not K.UNFUSED
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if b is not None:
            np.testing.assert_array_equal(
                a, b, err_msg=f"cuda_kernels.{update.fused_name}: array {i} differs from the "
                f"unfused optim update with {kw}; make the kernel body follow it")
    if expected is not None:
        np.testing.assert_array_equal(got, expected)


def _grid(**options):
    keys = list(options)
    for values in itertools.product(*options.values()):
        yield dict(zip(keys, values))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_body_equals_the_update(dtype):
    for kw in _grid(lr=[0.05, 1], momentum=[0, 0.9], dampening=[0, 0.3],
                    weight_decay=[0, 0.1], nesterov=[False, True], maximize=[False, True]):
        if kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"]):
            continue
        for first in (True, False):
            p, g, b = _arrays(1, dtype, "any", "any", None if first else "any")
            _check(sgd._sgd, [p, g, b], kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_body_equals_the_update(dtype):
    for kw in _grid(amsgrad=[False, True], maximize=[False, True], weight_decay=[0, 0.1],
                    decoupled_weight_decay=[False, True], eps_inside_sqrt=[False, True],
                    beta1=[0.9, 0.3], step=[1.0, 7.0]):
        p, g, m, v, vmax = _arrays(2, dtype, "any", "any", "any", "pos",
                                   "pos" if kw["amsgrad"] else None)
        _check(adam._adam, [p, g, m, v, vmax], dict(kw, lr=0.01, beta2=0.999, eps=1e-8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_body_equals_the_update(dtype):
    for kw in _grid(maximize=[False, True], weight_decay=[0, 0.1], lr_decay=[0, 0.05]):
        p, g, s = _arrays(3, dtype, "any", "any", "pos")
        _check(adagrad._adagrad, [p, g, s], dict(kw, step=4.0, lr=0.1, eps=1e-10))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsprop_body_equals_the_update(dtype):
    for kw in _grid(maximize=[False, True], weight_decay=[0, 0.1], momentum=[0, 0.9],
                    centered=[False, True], eps_inside_sqrt=[False, True], alpha=[0.99, 0.3],
                    lr=[0.01, 1]):
        p, g, sq, avg, buf = _arrays(4, dtype, "any", "any", "pos",
                                     "any" if kw["centered"] else None,
                                     "any" if kw["momentum"] else None)
        if kw["centered"]:
            sq = sq + avg * avg  # v ≥ ḡ², as the running averages keep it
        _check(rmsprop._rmsprop, [p, g, sq, avg, buf], dict(kw, eps=1e-8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adadelta_body_equals_the_update(dtype):
    for kw in _grid(maximize=[False, True], weight_decay=[0, 0.1], lr=[1.0, 0.5]):
        p, g, v, u = _arrays(5, dtype, "any", "any", "pos", "pos")
        _check(adadelta._adadelta, [p, g, v, u], dict(kw, rho=0.9, eps=1e-6))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamax_body_equals_the_update(dtype):
    for kw in _grid(maximize=[False, True], weight_decay=[0, 0.1], beta1=[0.9, 0.2]):
        p, g, m, u = _arrays(6, dtype, "any", "any", "any", "pos")
        _check(adamax._adamax, [p, g, m, u], dict(kw, step=2.0, lr=0.002, beta2=0.999,
                                                   eps=1e-8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nadam_body_equals_the_update(dtype):
    for kw in _grid(maximize=[False, True], weight_decay=[0, 0.1],
                    decoupled_weight_decay=[False, True]):
        p, g, m, v = _arrays(7, dtype, "any", "any", "any", "pos")
        kw = dict(kw, step=3.0, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8,
                  momentum_decay=4e-3)
        ours = _copies([p, g, m, v]) + [np.array(0.7)]
        theirs = _copies([p, g, m, v]) + [np.array(0.7)]
        nadam._nadam.pure(*theirs, **kw)
        assert K.FUSED["nadam"](*ours, **kw) is None
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b, err_msg=f"cuda_kernels.nadam with {kw}")


def test_every_first_order_update_is_fused():
    updates = [sgd._sgd, adam._adam, adagrad._adagrad, rmsprop._rmsprop, adadelta._adadelta,
               adamax._adamax, nadam._nadam]
    assert sorted(u.fused_name for u in updates) == sorted(K.FUSED)


OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, momentum_form="lecture")),  # not fused: unfused path
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adadelta", dict(lr=1.0)),
    ("Adamax", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizers_take_the_same_path_through_the_fused_bodies(name, kw, dtype):
    """The decorator hands the optimizer's own call to the fused body (every argument
    as the optimizer passes it): five steps agree bit for bit."""
    def run():
        tg.set_default_dtype(dtype)
        rng = np.random.default_rng(0)
        params = [tg.tensor(rng.standard_normal(s), requires_grad=True) for s in [(4, 3), (3,)]]
        opt = getattr(optim, name)(params, **kw)
        for _ in range(5):
            for p in params:
                p.grad = tg.tensor(p.numpy() * 1.5 + rng.standard_normal(p.shape))
            opt.step()
        return [p.numpy().copy() for p in params]

    plain = run()
    with K.emulate():
        fused = run()
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)


def test_numpy_arrays_never_take_the_fused_path_unless_emulated(monkeypatch):
    calls = []
    monkeypatch.setitem(K.FUSED, "adam", lambda *a, **k: calls.append(1) or K.UNFUSED)
    p, g, m, v = _arrays(0, np.float64, "any", "any", "any", "pos")
    kw = dict(step=1.0, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
              amsgrad=False, maximize=False)
    adam._adam(p, g, m, v, None, **kw)
    assert calls == []
    with K.emulate():
        adam._adam(p, g, m, v, None, **kw)  # UNFUSED: falls back to the array code
    assert calls == [1]


def test_mixed_dtypes_fall_back_to_the_unfused_update():
    p, m, v = _arrays(0, np.float32, "any", "any", "pos")
    (g,) = _arrays(1, np.float64, "any")
    assert K._adam(p, g, m, v, None, step=1.0, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                   weight_decay=0, amsgrad=False, maximize=False) is K.UNFUSED


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_body(dtype):
    g, out = _arrays(8, dtype, "any", "any")
    out = np.maximum(out, 0)
    g[0, 0], out[0, 0] = np.nan, 0.0  # NaN stays NaN where the mask is 0, as g * mask
    assert K.relu_backward(g, out) is None  # NumPy: the caller multiplies
    with K.emulate():
        fused = K.relu_backward(g, out)
        assert K.relu_backward(g, out.astype(np.float16)) is None  # mixed dtypes: no
    np.testing.assert_array_equal(fused, g * (out > 0))


def test_relu_backward_is_registered_as_the_ops_override():
    """The kernel registers itself on the op; the ops never import this module."""
    from tinygrad_opt.ops import elementwise

    assert elementwise.Relu.fused_backward is K.relu_backward
    assert not hasattr(elementwise, "cuda_kernels")


# -- the kernels as CUDA will see them ------------------------------------------------------


def _bodies():
    """Every kernel body the fused updates build, over their options."""
    seen = {}

    def spy(name, body, inputs, scalars, outputs):
        seen[(name, body)] = (tuple(inputs), tuple(K._used(body, scalars)), tuple(outputs))
        return real_run(name, body, inputs, scalars, outputs)

    real_run = K.run
    K.run = spy
    try:
        for test in (test_sgd_body_equals_the_update, test_adam_body_equals_the_update,
                     test_adagrad_body_equals_the_update, test_rmsprop_body_equals_the_update,
                     test_adadelta_body_equals_the_update, test_adamax_body_equals_the_update,
                     test_nadam_body_equals_the_update):
            test(np.float32)
        with K.emulate():
            K.relu_backward(np.ones(2), np.ones(2))
    finally:
        K.run = real_run
    return seen


STATEMENT = re.compile(r"^(T\s+)?([A-Za-z_]\w*)\s*=\s*([^;=]+);$")


def test_kernel_bodies_stay_in_the_c_subset_that_python_runs_alike():
    """Declarations and assignments only; no float literal (a double in a float32 kernel
    would change the rounding); no name used before it exists."""
    bodies = _bodies()
    assert len(bodies) > 40
    for (name, body), (inputs, scalars, outputs) in bodies.items():
        known = set(inputs) | set(scalars) | set(outputs) | {"sqrt", "max", "fabs"}
        for line in body.splitlines():
            match = STATEMENT.match(line.strip())
            assert match, f"{name}: {line!r} is outside the kernel subset"
            declared, target, expr = match.groups()
            assert not re.search(r"\d\.|\.\d|\de", expr), f"{name}: float literal in {line!r}"
            for word in re.findall(r"[A-Za-z_]\w*", expr):
                assert word in known, f"{name}: {word!r} is not a parameter or local"
            if declared:
                assert target not in known, f"{name}: {target!r} declared twice"
                known.add(target)
            else:
                assert target in set(outputs) | known - set(inputs) - set(scalars), \
                    f"{name}: writes to the input {target!r}"


class _OnFakeGPU(np.ndarray):
    """A NumPy array that run() takes for a device array (not exactly numpy.ndarray)."""


def test_compiled_kernels_take_their_arguments_in_declaration_order(monkeypatch):
    """What run() hands cupy.ElementwiseKernel: 'T name' parameter lists, the body, the
    options, and a call whose arguments follow the lists. A stand-in for CuPy runs the
    body by the names it declared, and must agree with the unfused update."""
    made = []

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name, options=(),
                     no_return=False):
            made.append((in_params, out_params, name, options, no_return))
            params = [p.split() for p in (in_params + ", " + out_params).split(",")]
            assert all(kind == "T" for kind, _ in params)
            self.ins = [n for _, n in (p.split() for p in in_params.split(","))]
            self.outs = [n for _, n in (p.split() for p in out_params.split(","))]
            self.body = operation

        def __call__(self, *args):
            assert len(args) == len(self.ins) + len(self.outs)
            named = dict(zip(self.ins + self.outs, args))
            arrays = {k: np.asarray(v) for k, v in named.items() if isinstance(v, np.ndarray)}
            K._interpret(self.body, {k: arrays[k] for k in self.ins if k in arrays},
                         {k: v for k, v in named.items() if k not in arrays},
                         {k: arrays[k] for k in self.outs})

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        ElementwiseKernel=ElementwiseKernel, ndarray=type("ndarray", (), {})))
    monkeypatch.setattr(K, "_KERNELS", {})
    for maximize in (False, True):
        p, g, m, v = _arrays(9, np.float32, "any", "any", "any", "pos")
        kw = dict(step=3.0, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
                  amsgrad=False, maximize=maximize)
        expected = _copies([p, g, m, v])
        adam._adam.pure(*expected, None, **kw)
        on_gpu = [a.copy().view(_OnFakeGPU) for a in (p, g, m, v)]
        assert K._adam(*on_gpu, None, **kw) is None
        for a, b in zip(on_gpu, expected):
            np.testing.assert_array_equal(np.asarray(a), b)
        K._adam(*on_gpu, None, **kw)  # the second call reuses the compiled kernel
    assert len(made) == 2 == len(K._KERNELS)
    in_params, out_params, name, options, no_return = made[0]
    assert in_params.startswith("T grad, ") and out_params == "T param, T exp_avg, T exp_avg_sq"
    assert name == "tinygrad_opt_adam" and "--fmad=false" in options and no_return
