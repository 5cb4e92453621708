"""Regression: fit y = sin(x) from noisy samples with a tanh MLP and the mean squared error.

    python examples/sine_regression.py
"""

import math

import numpy as np

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.data import make_sine, train_val_test_split
from tinygrad_opt.train import evaluate, fit, predict


def plot(xs, truth, guess, width=61, height=15):
    """sin(x) ('.') and the model's curve ('#') as text, x from left to right."""
    canvas = np.full((height, width), " ")
    for values, mark in ((truth, "."), (guess, "#")):
        rows = ((1.2 - np.clip(values, -1.2, 1.2)) / 2.4 * (height - 1)).round().astype(int)
        canvas[rows, np.arange(width)] = mark
    return "\n".join("|" + "".join(row) + "|" for row in canvas)


def main(epochs=150, lr=0.01, noise=0.1, seed=0, verbose=False):
    tg.manual_seed(seed)
    X, y = make_sine(500, noise=noise, seed=seed)  # X, y of shape (500, 1)
    train, val, test = train_val_test_split(X, y, seed=seed)

    model = nn.MLP([1, 32, 32, 1], activation="tanh")
    loss_fn = nn.functional.mse_loss
    optimizer = optim.Adam(model.parameters(), lr=lr)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    history = fit(model, loss_fn, optimizer, train, val, epochs=epochs, batch_size=32,
                  scheduler=scheduler, seed=seed, verbose=verbose)

    print(f"{history.epochs} epochs, {history.iterations} iterations; the learning rate went "
          f"from {history.lr[0]:.2g} to {history.lr[-1]:.2g} (halved on each val-loss plateau)")
    for e in (0, 9, 49, history.epochs - 1):
        print(f"  epoch {history.epoch[e]:3d}: train MSE {history.train_loss[e]:.4f}, "
              f"val MSE {history.val_loss[e]:.4f}")
    result = evaluate(model, loss_fn, test)
    print(f"test MSE {result['loss']:.4f} (the noise alone gives {noise ** 2:.4f})")

    xs = np.linspace(-math.pi, math.pi, 61, dtype=np.float32)
    guess = predict(model, xs[:, None]).numpy().ravel()
    print("     x    sin(x)   model")
    for i in range(0, 61, 10):
        print(f"  {xs[i]:5.2f}  {math.sin(xs[i]):7.3f}  {guess[i]:7.3f}")
    print(plot(xs, np.sin(xs), guess))
    return {"test_mse": result["loss"], "history": history}


if __name__ == "__main__":
    main()
