"""Newton's method on linear regression: one step, from anywhere.

The lecture asks: "Can you apply Newton's method for linear regression? What do you
get as a result?" The loss J(θ) = (y - Xθ)ᵀ(y - Xθ) is a quadratic with gradient
-2Xᵀ(y - Xθ) and constant Hessian 2XᵀX, so its second-order model is exact and one
Newton step θ - H⁻¹∇J lands on the minimum from any start: θ* = (XᵀX)⁻¹Xᵀy, the
normal equations. The Hessian here comes from double backward; gradient descent
with the best fixed learning rate is shown for contrast.

    python examples/newton_linear_regression.py
"""

import numpy as np

import tinygrad_opt as tg
from tinygrad_opt import optim


def main(n=200, d=5, seed=0, gd_steps=200):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.logspace(0, 1, d)  # features of different scales
    theta_true = rng.standard_normal(d)
    y = X @ theta_true + 0.1 * rng.standard_normal(n)
    Xt, yt = tg.tensor(X, dtype="float64"), tg.tensor(y, dtype="float64")
    normal_equations = np.linalg.solve(X.T @ X, X.T @ y)

    def loss_of(theta):
        def closure():
            r = yt - Xt @ theta
            return (r * r).sum()
        return closure

    print("Newton from three starts (one step each):")
    for start in (np.zeros(d), rng.normal(0, 100, d), np.full(d, -1e4)):
        theta = tg.tensor(start, dtype="float64", requires_grad=True)
        opt = optim.Newton([theta])
        before = float(opt.step(loss_of(theta)))
        after = loss_of(theta)().item()
        err = np.abs(theta.numpy() - normal_equations).max()
        print(f"  J: {before:12.4g} -> {after:.6f}   max |θ - (XᵀX)⁻¹Xᵀy| = {err:.1e}")

    H = tg.autograd.hessian(lambda t: ((yt - Xt @ t) ** 2).sum(),
                            tg.tensor(np.zeros(d), dtype="float64")).numpy()
    print(f"Hessian from double backward equals 2XᵀX: {np.allclose(H, 2 * X.T @ X)}; "
          f"condition number {np.linalg.cond(H):.0f}")

    theta = tg.tensor(np.zeros(d), dtype="float64", requires_grad=True)
    lr = 1.0 / np.linalg.eigvalsh(H).max()  # the largest stable-and-safe fixed step
    gd = optim.GD([theta], lr=lr, line_search=None)
    for _ in range(gd_steps):
        gd.step(loss_of(theta))
    gd_err = np.abs(theta.numpy() - normal_equations).max()
    print(f"gradient descent, lr = 1/λmax, {gd_steps} steps: max error {gd_err:.1e} "
          f"(the slow direction shrinks by {1 - np.linalg.eigvalsh(H).min() * lr:.4f} per step)")
    return {"newton_error": err, "gd_error": gd_err}


if __name__ == "__main__":
    main()
