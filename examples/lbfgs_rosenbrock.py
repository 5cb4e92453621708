"""L-BFGS on the Rosenbrock function, with PyTorch's closure, against GD and BFGS.

f(x, y) = (1 - x)² + 100(y - x²)² from (-1.2, 1): a long curved valley with the
minimum at (1, 1). L-BFGS (tg.optim.LBFGS, PyTorch's arguments and behaviour) uses
the strong Wolfe line search; its closure zeroes the gradients, calls backward and
returns the loss, exactly as with torch.optim.LBFGS.

    python examples/lbfgs_rosenbrock.py
"""

import numpy as np

import tinygrad_opt as tg
from tinygrad_opt import optim


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def main():
    x = tg.tensor([-1.2, 1.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=100, tolerance_change=1e-14)
    path = []

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        path.append((*x.numpy(), loss.item()))
        return loss

    opt.step(closure)  # up to max_iter iterations in one call, as in PyTorch
    print(" eval           x           y        f(x, y)")
    for i, (a, b, f) in enumerate(path):
        if i % 5 == 0 or i == len(path) - 1:
            print(f"{i + 1:5d} {a:11.6f} {b:11.6f} {f:14.6e}")
    lbfgs_evals = opt.state[x]["func_evals"]
    first = next(i + 1 for i, p in enumerate(path) if p[2] < 1e-10)

    others = {}
    for method in ("bfgs", "gd"):
        res = optim.minimize(rosenbrock, [-1.2, 1.0], method=method, tol=1e-10,
                             maxiter=2000 if method == "gd" else 1000)
        others[method] = res
    print(f"\nL-BFGS: f < 1e-10 after {first} evaluations, {lbfgs_evals} in all, "
          f"{opt.state[x]['n_iter']} iterations ({opt.state[x]['message']})")
    for method, res in others.items():
        print(f"{method.upper():6s}: {res.nfev} evaluations, x = {np.round(res.x, 6)}, "
              f"f = {res.fun:.2e} ({res.message})")
    return {"x": x.numpy(), "evals": lbfgs_evals, "first": first, "path": np.array(path),
            "others": others}


if __name__ == "__main__":
    main()
