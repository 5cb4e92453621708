"""One full training step of an MLP — forward, cross-entropy, backward, Adam, zero_grad — in
float32, side by side: tinygrad_opt three ways (eager per-parameter Adam, the default flat-buffer
Adam, and the whole step captured by ``tg.jit``), hand-written NumPy with preallocated Adam
state (and the same in the fewest NumPy calls we know: the floor of any replay of NumPy calls),
and, when installed, PyTorch (eager Adam and fused Adam) and ``jax.jit`` of the same step
with optax's Adam. Every column but NumPy's is optional: a missing one says so and the rest run.

All of them run in the same process on the same data and weights, alternating in short windows;
each window gives every implementation's time per step, and the table reports medians of the
per-window times and of the per-window ratios to hand NumPy (which cancels the machine's slow
drifts). Every step ends with the loss on the host (``.item()``, ``float``), so no library can
hide work behind an asynchronous queue.
Then the peak memory of 100 steps of the mid model, measured with tracemalloc (it sees NumPy's
buffers, not PyTorch's own allocator, so PyTorch's row says so).

    python benchmarks/mlp_step.py            # about two minutes
    python benchmarks/mlp_step.py --quick    # a few seconds (toy, small, mid), for CI
    python benchmarks/mlp_step.py --threads 1    # one BLAS/OpenMP thread: steadier on a busy
                                                 # machine, where threads spin-wait on each other
"""

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc

from _threads import limit_threads


def _threads_flag(argv):
    """--threads must take effect before NumPy and PyTorch start their thread pools."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__" and _threads_flag(sys.argv[1:]):
    limit_threads(_threads_flag(sys.argv[1:]))

import numpy as np
from _mlp import (
    BETAS,
    EPS,
    LR,
    init_weights,
    numpy_adam,
    ours_mlp,
    step_function,
    torch_mlp,
    train_step,
)

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.optim import flat

try:
    import torch
except ImportError:
    torch = None

try:
    import jax
    import optax
except ImportError:
    jax = optax = None

CONFIGS = [  # name, layer sizes, batch, goals: column -> bound on its time over hand NumPy's
    ("toy", [2, 16, 16, 2], 64, {"flat": 2.2, "jit": 1.5}),
    ("small", [64, 128, 128, 10], 128, {"jit": 1.1}),
    ("mid", [784, 512, 512, 10], 128, {"flat": 0.95}),
    ("wide", [784, 2048, 2048, 10], 512, {"flat": 1.1}),
]
QUICK_CONFIGS = ("toy", "small", "mid")  # --quick leaves out wide (seconds per step)

COLUMNS = {  # key -> what the column times
    "eager": "tinygrad_opt, per-parameter Adam (inside optim.flat.disabled())",
    "flat": "tinygrad_opt, flat-buffer Adam (the default)",
    "jit": "tinygrad_opt, the whole step captured once by tg.jit and replayed",
    "numpy": "hand-written NumPy, preallocated Adam state",
    "floor": "hand-written NumPy in the fewest calls we know (what a replay could reach)",
    "torch": "PyTorch eager, Adam (its CPU default)",
    "torch_fused": "PyTorch eager, Adam(fused=True)",
    "jax": "jax.jit of the same step with optax.adam",
}


# -- hand-written NumPy ------------------------------------------------------------------------


def numpy_step(sizes, X, y):
    """Forward, softmax cross-entropy, backward and Adam written out by hand."""
    params = [a.copy() for layer in init_weights(sizes) for a in layer]
    adam = numpy_adam(params)
    onehot = np.zeros((len(y), sizes[-1]), np.float32)
    onehot[np.arange(len(y)), y] = 1
    n_layers = len(sizes) - 1

    def step():
        acts = [X]
        for k in range(n_layers):
            z = acts[-1] @ params[2 * k].T + params[2 * k + 1]
            acts.append(np.maximum(z, 0) if k < n_layers - 1 else z)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = float((np.log(total) - shifted)[onehot > 0].mean())
        delta = (exp / total - onehot) / len(y)
        grads = [None] * len(params)
        for k in reversed(range(n_layers)):
            grads[2 * k] = delta.T @ acts[k]
            grads[2 * k + 1] = delta.sum(axis=0)
            if k:
                delta = (delta @ params[2 * k]) * (acts[k] > 0)
        adam(grads)
        return loss

    return step


def numpy_floor_step(sizes, X, y):
    """The same step in the fewest NumPy calls we know: every array made once and written
    with ``out=``; the parameters and their gradients views of one flat buffer each, so that
    Adam is one pass of hand NumPy's calls over all of them and nothing is gathered or
    scattered; the labels one-hot once. A replay of recorded NumPy calls (``tg.jit``) pays
    one call per array operation of the library's own forward, backward and optimizer, and
    could at best come down to this."""
    shapes = [a.shape for layer in init_weights(sizes) for a in layer]
    flat_params = np.concatenate([a.ravel() for layer in init_weights(sizes) for a in layer])
    flat_grads = np.empty_like(flat_params)
    bounds = np.cumsum([0] + [int(np.prod(shape)) for shape in shapes])

    def views(flat):
        return [flat[lo:hi].reshape(shape) for lo, hi, shape in zip(bounds, bounds[1:], shapes)]

    params, grads = views(flat_params), views(flat_grads)
    adam = numpy_adam([flat_params])
    batch, n_layers = len(y), len(sizes) - 1
    onehot = np.zeros((batch, sizes[-1]), np.float32)
    onehot[np.arange(batch), y] = 1
    acts = [X] + [np.empty((batch, n), np.float32) for n in sizes[1:]]
    deltas = [None] + [np.empty((batch, n), np.float32) for n in sizes[1:]]
    masks = [None] + [np.empty((batch, n), np.float32) for n in sizes[1:]]
    row_max, row_sum, log_sum = (np.empty((batch, 1), np.float32) for _ in range(3))
    shifted, picked = np.empty_like(onehot), np.empty_like(onehot)

    def step():
        for k in range(n_layers):
            z = acts[k + 1]
            np.matmul(acts[k], params[2 * k].T, out=z)
            np.add(z, params[2 * k + 1], out=z)
            if k < n_layers - 1:
                np.maximum(z, 0, out=z)
        logits, delta = acts[-1], deltas[-1]
        np.max(logits, axis=1, keepdims=True, out=row_max)
        np.subtract(logits, row_max, out=shifted)
        np.exp(shifted, out=delta)
        np.sum(delta, axis=1, keepdims=True, out=row_sum)
        np.log(row_sum, out=log_sum)
        np.multiply(shifted, onehot, out=picked)
        loss = (float(log_sum.sum()) - float(picked.sum())) / batch
        np.divide(delta, row_sum, out=delta)
        np.subtract(delta, onehot, out=delta)
        np.multiply(delta, 1 / batch, out=delta)
        for k in reversed(range(n_layers)):
            np.matmul(delta.T, acts[k], out=grads[2 * k])
            np.sum(delta, axis=0, out=grads[2 * k + 1])
            if k:
                np.matmul(delta, params[2 * k], out=deltas[k])
                np.greater(acts[k], 0, out=masks[k])
                np.multiply(deltas[k], masks[k], out=deltas[k])
                delta = deltas[k]
        adam([flat_grads])
        return loss

    return step


# -- PyTorch and JAX --------------------------------------------------------------------------


def torch_step(sizes, X, y, fused=False):
    model = torch_mlp(torch, sizes)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS, fused=fused)
    return train_step(model, opt, torch.nn.functional.cross_entropy, torch.from_numpy(X),
                      torch.from_numpy(y), zero_grad_first=False, host_loss=True)


def torch_fused_step(sizes, X, y):
    return torch_step(sizes, X, y, fused=True)


def jax_step(sizes, X, y):
    """The same step as one XLA computation: ``jax.jit`` of value_and_grad and optax's
    Adam update, the parameters and optimizer state donated so XLA may update them in place."""
    jnp = jax.numpy
    params = [jnp.asarray(a) for layer in init_weights(sizes) for a in layer]
    adam = optax.adam(LR, b1=BETAS[0], b2=BETAS[1], eps=EPS)
    n_layers = len(sizes) - 1

    def loss_fn(params, x, labels):
        h = x
        for k in range(n_layers):
            h = h @ params[2 * k].T + params[2 * k + 1]
            if k < n_layers - 1:
                h = jax.nn.relu(h)
        return optax.softmax_cross_entropy_with_integer_labels(h, labels).mean()

    def update(params, state, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, labels)
        updates, state = adam.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    update = jax.jit(update, donate_argnums=(0, 1))
    carry = [params, adam.init(params)]
    x, labels = jnp.asarray(X), jnp.asarray(y)

    def step():
        carry[0], carry[1], loss = update(carry[0], carry[1], x, labels)
        return float(loss)

    return step


# -- tinygrad_opt ------------------------------------------------------------------------------


def flat_step(sizes, X, y):
    """The default: Adam runs once over flat buffers holding the small parameters
    (optim/flat.py)."""
    model = ours_mlp(sizes)
    opt = optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    return train_step(model, opt, nn.functional.cross_entropy, tg.tensor(X), tg.tensor(y),
                      zero_grad_first=False, host_loss=True)


def eager_step(sizes, X, y):
    """The same step with the flat buffers off: Adam's rule runs once per parameter."""
    step = flat_step(sizes, X, y)

    def per_parameter():
        with flat.disabled():
            return step()

    return per_parameter


def jit_step(sizes, X, y):
    """The step captured by ``tg.jit``: the first call traces it (running it eagerly), later
    calls replay the recorded array operations. ``.item()`` would be refused inside the
    captured function, so the loss comes to the host outside it."""
    model = ours_mlp(sizes)
    opt = optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    step = tg.jit(step_function(model, opt, nn.functional.cross_entropy, zero_grad_first=True))
    X, y = tg.tensor(X), tg.tensor(y)
    return lambda: step(X, y).item()


def makers():
    """column -> make_step(sizes, X, y), for the columns this environment can run; and the
    sentences saying which it cannot."""
    available = {"eager": eager_step, "flat": flat_step}
    missing = []
    if getattr(tg, "jit", None) is not None:
        available["jit"] = jit_step
    else:
        missing.append("jit: not available (this tinygrad_opt has no tg.jit)")
    available["numpy"], available["floor"] = numpy_step, numpy_floor_step
    if torch is not None:
        available["torch"], available["torch_fused"] = torch_step, torch_fused_step
    else:
        missing.append("torch not installed: its columns are skipped")
    if jax is not None:
        available["jax"] = jax_step
    else:
        missing.append("jax not installed: its column is skipped (pip install jax optax)")
    return available, missing


# -- timing ------------------------------------------------------------------------------------


def race(steps, windows, window_s):
    """Per-window seconds per step for each implementation, alternating."""
    for step in steps.values():  # warm up: traces, compilations, caches, allocator, threads
        for _ in range(3):
            step()
    per_step = {name: [] for name in steps}
    reps = {}
    for name, step in steps.items():  # how many steps fill a window
        start = time.perf_counter()
        step()
        reps[name] = max(1, int(window_s / max(time.perf_counter() - start, 1e-6)))
    for w in range(windows):
        names = list(steps) if w % 2 == 0 else list(reversed(steps))
        for name in names:
            step, n = steps[name], reps[name]
            start = time.perf_counter()
            for _ in range(n):
                step()
            per_step[name].append((time.perf_counter() - start) / n)
    return per_step


def random_batch(sizes, batch, rng):
    """Standard normal float32 inputs and uniform int64 class labels."""
    return (rng.standard_normal((batch, sizes[0])).astype(np.float32),
            rng.integers(0, sizes[-1], batch).astype(np.int64))


def measure(names, windows, window_s, seed=0):
    """For each configuration in ``names``: every available column's median time per step
    and median per-window ratio to hand NumPy. Returns ``(results, missing)`` where
    ``results[name] = {"label", "median_s", "ratio", "goals"}``."""
    available, missing = makers()
    rng = np.random.default_rng(seed)
    results = {}
    for name, sizes, batch, goals in CONFIGS:
        if name not in names:
            continue
        X, y = random_batch(sizes, batch, rng)
        steps = {key: make(sizes, X, y) for key, make in available.items()}
        per_step = race(steps, windows, window_s if name != "wide" else 4 * window_s)
        results[name] = {
            "label": f"{name} {'-'.join(map(str, sizes))} b{batch}",
            "median_s": {key: statistics.median(times) for key, times in per_step.items()},
            "ratio": {key: statistics.median(a / b for a, b in zip(times, per_step["numpy"]))
                      for key, times in per_step.items()},
            "goals": goals,
        }
    return results, missing


def peak_memory(make_step, sizes, X, y, n_steps):
    """Peak bytes traced by tracemalloc while ``n_steps`` steps run: the weights, the
    optimizer state, the gradients and every temporary (the model's construction excluded)."""
    gc.collect()
    tracemalloc.start()
    step = make_step(sizes, X, y)
    tracemalloc.reset_peak()
    for _ in range(n_steps):
        step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def fmt_time(seconds):
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def goal_verdicts(result):
    """One phrase per goal of the configuration (and, where jit has a goal, jit against
    jax.jit: the issue's bar beyond it): the measured ratio, the bound, and whether it is met."""
    ratio, phrases = result["ratio"], []
    for key, bound in result["goals"].items():
        if key in ratio:
            met = "ok" if ratio[key] <= bound else "MISSED"
            phrases.append(f"{key} {ratio[key]:.2f}x <= {bound}x: {met}")
        else:
            phrases.append(f"{key} <= {bound}x: n/a")
    if "jit" in result["goals"] and "jit" in ratio and "jax" in ratio:
        met = "ok" if ratio["jit"] <= ratio["jax"] else "MISSED"
        floor = f", fewest NumPy calls {ratio['floor']:.2f}x" if "floor" in ratio else ""
        phrases.append(f"jit <= jax.jit ({ratio['jax']:.2f}x{floor}): {met}")
    return "; ".join(phrases)


def print_tables(results, columns):
    width = max(len(r["label"]) for r in results.values()) + 2
    header = f"{'model':<{width}}" + "".join(f"{key:>13}" for key in columns)
    for title, cell in (("time per step (median over windows)",
                         lambda r, key: fmt_time(r["median_s"][key])),
                        ("time over hand NumPy's (median of per-window ratios)",
                         lambda r, key: f"{r['ratio'][key]:.2f}x")):
        print(f"\n{title}\n{header}\n{'-' * len(header)}")
        for r in results.values():
            print(f"{r['label']:<{width}}" + "".join(f"{cell(r, key):>13}" for key in columns))
    print("\ngoals (issue 16):")
    for r in results.values():
        print(f"  {r['label']}: {goal_verdicts(r)}")


def memory_report(n_steps, seed=0):
    """Peak traced memory of ``n_steps`` steps of the mid model, per tinygrad_opt column and
    hand NumPy's."""
    available, _ = makers()
    _, sizes, batch, _ = next(c for c in CONFIGS if c[0] == "mid")
    X, y = random_batch(sizes, batch, np.random.default_rng(seed))
    peaks = {key: peak_memory(available[key], sizes, X, y, n_steps)
             for key in ("eager", "flat", "jit", "numpy") if key in available}
    cells = ", ".join(f"{key} {peak / 2**20:.2f} MiB" for key, peak in peaks.items())
    ratios = ", ".join(f"{key}/numpy {peaks[key] / peaks['numpy']:.2f}x"
                       for key in peaks if key != "numpy")
    print(f"\npeak memory over {n_steps} steps of the mid model (tracemalloc: weights, "
          f"Adam state, gradients, temporaries): {cells}; {ratios} (goal <= 1.5x); "
          "PyTorch and JAX: not measurable here (their allocators are invisible to tracemalloc).")
    return peaks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="short windows, and only " + ", ".join(QUICK_CONFIGS))
    parser.add_argument("--only", choices=[c[0] for c in CONFIGS], action="append",
                        help="run only these configurations")
    parser.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: "
                        "the libraries' own choice, usually one per core)")
    args = parser.parse_args(argv)
    if args.threads and torch is not None:
        torch.set_num_threads(args.threads)
    windows, window_s = (3, 0.05) if args.quick else (15, 0.25)
    names = args.only or (QUICK_CONFIGS if args.quick else [c[0] for c in CONFIGS])

    threads = args.threads or "default"
    print(f"one training step (forward, cross-entropy, backward, Adam, zero_grad), float32, "
          f"median of {windows} alternating windows, {os.cpu_count()} cores, threads: {threads}")
    results, missing = measure(names, windows, window_s)
    for sentence in missing:
        print(sentence)
    columns = [key for key in COLUMNS if key in next(iter(results.values()))["ratio"]]
    for key in columns:
        print(f"  {key:<12} {COLUMNS[key]}")
    print_tables(results, columns)
    if "mid" in names:
        results["memory"] = memory_report(20 if args.quick else 100)
    return results


if __name__ == "__main__":
    main()
