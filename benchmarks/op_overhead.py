"""Per-op overhead of the engine on 16-element float32 arrays: what recording an
op, and backpropagating through it, costs on top of the NumPy calls it makes.

For each op three implementations run the same work: tinygrad_opt, the bare
NumPy calls it makes (forward, and for "fwd+bwd" the backward's calls too), and
PyTorch on the CPU when it is installed. They alternate in short windows; the
table gives the median per-call time over windows and the median of the
per-window ratios (which cancels the machine's slow drifts).

    python benchmarks/op_overhead.py            # about half a minute
    python benchmarks/op_overhead.py --quick    # a few seconds
"""

import argparse
import statistics
import sys
import time

import numpy as np

import tinygrad_opt as tg

try:
    import torch

    torch.set_num_threads(1)
except ImportError:
    torch = None

N = 16
GOALS = {  # row -> microseconds (the goals, for a 2-core machine like CI's)
    "mul  forward (recorded)": 3.0,
    "sum().backward()": 10.0,
    "mul  fwd+bwd": 8.0,
}


def make_cases():
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(N).astype(np.float32) for _ in range(2))
    g = np.ones(N, np.float32)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    ga = tg.tensor(g)
    m = rng.standard_normal((4, 4)).astype(np.float32)
    am = tg.tensor(m, requires_grad=True)
    gm = tg.tensor(np.ones((4, 4), np.float32))
    if torch is not None:
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (x, y))
        tgr = torch.tensor(g)
        tm = torch.tensor(m, requires_grad=True)
        tgm = torch.tensor(np.ones((4, 4), np.float32))

    def reset(*ts):
        for t in ts:
            t.grad = None

    def ours_bwd(fn, grad, *leaves):
        def run():
            fn().backward(grad)
            reset(*leaves)
        return run

    cases = []

    def case(name, ours, bare, theirs=None):
        cases.append((name, ours, bare, theirs if torch is not None else None))

    # forward only: one recorded op (inputs require grad)
    case("add  forward (recorded)", lambda: a + b, lambda: np.add(x, y),
         torch and (lambda: ta + tb))
    case("mul  forward (recorded)", lambda: a * b, lambda: np.multiply(x, y),
         torch and (lambda: ta * tb))
    case("exp  forward (recorded)", lambda: a.exp(), lambda: np.exp(x),
         torch and (lambda: ta.exp()))
    case("relu forward (recorded)", lambda: a.relu(), lambda: np.maximum(x, 0),
         torch and (lambda: ta.relu()))
    case("sum  forward (recorded)", lambda: a.sum(), lambda: x.sum(axis=(0,)),
         torch and (lambda: ta.sum()))
    case("matmul 4x4 forward (recorded)", lambda: am @ am, lambda: m @ m,
         torch and (lambda: tm @ tm))

    # forward + backward of one op, with a given output gradient
    case("add  fwd+bwd", ours_bwd(lambda: a + b, ga, a, b),
         lambda: (np.add(x, y), g.copy()),
         torch and ours_bwd(lambda: ta + tb, tgr, ta, tb))
    case("mul  fwd+bwd", ours_bwd(lambda: a * b, ga, a, b),
         lambda: (np.multiply(x, y), np.multiply(g, y), np.multiply(g, x)),
         torch and ours_bwd(lambda: ta * tb, tgr, ta, tb))
    case("exp  fwd+bwd", ours_bwd(lambda: a.exp(), ga, a),
         lambda: np.multiply(g, np.exp(x)),
         torch and ours_bwd(lambda: ta.exp(), tgr, ta))
    case("tanh fwd+bwd", ours_bwd(lambda: a.tanh(), ga, a),
         lambda: g * (1 - np.tanh(x) ** 2),
         torch and ours_bwd(lambda: ta.tanh(), tgr, ta))
    case("matmul 4x4 fwd+bwd", ours_bwd(lambda: am @ am, gm, am),
         lambda: (m @ m, np.ones((4, 4), np.float32) @ m.T, m.T @ np.ones((4, 4), np.float32)),
         torch and ours_bwd(lambda: tm @ tm, tgm, tm))

    # the smallest backward, and a two-op graph
    def bare_sum_backward():
        x.sum(axis=(0,))
        out = np.empty_like(x)
        out[...] = np.ones((), np.float32)

    def ours_sum_backward():
        a.sum().backward()
        a.grad = None

    def torch_sum_backward():
        ta.sum().backward()
        ta.grad = None

    case("sum().backward()", ours_sum_backward, bare_sum_backward, torch and torch_sum_backward)

    def ours_mul_sum():
        (a * b).sum().backward()
        a.grad = b.grad = None

    def torch_mul_sum():
        (ta * tb).sum().backward()
        ta.grad = tb.grad = None

    def bare_mul_sum():
        np.multiply(x, y).sum(axis=(0,))
        s = np.empty_like(x)
        s[...] = np.ones((), np.float32)
        return s * y, s * x

    case("(a*b).sum().backward()", ours_mul_sum, bare_mul_sum, torch and torch_mul_sum)
    return cases


def per_call(fn, loops):
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops * 1e6


def measure(cases, windows, loops):
    rows = []
    for name, ours, bare, theirs in cases:
        for fn in (ours, bare, theirs):  # warm up
            if fn is not None:
                per_call(fn, loops // 4 + 1)
        t_ours, t_bare, t_torch, r_bare, r_torch = [], [], [], [], []
        for _ in range(windows):
            o, b = per_call(ours, loops), per_call(bare, loops)
            t_ours.append(o)
            t_bare.append(b)
            r_bare.append(o / b)
            if theirs is not None:
                t = per_call(theirs, loops)
                t_torch.append(t)
                r_torch.append(o / t)
        med = statistics.median
        rows.append((name, med(t_ours), med(t_bare), med(r_bare),
                     med(t_torch) if t_torch else None, med(r_torch) if r_torch else None))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter windows")
    args = parser.parse_args(argv)
    windows, loops = (5, 300) if args.quick else (21, 2000)
    rows = measure(make_cases(), windows, loops)
    header = f"{'op (16 float32)':32s} {'ours µs':>8s} {'numpy µs':>9s} {'ours/np':>8s}"
    if torch is not None:
        header += f" {'torch µs':>9s} {'ours/torch':>10s}"
    header += "  goal"
    print(header)
    print("-" * len(header))
    for name, ours, bare, ratio, t_torch, r_torch in rows:
        line = f"{name:32s} {ours:8.2f} {bare:9.2f} {ratio:8.1f}"
        if torch is not None:
            line += f" {t_torch:9.2f} {r_torch:10.2f}"
        goal = GOALS.get(name)
        if goal is not None:
            line += f"  < {goal:g} µs: {'met' if ours < goal else 'NOT met'}"
        print(line)
    print(f"\nnumpy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                        ", torch not installed") + f", python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
