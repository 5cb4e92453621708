"""Per-op overhead of the engine on 16-element float32 arrays: what recording an
op, and backpropagating through it, costs on top of the NumPy calls it makes;
then the same for one Adam step over an MLP's parameters.

For each op these run the same work: tinygrad_opt eager, the same function
captured by ``tg.jit`` and replayed (when this tinygrad_opt has it), the bare
NumPy calls it makes (forward, and for "fwd+bwd" the backward's calls too), and
PyTorch on the CPU when it is installed. For the Adam step (the gradients
given): tinygrad_opt's per-parameter Adam (``optim.flat.disabled()``), its
default flat-buffer Adam, Adam written by hand in NumPy, PyTorch's Adam and
fused Adam, and ``jax.jit`` of optax's Adam update, each when installed (the jit
column is absent there: ``tg.jit`` runs an optimizer's step as Python, so a
captured step's Adam costs what flat's does). They alternate in short windows;
the tables give the median per-call time over windows and the median of the
per-window ratios to NumPy (which cancels the machine's slow drifts).

    python benchmarks/op_overhead.py            # about half a minute
    python benchmarks/op_overhead.py --quick    # a few seconds
"""

import argparse
import functools
import statistics
import sys
import time

import numpy as np
from _mlp import BETAS, EPS, LR, init_weights, numpy_adam

import tinygrad_opt as tg
from tinygrad_opt import optim
from tinygrad_opt.optim import flat

try:
    import torch

    torch.set_num_threads(1)
except ImportError:
    torch = None

try:
    import jax
    import optax
except ImportError:
    jax = optax = None

N = 16
GOALS = {  # row -> microseconds of the eager column (the goals, for a 2-core machine like CI's)
    "mul  forward (recorded)": 3.0,
    "sum().backward()": 10.0,
    "mul  fwd+bwd": 8.0,
}
ADAM_MODELS = [("toy", [2, 16, 16, 2]), ("small", [64, 128, 128, 10])]


def backward(out, grad=None):
    """``out`` after backpropagating ``grad`` through it (either library's tensors)."""
    out.backward(grad)
    return out


def timed(fn, args, leaves):
    """``fn(*args)`` as a call of no arguments; after it each of ``leaves`` gets its
    ``.grad`` set back to None, so that every call backpropagates into empty gradients."""

    def run():
        fn(*args)
        for t in leaves:
            t.grad = None

    return run


def captured(fn, leaves):
    """``fn(*leaves, *constants)`` captured by ``tg.jit`` as a function of the constants
    alone: a captured step takes its parameters (what requires grad) from its closure."""
    return tg.jit(lambda *constants: fn(*leaves, *constants))


# -- one op ------------------------------------------------------------------------------------


def op_cases():
    """(row name, {column: call of no arguments}) per op. Each op is one function of tensors
    that runs as written on tinygrad_opt's and PyTorch's, and through ``tg.jit``."""
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(N).astype(np.float32) for _ in range(2))
    m = rng.standard_normal((4, 4)).astype(np.float32)
    arrays = {"x": x, "y": y, "g": np.ones(N, np.float32), "m": m,
              "gm": np.ones((4, 4), np.float32)}
    leaves = {"x", "y", "m"}  # the rest are output gradients: constants
    ours = {k: tg.tensor(v, requires_grad=k in leaves) for k, v in arrays.items()}
    theirs = torch and {k: torch.tensor(v, requires_grad=k in leaves) for k, v in arrays.items()}
    cases = []

    def case(name, fn, names, bare):
        """``names``: the tensors ``fn`` takes, in order (keys of ``arrays``): the leaves,
        then the output gradient if any."""
        backward_too = "backward" in name or "bwd" in name
        args = [ours[k] for k in names.split()]
        leaves = [t for t in args if t.requires_grad]
        cleared = leaves if backward_too else []
        columns = {"eager": timed(fn, args, cleared)}
        if getattr(tg, "jit", None) is not None:
            columns["jit"] = timed(captured(fn, leaves), args[len(leaves):], cleared)
        columns["numpy"] = bare
        if torch is not None:
            args = [theirs[k] for k in names.split()]
            columns["torch"] = timed(fn, args, args[:len(leaves)] if backward_too else [])
        cases.append((name, columns))

    g, gm = arrays["g"], arrays["gm"]

    # forward only: one recorded op (inputs require grad)
    case("add  forward (recorded)", lambda a, b: a + b, "x y", lambda: np.add(x, y))
    case("mul  forward (recorded)", lambda a, b: a * b, "x y", lambda: np.multiply(x, y))
    case("exp  forward (recorded)", lambda a: a.exp(), "x", lambda: np.exp(x))
    case("relu forward (recorded)", lambda a: a.relu(), "x", lambda: np.maximum(x, 0))
    case("sum  forward (recorded)", lambda a: a.sum(), "x", lambda: x.sum(axis=(0,)))
    case("matmul 4x4 forward (recorded)", lambda a: a @ a, "m", lambda: m @ m)

    # forward + backward of one op, with a given output gradient
    case("add  fwd+bwd", lambda a, b, out_grad: backward(a + b, out_grad), "x y g",
         lambda: (np.add(x, y), g.copy()))
    case("mul  fwd+bwd", lambda a, b, out_grad: backward(a * b, out_grad), "x y g",
         lambda: (np.multiply(x, y), np.multiply(g, y), np.multiply(g, x)))
    case("exp  fwd+bwd", lambda a, out_grad: backward(a.exp(), out_grad), "x g",
         lambda: np.multiply(g, np.exp(x)))
    case("tanh fwd+bwd", lambda a, out_grad: backward(a.tanh(), out_grad), "x g",
         lambda: g * (1 - np.tanh(x) ** 2))
    case("matmul 4x4 fwd+bwd", lambda a, out_grad: backward(a @ a, out_grad), "m gm",
         lambda: (m @ m, gm @ m.T, m.T @ gm))

    # the smallest backward, and a two-op graph
    def bare_sum_backward():
        x.sum(axis=(0,))
        out = np.empty_like(x)
        out[...] = np.ones((), np.float32)

    def bare_mul_sum():
        np.multiply(x, y).sum(axis=(0,))
        s = np.empty_like(x)
        s[...] = np.ones((), np.float32)
        return s * y, s * x

    case("sum().backward()", lambda a: backward(a.sum()), "x", bare_sum_backward)
    case("(a*b).sum().backward()", lambda a, b: backward((a * b).sum()), "x y", bare_mul_sum)
    return cases


# -- one Adam step -----------------------------------------------------------------------------


def adam_cases():
    """(row name, {column: call of no arguments}): one Adam step over the parameters of an
    MLP (``_mlp``'s shapes and initial weights), their gradients fixed."""
    rng = np.random.default_rng(0)
    cases = []
    for name, sizes in ADAM_MODELS:
        arrays = [a for layer in init_weights(sizes) for a in layer]
        grads = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
        columns = {"eager": per_parameter(ours_adam(arrays, grads)),
                   "flat": ours_adam(arrays, grads),
                   "numpy": functools.partial(numpy_adam([a.copy() for a in arrays]), grads)}
        if torch is not None:
            columns["torch"] = torch_adam(arrays, grads, fused=False)
            columns["torch_fused"] = torch_adam(arrays, grads, fused=True)
        if jax is not None:
            columns["jax"] = jax_adam(arrays, grads)
        n = sum(a.size for a in arrays)
        cases.append((f"Adam step, {name} ({len(arrays)} arrays, {n} numbers)", columns))
    return cases


def ours_adam(arrays, grads):
    params = [tg.tensor(a.copy(), requires_grad=True) for a in arrays]
    for p, grad in zip(params, grads):
        p.grad = tg.tensor(grad)
    return optim.Adam(params, lr=LR, betas=BETAS, eps=EPS).step


def per_parameter(step):
    def run():
        with flat.disabled():
            step()

    return run


def torch_adam(arrays, grads, fused):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    for p, grad in zip(params, grads):
        p.grad = torch.from_numpy(grad)
    return torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS, fused=fused).step


def jax_adam(arrays, grads):
    """``jax.jit`` of optax's Adam update and apply, the parameters and state donated; each
    call waits for its result (tinygrad_opt's and PyTorch's steps are synchronous)."""
    adam = optax.adam(LR, b1=BETAS[0], b2=BETAS[1], eps=EPS)
    grads = [jax.numpy.asarray(g) for g in grads]

    def update(params, state):
        updates, state = adam.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    update = jax.jit(update, donate_argnums=(0, 1))
    params = [jax.numpy.asarray(a) for a in arrays]
    carry = [params, adam.init(params)]

    def step():
        carry[:] = update(*carry)
        jax.block_until_ready(carry[0])

    return step


# -- timing ------------------------------------------------------------------------------------


def per_call(fn, loops):
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops * 1e6


def measure(cases, windows, loops):
    """Per row: {column: (median µs per call, median per-window ratio to the numpy column)}.
    The columns of a row alternate within each window, in reverse order every other window."""
    rows = []
    for name, columns in cases:
        for fn in columns.values():  # warm up (and let tg.jit record)
            per_call(fn, loops // 4 + 1)
        times = {key: [] for key in columns}
        for w in range(windows):
            for key in list(columns) if w % 2 == 0 else reversed(columns):
                times[key].append(per_call(columns[key], loops))
        med = statistics.median
        rows.append((name, {key: (med(t), med(a / b for a, b in zip(t, times["numpy"])))
                            for key, t in times.items()}))
    return rows


def print_table(title, rows):
    """Times per column, then each column's ratio to NumPy's, one line per row."""
    columns = list(rows[0][1])
    ratios = [key for key in columns if key != "numpy"]
    labels = [f"{key} µs" for key in columns] + [f"{key}/np" for key in ratios]
    width = max(len(name) for name, _ in rows) + 2
    cells_width = [max(len(label) + 2, 10) for label in labels]
    header = f"{title:<{width}}" + "".join(f"{lb:>{w}}" for lb, w in zip(labels, cells_width))
    print(f"\n{header}\n{'-' * len(header)}")
    for name, cells in rows:
        values = [f"{cells[key][0]:.2f}" for key in columns]
        values += [f"{cells[key][1]:.2f}x" for key in ratios]
        line = f"{name:<{width}}" + "".join(f"{v:>{w}}" for v, w in zip(values, cells_width))
        goal = GOALS.get(name)
        if goal is not None:
            eager = cells["eager"][0]
            line += f"  eager < {goal:g} µs: {'met' if eager < goal else 'NOT met'}"
        print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter windows")
    args = parser.parse_args(argv)
    windows, loops = (5, 300) if args.quick else (21, 2000)
    if getattr(tg, "jit", None) is None:
        print("jit: not available (this tinygrad_opt has no tg.jit)")
    if torch is None:
        print("torch not installed: its columns are skipped")
    if jax is None:
        print("jax not installed: its column is skipped (pip install jax optax)")
    print("eager: tinygrad_opt as written; jit: the same function captured by tg.jit, replayed")
    print_table(f"op ({N} float32)", measure(op_cases(), windows, loops))
    print("\neager: per-parameter Adam (optim.flat.disabled()); flat: the default flat-buffer "
          "Adam; torch_fused: Adam(fused=True); jax: jax.jit of optax.adam's update")
    print_table("one Adam step", measure(adam_cases(), windows, loops // 10))
    versions = [f"numpy {np.__version__}",
                f"torch {torch.__version__}" if torch else "torch not installed",
                f"jax {jax.__version__}" if jax else "jax not installed",
                f"python {sys.version.split()[0]}"]
    print("\n" + ", ".join(versions))


if __name__ == "__main__":
    main()
