"""Curve fitting four ways: gradient descent, Gauss-Newton, Levenberg and Levenberg-Marquardt.

The model y = a·(1 - exp(-b·x)) (NIST's BoxBOD/Misra1a form) is fit to noisy samples
from a = 200, b = 0.5, starting far away. The residual closure is the same for all
four; GD minimises ½‖r‖² with an Armijo line search, the others use the Jacobian of r
(from autograd) and differ in how they damp JᵀJ. The λ trace shows the lecture's rule
at work: λ rises when a step fails to lower the cost, falls when it succeeds.

    python examples/curve_fitting.py
"""

import numpy as np

import tinygrad_opt as tg
from tinygrad_opt import optim

START = [150.0, 1.0]


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.5, 10, 25)
    y = 200 * (1 - np.exp(-0.5 * x)) + rng.normal(0, 2.0, x.size)
    return tg.tensor(x, dtype="float64"), tg.tensor(y, dtype="float64")


def run(name, make, closure_of, iters):
    p = tg.tensor(START, dtype="float64", requires_grad=True)
    opt = make([p])
    closure = closure_of(p)
    for _ in range(iters):
        opt.step(closure)
        if opt.record["converged"] or opt.record["message"].startswith("stopped"):
            break
    r = opt.record
    return {"name": name, "params": p.numpy().copy(), "cost": r["loss_history"][-1],
            "nit": r["nit"], "nfev": r["nfev"], "njev": r["njev"],
            "lam": list(r.get("lam_history", [])), "history": list(r["loss_history"])}


def main(iters=200):
    x, y = data()

    def residual_closure(p):
        return lambda: p[0] * (1 - (-p[1] * x).exp()) - y

    def loss_closure(p):
        return lambda: 0.5 * ((p[0] * (1 - (-p[1] * x).exp()) - y) ** 2).sum()

    runs = [
        run("GD + Armijo", lambda ps: optim.GD(ps, line_search="armijo"), loss_closure, 2000),
        run("Gauss-Newton", lambda ps: optim.GaussNewton(ps, line_search="armijo"),
            residual_closure, iters),
        run("Levenberg (λI)", lambda ps: optim.LevenbergMarquardt(
            ps, damping="levenberg", lambda_update="multiplicative", lam=1.0, xtol=1e-10),
            residual_closure, iters),
        run("Levenberg-Marquardt", lambda ps: optim.LevenbergMarquardt(
            ps, lambda_update="multiplicative", lam=1.0, xtol=1e-10), residual_closure, iters),
        run("LM, trust region (default)", lambda ps: optim.LevenbergMarquardt(ps, xtol=1e-10),
            residual_closure, iters),
    ]
    print(f"fit y = a(1 - exp(-b x)) from a, b = {START}; truth a = 200, b = 0.5 (noise σ = 2)")
    print(f"{'method':28s} {'a':>9s} {'b':>8s} {'cost':>10s} {'iters':>6s} {'f evals':>8s} "
          f"{'J evals':>8s}")
    for r in runs:
        a, b = r["params"]
        print(f"{r['name']:28s} {a:9.4f} {b:8.5f} {r['cost']:10.4f} {r['nit']:6d} "
              f"{r['nfev']:8d} {r['njev']:8d}")
    for r in runs[2:4]:
        trace = " ".join(f"{lam:.0e}" for lam in r["lam"][:14])
        print(f"λ trace, {r['name']}: {trace}{' ...' if len(r['lam']) > 14 else ''}")
    return {r["name"]: r for r in runs}


if __name__ == "__main__":
    main()
