"""Two moons: a small MLP learns a curved decision boundary, drawn here as text.

    python examples/moons.py
"""

import numpy as np

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.data import make_moons, train_val_test_split
from tinygrad_opt.train import evaluate, fit, predict


def draw(model, X, y, width=60, height=20):
    """The plane as text: the model's regions as '.' (class 0) and ' ' (class 1), the
    training points as 'o' (class 0) and 'x' (class 1)."""
    (x0, y0), (x1, y1) = X.min(axis=0) - 0.3, X.max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(x0, x1, width), np.linspace(y1, y0, height))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    regions = predict(model, grid).numpy().argmax(axis=1).reshape(height, width)
    canvas = np.where(regions == 0, ".", " ").astype("<U1")
    cols = np.clip(((X[:, 0] - x0) / (x1 - x0) * (width - 1)).round().astype(int), 0, width - 1)
    rows = np.clip(((y1 - X[:, 1]) / (y1 - y0) * (height - 1)).round().astype(int), 0,
                   height - 1)
    canvas[rows, cols] = np.where(y == 0, "o", "x")
    return "\n".join("|" + "".join(row) + "|" for row in canvas)


def main(epochs=30, lr=0.01, seed=0, verbose=False):
    tg.manual_seed(seed)
    X, y = make_moons(600, noise=0.2, seed=seed)
    train, val, test = train_val_test_split(X, y, seed=seed)

    model = nn.MLP([2, 16, 16, 2])  # 2 inputs, two hidden layers of 16, 2 class scores
    loss_fn = nn.functional.cross_entropy
    optimizer = optim.Adam(model.parameters(), lr=lr)
    history = fit(model, loss_fn, optimizer, train, val, epochs=epochs, batch_size=32,
                  seed=seed, verbose=verbose)

    print(f"{len(train[0])} training points, {history.epochs} epochs = "
          f"{history.iterations} iterations (mini-batches of 32)")
    print("epoch   train loss   val loss   val acc")
    for e in range(0, history.epochs, max(1, history.epochs // 6)):
        print(f"{history.epoch[e]:5d}   {history.train_loss[e]:10.4f}   "
              f"{history.val_loss[e]:8.4f}   {history.val_acc[e]:7.1%}")
    smooth = history.smoothed(0.9)
    print(f"per-iteration loss (EMA-smoothed): first {smooth[0]:.3f}, last {smooth[-1]:.3f}")

    result = evaluate(model, loss_fn, test)
    print(f"test accuracy {result['acc']:.1%} (test loss {result['loss']:.4f})")
    print(draw(model, *train))
    return {"test_acc": result["acc"], "history": history}


if __name__ == "__main__":
    main()
