"""Second-order costs, as ratios: a Hessian-vector product by double backward
against one gradient, and a full Hessian against PyTorch's.

1. HVP on a 784-512-512-10 tanh MLP (batch 128, cross-entropy), in float64 and
   in float32, built from raw Tensor ops: forward + gradient vs forward + Hv
   with tg.autograd.hvp (Pearlmutter: the gradient with create_graph=True,
   then its vector-Jacobian product with v). Goal: at most 2.6x a gradient in
   both dtypes (the matrix products alone put the floor at 2.50). PyTorch's own
   ratio, same double backward, is measured alongside when it is installed.
   Both run on one thread (a BLAS spinning on two cores against another
   library's threads ruins both timings).
2. The full Hessian of a 105-parameter MLP loss (4-10-5 tanh MLP, 32 points,
   float64) with tg.autograd.hessian, against torch.func ``jacrev(jacrev(f))``
   of the same loss (checked equal first). Goal: at most 1x torch.func's time;
   without torch, under 10 ms.
3. How the batched Hessian scales: f(w) = Σ tanh(Aw)² for n = 50 to 800 in
   float64, tg.autograd.hessian against torch.func ``jacrev(jacrev(f))`` (when
   torch is installed). Goal: at most 1x torch.func at every n.

Implementations alternate in short windows; the table gives medians over
windows of the per-call times and of the per-window ratios.

    python benchmarks/hvp.py            # under a minute
    python benchmarks/hvp.py --scaling  # part 3 only
    python benchmarks/hvp.py --quick    # a few seconds
"""

import argparse
import itertools
import os
import statistics
import time

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy loads its BLAS

import numpy as np
from _mlp import unflatten

import tinygrad_opt as tg

try:
    import torch

    torch.set_num_threads(1)
except ImportError:
    torch = None

HVP_GOAL = 2.6  # Hv / gradient, both dtypes (issue 16 §3; the matmul FLOPs alone give 2.50)


def init(sizes, seed=0):
    """(weight (in, out), bias (out,)) float64 pairs, uniform(-1/sqrt(in), 1/sqrt(in)):
    the weights of both libraries (converted to the dtype measured)."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1 / np.sqrt(fan_in)
        layers.append((rng.uniform(-bound, bound, (fan_in, fan_out)),
                       rng.uniform(-bound, bound, fan_out)))
    return layers


def data(sizes, batch, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, sizes[0])), rng.integers(0, sizes[-1], batch)


# -- tinygrad_opt ------------------------------------------------------------------------------


def ours_loss(params, X, y):
    h = X
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = h.tanh()
    logp = h.log_softmax(-1)
    return -logp[tg.arange(len(y)), y].mean()


def ours_setup(sizes, batch, dtype):
    params = [tg.tensor(a, dtype=dtype, requires_grad=True)
              for layer in init(sizes) for a in layer]
    X, y = data(sizes, batch)
    X, y = tg.tensor(X, dtype=dtype), tg.tensor(y)
    v = [tg.tensor(np.random.default_rng(2).standard_normal(p.shape), dtype=dtype)
         for p in params]

    def gradient():
        return tg.grad(ours_loss(params, X, y), params)

    def hvp():
        return tg.autograd.hvp(lambda *ps: ours_loss(ps, X, y), tuple(params), tuple(v))

    return gradient, hvp


# -- PyTorch -----------------------------------------------------------------------------------


def torch_loss(params, X, y):
    """ours_loss in PyTorch."""
    h = X
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = torch.tanh(h)
    return torch.nn.functional.cross_entropy(h, y)


def torch_setup(sizes, batch, dtype):
    dtype = getattr(torch, dtype)
    params = [torch.tensor(a, dtype=dtype, requires_grad=True)
              for layer in init(sizes) for a in layer]
    X, y = data(sizes, batch)
    X, y = torch.tensor(X, dtype=dtype), torch.tensor(y)
    v = [torch.tensor(np.random.default_rng(2).standard_normal(tuple(p.shape)), dtype=dtype)
         for p in params]

    def gradient():
        return torch.autograd.grad(torch_loss(params, X, y), params)

    def hvp():  # the same double backward: the gradient's vector-Jacobian product with v
        gs = torch.autograd.grad(torch_loss(params, X, y), params, create_graph=True)
        return torch.autograd.grad(gs, params, v)

    return gradient, hvp


# -- timing and tables -------------------------------------------------------------------------


def timed(fn, loops):
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def median_time(fn, windows, loops):
    """The median over windows of fn's time per call (after one call to warm up)."""
    fn()
    return statistics.median(timed(fn, loops) for _ in range(windows))


def ratio_table(pairs, windows, loops):
    """pairs: name -> (numerator fn, denominator fn); alternating windows."""
    results = {}
    for name, (num, den) in pairs.items():
        num(), den()  # warm up
        t_num, t_den, ratios = [], [], []
        for _ in range(windows):
            a, b = timed(num, loops), timed(den, loops)
            t_num.append(a)
            t_den.append(b)
            ratios.append(a / b)
        results[name] = (statistics.median(t_num), statistics.median(t_den),
                         statistics.median(ratios))
    return results


def check_hvp_matches_finite_difference(sizes, batch):
    """A sanity check before timing: Hv against (g(w + εv) - g(w - εv)) / 2ε."""
    params = [tg.tensor(a, dtype="float64", requires_grad=True)
              for layer in init(sizes) for a in layer]
    X, y = data(sizes, batch)
    X, y = tg.tensor(X, dtype="float64"), tg.tensor(y)
    rng = np.random.default_rng(3)
    v = [rng.standard_normal(p.shape) for p in params]
    _, hv = tg.autograd.hvp(lambda *ps: ours_loss(ps, X, y), tuple(params),
                            tuple(tg.tensor(a) for a in v))
    eps = 1e-5

    def grad_at(sign):
        moved = [tg.tensor(p.numpy() + sign * eps * a, requires_grad=True)
                 for p, a in zip(params, v)]
        return tg.grad(ours_loss(moved, X, y), moved)

    numeric = [(gp.numpy() - gm.numpy()) / (2 * eps) for gp, gm in zip(grad_at(1), grad_at(-1))]
    error = max(float(np.abs(h.numpy() - n).max()) for h, n in zip(hv, numeric))
    scale = max(float(np.abs(n).max()) for n in numeric)
    assert error <= 1e-5 * scale, f"Hv disagrees with finite differences: {error} vs {scale}"


def hessian_case():
    """The 105-parameter MLP: 4-10-5 with tanh, 32 points, cross-entropy. Returns
    our Hessian and (when torch is installed, else None) torch.func's
    ``jacrev(jacrev)`` of the same loss, checked equal first."""
    sizes = [4, 10, 5]
    layers = init(sizes)
    theta = np.concatenate([a.ravel() for layer in layers for a in layer])
    assert theta.size == 105
    X, y = data(sizes, 32)
    shapes = [a.shape for layer in layers for a in layer]
    X_ours, y_ours = tg.tensor(X, dtype="float64"), tg.tensor(y)
    w_ours = tg.tensor(theta, dtype="float64")

    def ours():
        return tg.autograd.hessian(lambda flat: ours_loss(unflatten(flat, shapes), X_ours,
                                                          y_ours), w_ours)

    if torch is None:
        return ours, None
    X_torch, y_torch = torch.tensor(X), torch.tensor(y)
    hessian_torch = torch.func.jacrev(torch.func.jacrev(
        lambda flat: torch_loss(unflatten(flat, shapes), X_torch, y_torch)))
    w_torch = torch.tensor(theta)

    def theirs():
        return hessian_torch(w_torch)

    check_same_hessian(ours, theirs, "the 105-parameter MLP")
    return ours, theirs


def scaling_case(n, seed=4):
    """f(w) = Σ tanh(Aw)² with a random (n, n) A: its Hessian by tg.autograd.hessian
    and (when torch is installed) by torch.func.jacrev(jacrev(f)), checked equal first."""
    rng = np.random.default_rng(seed)
    A, w = rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n)
    A_ours, w_ours = tg.tensor(A, dtype="float64"), tg.tensor(w, dtype="float64")

    def ours():
        return tg.autograd.hessian(lambda v: ((A_ours @ v).tanh() ** 2).sum(), w_ours)

    if torch is None:
        return ours, None
    A_torch, w_torch = torch.tensor(A), torch.tensor(w)
    hessian_torch = torch.func.jacrev(torch.func.jacrev(
        lambda v: (torch.tanh(A_torch @ v) ** 2).sum()))

    def theirs():
        return hessian_torch(w_torch)

    check_same_hessian(ours, theirs, f"n = {n}")
    return ours, theirs


def check_same_hessian(ours, theirs, case):
    """Before timing: our Hessian equals torch.func's to 1e-12 of its largest entry."""
    expected = theirs().numpy()
    error = float(np.abs(ours().numpy() - expected).max())
    assert error <= 1e-12 * float(np.abs(expected).max()), f"Hessians differ ({case}): {error}"


def scaling_table(windows, sizes=(50, 100, 200, 400, 800)):
    print("\nBatched Hessian of f(w) = sum(tanh(Aw)^2), float64, one thread: "
          "tg.autograd.hessian vs torch.func jacrev(jacrev)")
    print(f"{'n':>5s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s}  goal")
    for n in sizes:
        ours, theirs = scaling_case(n)
        loops = max(1, 400 // n)  # windows of a few milliseconds at least
        if theirs is None:
            a = median_time(ours, windows, loops)
            print(f"{n:5d} {a * 1e3:9.2f} {'-':>9s} {'-':>6s}  (torch not installed)")
            continue
        (a, b, r), = ratio_table({n: (ours, theirs)}, windows, loops).values()
        goal = "met" if r <= 1 else "NOT met"
        print(f"{n:5d} {a * 1e3:9.2f} {b * 1e3:9.2f} {r:6.2f}  <= 1x: {goal}")


def matmul_flop_ratio(sizes, batch):
    """Matmul work of an exact double-backward Hv over that of a gradient.

    With f_i = batch * d_i * d_(i+1) per layer: the gradient costs the forward
    (Σf) plus dW and dh for each layer but no dX (2Σf - f_0). The second
    backward differentiates each matmul of the first backward and of the
    forward, two products each, one where X is a constant (6Σf - 4f_0).
    """
    f = [batch * a * b for a, b in itertools.pairwise(sizes)]
    grad = 3 * sum(f) - f[0]
    return (grad + 6 * sum(f) - 4 * f[0]) / grad


def hvp_table(windows, loops, sizes=(784, 512, 512, 10), batch=128):
    """Hv over a gradient on the mid MLP, float64 then float32, ours and PyTorch's."""
    print(f"MLP {'-'.join(map(str, sizes))}, batch {batch}, one thread; matmul FLOPs "
          f"Hv / gradient = {matmul_flop_ratio(sizes, batch):.2f}")
    print(f"{'':38s} {'Hv ms':>8s} {'grad ms':>8s} {'ratio':>6s}  goal")
    for dtype in ("float64", "float32"):
        g, h = ours_setup(sizes, batch, dtype)
        pairs = {f"tinygrad_opt  Hv / gradient, {dtype}": (h, g)}
        if torch is not None:
            t_grad, t_hvp = torch_setup(sizes, batch, dtype)
            pairs[f"PyTorch       Hv / gradient, {dtype}"] = (t_hvp, t_grad)
        for name, (a, b, r) in ratio_table(pairs, windows, loops).items():
            goal = f"  <= {HVP_GOAL}x: " + ("met" if r <= HVP_GOAL else "NOT met") \
                if "tinygrad" in name else ""
            print(f"{name:38s} {a * 1e3:8.2f} {b * 1e3:8.2f} {r:6.2f}{goal}")


def hessian_table(windows):
    """Our full Hessian of the 105-parameter MLP against torch.func's."""
    ours, theirs = hessian_case()
    print("\nFull Hessian of a 105-parameter MLP loss (4-10-5 tanh, 32 points, float64): "
          "tg.autograd.hessian vs torch.func jacrev(jacrev)")
    if theirs is None:
        a = median_time(ours, windows, 20)
        print(f"{a * 1e3:.2f} ms (torch not installed)  < 10 ms: "
              f"{'met' if a < 0.010 else 'NOT met'}")
        return
    (a, b, r), = ratio_table({"hessian": (ours, theirs)}, windows, 20).values()
    print(f"{'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s}  goal")
    print(f"{a * 1e3:9.2f} {b * 1e3:9.2f} {r:6.2f}  <= 1x: {'met' if r <= 1 else 'NOT met'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter windows")
    parser.add_argument("--scaling", action="store_true", help="only the Hessian scaling (part 3)")
    args = parser.parse_args(argv)
    windows, loops = (3, 1) if args.quick else (41, 1)
    if args.scaling:
        scaling_table(windows)
        return
    check_hvp_matches_finite_difference([5, 7, 3], 4)
    hvp_table(windows, loops)
    hessian_table(windows)
    scaling_table(windows)


if __name__ == "__main__":
    main()
