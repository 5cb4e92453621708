"""Second-order optimizers against scipy.optimize (and PyTorch), same process.

1. Rosenbrock from the standard start (-1.2, 1, -1.2, 1, ...): function
   evaluations until f < 1e-10, n = 2, 10, 100. Goals: at most scipy's best
   (L-BFGS-B: 44 for n = 2, 88 for n = 10) and PyTorch's LBFGS for n = 100
   (584 in the issue). An evaluation is one call of f (with its gradient);
   Newton's Hessians and Newton-CG's Hessian-vector products are counted
   separately.
2. The 54 NIST StRD runs (27 problems x 2 starts): Levenberg-Marquardt,
   wall time and certified digits (min LRE over the parameters), against
   scipy's least_squares(method="lm") (MINPACK) with its finite-difference
   Jacobian and with the exact Jacobian (ours, handed to it).
3. The full Hessian of a 105-parameter MLP loss (4-10-5 tanh, 32 points):
   tg.autograd.hessian against torch.autograd.functional.hessian. Goal: < 10 ms.

    python benchmarks/second_order.py            # about half a minute
    python benchmarks/second_order.py --quick    # skips the scipy NIST variants
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np
from _mlp import unflatten

import tinygrad_opt as tg
from tinygrad_opt import optim
from tinygrad_opt.autograd.batched import jacobian_matrix

try:
    import scipy.optimize as sopt
except ImportError:
    sopt = None
try:
    import torch

    torch.set_num_threads(1)
except ImportError:
    torch = None

NIST_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nist_strd"
TARGET = 1e-10
GOALS = {2: 44, 10: 88, 100: 584}


# -- 1. Rosenbrock -----------------------------------------------------------------------------

def rosen(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def rosen_residuals(x):
    """Rosenbrock as least squares: f = Σ rᵢ² with r = (10(x₂-x₁²), 1-x₁, ...)."""
    return tg.cat([10 * (x[1:] - x[:-1] ** 2), 1 - x[:-1]])


class Counter:
    """Counts evaluations and remembers the first one that reached f < TARGET."""

    def __init__(self, fn, value=None):
        self.fn, self.value = fn, value or (lambda out: float(out.item()))
        self.calls, self.hit = 0, None

    def __call__(self, x):
        out = self.fn(x)
        self.calls += 1
        if self.hit is None and self.value(out) < TARGET:
            self.hit = self.calls
        return out


def ours_rosenbrock(n):
    x0 = np.tile([-1.2, 1.0], n // 2)
    rows = {}
    for label, method, options in (("L-BFGS (strong Wolfe)", "l-bfgs", {}),
                                   ("BFGS", "bfgs", {}),
                                   ("Newton-CG", "newton-cg", {}),
                                   ("Newton-CG trust region", "newton-cg",
                                    dict(trust_region=True)),
                                   ("Newton (Armijo)", "newton", dict(line_search="armijo"))):
        f = Counter(rosen)
        res = optim.minimize(f, x0, method=method, tol=1e-12, maxiter=20000,
                             options=dict(options))
        rows[label] = (f.hit, res.get("nhev", 0), res.fun)
    r = Counter(rosen_residuals, lambda out: float((out * out).sum().item()))
    res = optim.least_squares(r, x0, method="lm", ftol=0, xtol=1e-15, gtol=1e-15,
                              max_nfev=20000)
    rows["Levenberg-Marquardt (residuals)"] = (r.hit, 0, 2 * res.cost)
    return rows


def scipy_rosenbrock(n):
    if sopt is None:
        return {}
    x0 = np.tile([-1.2, 1.0], n // 2)
    rows = {}
    for method in ("L-BFGS-B", "BFGS", "Newton-CG", "trust-ncg"):
        calls, hit = [0], [None]

        def f(x):
            calls[0] += 1
            v = sopt.rosen(x)
            if hit[0] is None and v < TARGET:
                hit[0] = calls[0]
            return v

        kw = dict(hess=sopt.rosen_hess) if method in ("Newton-CG", "trust-ncg") else {}
        res = sopt.minimize(f, x0, jac=sopt.rosen_der, method=method, tol=1e-14,
                            options=dict(maxiter=20000), **kw)
        rows[f"scipy {method}"] = (hit[0], res.fun)
    return rows


def torch_rosenbrock(n):
    if torch is None:
        return None
    x = torch.tensor(np.tile([-1.2, 1.0], n // 2), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=20000, max_eval=40000,
                            tolerance_grad=1e-12, tolerance_change=1e-14)
    calls, hit = [0], [None]

    def closure():
        opt.zero_grad()
        v = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        v.backward()
        calls[0] += 1
        if hit[0] is None and v.item() < TARGET:
            hit[0] = calls[0]
        return v

    opt.step(closure)
    return hit[0]


def rosenbrock_table():
    print("1. Rosenbrock from (-1.2, 1, ...): function evaluations until f < 1e-10")
    for n in (2, 10, 100):
        ours = ours_rosenbrock(n)
        theirs = scipy_rosenbrock(n)
        pt = torch_rosenbrock(n)
        goal = GOALS[n]
        print(f"\n  n = {n}  (goal <= {goal})")
        print(f"  {'method':34s} {'evals':>7s} {'H or Hv':>8s}")
        for label, (hit, nhev, _) in ours.items():
            mark = "" if hit is None else ("  goal met" if hit <= goal else "")
            print(f"  {label:34s} {hit!s:>7s} {nhev:>8d}{mark}")
        for label, (hit, _) in theirs.items():
            print(f"  {label:34s} {hit!s:>7s}")
        if pt is not None:
            print(f"  {'PyTorch LBFGS (strong Wolfe)':34s} {pt!s:>7s}")
        best = min((h for h, _, _ in ours.values() if h is not None), default=None)
        print(f"  best of ours: {best} -> goal {'met' if best is not None and best <= goal else 'NOT met'}")


# -- 2. NIST -----------------------------------------------------------------------------------

def lre(estimate, certified):
    err = np.abs(np.asarray(estimate) - certified) / np.abs(certified)
    return float(np.min(np.where(err == 0, 15.0, -np.log10(np.where(err == 0, 1.0, err)))))


def nist_table(quick):
    if not (NIST_DIR / "nist.py").is_file():
        print(f"\n2. NIST StRD: skipped (no data at {NIST_DIR})")
        return
    sys.path.insert(0, str(NIST_DIR))
    import nist

    problems = []
    for name in nist.NAMES:
        d = nist.load(name)
        problems.append((name, d, nist.model(name, xp=tg), nist.model(name)))

    def ours():
        out = {}
        for name, d, f, _ in problems:
            x, y = d["x"], d["target"]
            for start in ("start1", "start2"):
                res = optim.least_squares(lambda b: f(b, x) - y, d[start], method="lm", ftol=0,
                                          xtol=1e-15, gtol=1e-15, max_nfev=5000)
                out[name, start] = (lre(res.x, d["certified_params"]), res.nfev, res.njev)
        return out

    def exact_jacobian(f, x, y):
        def jac(b):
            bt = tg.tensor(b, dtype="float64", requires_grad=True)
            return jacobian_matrix(f(bt, x) - y, [bt])
        return jac

    def minpack(exact):
        out = {}
        for name, d, f, fnp in problems:
            x, y = d["x"], d["target"]
            jac = exact_jacobian(f, x, y) if exact else "2-point"
            for start in ("start1", "start2"):
                res = sopt.least_squares(lambda b: fnp(b, x) - y, d[start], jac=jac,
                                         method="lm", x_scale="jac", xtol=1e-15, ftol=1e-15,
                                         gtol=1e-15, max_nfev=100000)
                out[name, start] = (lre(res.x, d["certified_params"]), res.nfev, res.njev)
        return out

    runs = {"tinygrad_opt LM": ours}
    if sopt is not None:
        runs["scipy lm, exact J"] = lambda: minpack(True)
        if not quick:
            runs["scipy lm, 2-point J"] = lambda: minpack(False)
    results, times = {}, {}
    for label, fn in runs.items():
        fn()  # warm up
        samples = []
        for _ in range(1 if quick else 3):
            start = time.perf_counter()
            results[label] = fn()
            samples.append(time.perf_counter() - start)
        times[label] = statistics.median(samples)

    print("\n2. NIST StRD, 27 problems x 2 starts: certified digits (min LRE over the parameters)")
    labels = list(runs)
    header = "".join(f"{lab:>24s}" for lab in labels)
    print(f"  {'problem':10s}{'start':>7s}{header}")
    for name, *_ in problems:
        for start in ("start1", "start2"):
            cells = "".join(f"{results[lab][name, start][0]:>15.1f} ({results[lab][name, start][1]:>4d} f)"
                            for lab in labels)
            print(f"  {name:10s}{start[-1]:>7s}{cells}")
    print()
    ours_time = times["tinygrad_opt LM"]
    for lab in labels:
        digits = [v[0] for v in results[lab].values()]
        passed = sum(dg >= 6 for dg in digits)
        nfev = sum(v[1] for v in results[lab].values())
        print(f"  {lab:24s} {passed:2d}/54 runs >= 6 digits, min {min(digits):5.1f}, "
              f"{nfev:6d} residual evaluations, {times[lab]:6.2f} s "
              f"({times[lab] / ours_time:5.2f}x ours)")


# -- 3. Hessian --------------------------------------------------------------------------------

def hessian_table():
    rng = np.random.default_rng(0)
    shapes = [(4, 10), (10,), (10, 5), (5,)]
    arrays = [rng.uniform(-0.5, 0.5, s) for s in shapes]
    theta = np.concatenate([a.ravel() for a in arrays])
    X = rng.standard_normal((32, 4))
    y = rng.integers(0, 5, 32)
    Xt, yt = tg.tensor(X, dtype="float64"), tg.tensor(y)

    def loss(flat):
        W1, b1, W2, b2 = unflatten(flat, shapes)
        logp = ((Xt @ W1 + b1).tanh() @ W2 + b2).log_softmax(-1)
        return -logp[tg.arange(32), yt].mean()

    w = tg.tensor(theta, dtype="float64")

    def best(fn, repeats=30):
        fn()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    ours = best(lambda: tg.autograd.hessian(loss, w))
    print("\n3. Full Hessian of a 105-parameter MLP loss (4-10-5 tanh, 32 points, cross-entropy)")
    print(f"  {'tinygrad_opt tg.autograd.hessian':44s} {ours * 1e3:7.2f} ms   goal < 10 ms: "
          f"{'met' if ours < 0.010 else 'NOT met'}")
    if torch is not None:
        Xc, yc = torch.tensor(X), torch.tensor(y)

        def tloss(flat):
            W1, b1, W2, b2 = unflatten(flat, shapes)
            return torch.nn.functional.cross_entropy(torch.tanh(Xc @ W1 + b1) @ W2 + b2, yc)

        wt = torch.tensor(theta)
        H_ours = tg.autograd.hessian(loss, w).numpy()
        H_torch = torch.autograd.functional.hessian(tloss, wt).numpy()
        assert np.allclose(H_ours, H_torch, rtol=1e-9, atol=1e-12)
        for vectorize in (False, True):
            t = best(lambda: torch.autograd.functional.hessian(tloss, wt, vectorize=vectorize))
            label = f"PyTorch functional.hessian(vectorize={vectorize})"
            print(f"  {label:44s} {t * 1e3:7.2f} ms   ({t / ours:5.1f}x ours)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timing window, fewer runs")
    args = parser.parse_args(argv)
    rosenbrock_table()
    nist_table(args.quick)
    hessian_table()


if __name__ == "__main__":
    main()
