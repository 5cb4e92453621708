"""One full training step of an MLP — forward, cross-entropy, backward, Adam, zero_grad — in
float32: tinygrad_opt (its default flat-buffer Adam, and the eager per-parameter Adam) vs
hand-written NumPy vs PyTorch on the CPU (when installed).

All of them run in the same process on the same data and weights, alternating in short windows;
each window gives every implementation's time per step, and the table reports medians of the
per-window times and of the per-window ratios (which cancels the machine's slow drifts).
Then the peak memory of 100 steps of the mid model, measured with tracemalloc (it sees NumPy's
buffers, not PyTorch's own allocator, so PyTorch's row says so).

    python benchmarks/mlp_step.py            # about a minute
    python benchmarks/mlp_step.py --quick    # a few seconds, for CI
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


def _threads_flag(argv):
    """--threads must take effect before NumPy and PyTorch start their thread pools."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if _threads_flag(sys.argv[1:]):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads_flag(sys.argv[1:])

import numpy as np
from _mlp import BETAS, EPS, LR, init_weights, ours_mlp, torch_mlp, train_step

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.optim import flat

try:
    import torch
except ImportError:
    torch = None

CONFIGS = [  # name, sizes, batch, goal (ratio to compare, bound)
    ("toy", [2, 16, 16, 2], 64, ("torch", 0.5)),
    ("mid", [784, 512, 512, 10], 128, ("numpy", 1.1)),
    ("wide", [784, 2048, 2048, 10], 512, ("numpy", 1.1)),
]


# -- hand-written NumPy ------------------------------------------------------------------------


def numpy_step(sizes, X, y):
    """Forward, softmax cross-entropy, backward and Adam written out by hand."""
    params = [a.copy() for layer in init_weights(sizes) for a in layer]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.zeros((len(y), sizes[-1]), np.float32)
    onehot[np.arange(len(y)), y] = 1
    n_layers, t = len(sizes) - 1, [0]

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
        t[0] += 1
        b1, b2 = BETAS
        step_size = LR / (1 - b1 ** t[0])
        root_bc2 = np.sqrt(1 - b2 ** t[0])
        for p, g, m_, v_ in zip(params, grads, m, v):
            m_ *= b1
            m_ += (1 - b1) * g
            v_ *= b2
            v_ += (1 - b2) * g * g
            denom = np.sqrt(v_)
            denom /= root_bc2
            denom += EPS
            p -= step_size * m_ / denom
        return loss

    return step


# -- PyTorch -----------------------------------------------------------------------------------


def torch_step(sizes, X, y):
    model = torch_mlp(torch, sizes)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    return train_step(model, opt, torch.nn.functional.cross_entropy, torch.from_numpy(X),
                      torch.from_numpy(y), zero_grad_first=False, host_loss=True)


# -- tinygrad_opt ------------------------------------------------------------------------------


def ours_step(sizes, X, y):
    """The default: Adam runs once over flat buffers holding the small parameters
    (optim/flat.py)."""
    model = ours_mlp(sizes)
    opt = optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    return train_step(model, opt, nn.functional.cross_entropy, tg.tensor(X), tg.tensor(y),
                      zero_grad_first=False, host_loss=True)


def eager_step(sizes, X, y):
    """The same step with the flat buffers off: Adam's rule runs once per parameter."""
    step = ours_step(sizes, X, y)

    def per_parameter():
        with flat.disabled():
            return step()

    return per_parameter


# -- timing ------------------------------------------------------------------------------------


def race(steps, windows, window_s):
    """Per-window seconds per step for each implementation, alternating."""
    for step in steps.values():  # warm up: caches, allocator, BLAS threads
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
    return f"{seconds * 1e6:8.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:8.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (for CI)")
    parser.add_argument("--only", choices=[c[0] for c in CONFIGS], action="append",
                        help="run only these configurations")
    parser.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: "
                        "the libraries' own choice, usually one per core)")
    args = parser.parse_args(argv)
    if args.threads and torch is not None:
        torch.set_num_threads(args.threads)
    windows, window_s = (3, 0.05) if args.quick else (15, 0.25)
    rng = np.random.default_rng(0)
    makers = {"ours": ours_step, "eager": eager_step, "numpy": numpy_step}
    if torch is not None:
        makers["torch"] = torch_step
    else:
        print("PyTorch is not installed: its column is skipped.")

    threads = args.threads or "default"
    print(f"one training step (forward, cross-entropy, backward, Adam, zero_grad), float32, "
          f"median of {windows} alternating windows, {os.cpu_count()} cores, threads: {threads}")
    print("ours: flat-buffer Adam (the default); eager: per-parameter Adam "
          "(tinygrad_opt.optim.flat.disabled()); ratios are ours over each column")
    header = (f"{'model':<26}{'ours':>12}{'eager':>12}{'numpy':>12}{'torch':>12}"
              f"{'ours/eager':>12}{'ours/numpy':>12}{'eager/numpy':>12}{'ours/torch':>12}  goal")
    print(header)
    print("-" * len(header))
    results = {}
    for name, sizes, batch, (against, bound) in CONFIGS:
        if args.only and name not in args.only:
            continue
        X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], batch).astype(np.int64)
        steps = {key: make(sizes, X, y) for key, make in makers.items()}
        per_step = race(steps, windows, window_s if name != "wide" else 4 * window_s)
        med = {key: statistics.median(times) for key, times in per_step.items()}
        ratio = {key: statistics.median(a / b for a, b in zip(per_step["ours"], per_step[key]))
                 for key in per_step if key != "ours"}
        eager_numpy = statistics.median(a / b for a, b in zip(per_step["eager"],
                                                              per_step["numpy"]))
        ok = ratio.get(against)
        verdict = "n/a" if ok is None else ("ok" if ok <= bound else "MISSED")
        label = f"{name} {'-'.join(map(str, sizes))} b{batch}"
        cells = "".join(f"{fmt_time(med[key]) if key in med else '-':>12}" for key in
                        ("ours", "eager", "numpy", "torch"))
        rcells = "".join(f"{ratio[key]:11.2f}x" if key in ratio else f"{'-':>12}" for key in
                         ("eager", "numpy"))
        rcells += f"{eager_numpy:11.2f}x"
        rcells += f"{ratio['torch']:11.2f}x" if "torch" in ratio else f"{'-':>12}"
        print(f"{label:<26}{cells}{rcells}  <= {bound}x {against}: {verdict}")
        results[name] = {"median_s": med, "ratio": ratio, "eager/numpy": eager_numpy,
                         "verdict": verdict}

    if not args.only or "mid" in args.only:
        name, sizes, batch, _ = CONFIGS[1]
        X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], batch).astype(np.int64)
        n_steps = 20 if args.quick else 100
        ours = peak_memory(ours_step, sizes, X, y, n_steps)
        eager = peak_memory(eager_step, sizes, X, y, n_steps)
        hand = peak_memory(numpy_step, sizes, X, y, n_steps)
        print(f"\npeak memory over {n_steps} steps of the mid model (tracemalloc: weights, "
              f"Adam state, gradients, temporaries): ours {ours / 2**20:.2f} MiB, "
              f"eager {eager / 2**20:.2f} MiB, hand NumPy {hand / 2**20:.2f} MiB, "
              f"ratio ours/numpy {ours / hand:.2f}x (goal <= 1.5x); PyTorch: not measurable "
              "here (its allocator is invisible to tracemalloc).")
        results["memory"] = {"ours": ours, "eager": eager, "numpy": hand}
    return results


if __name__ == "__main__":
    main()
