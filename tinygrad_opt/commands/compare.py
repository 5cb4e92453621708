"""``tinygrad-opt compare``: SGD+Nesterov, Adam, ProxProp (exact, cg1), Hessian-free and
K-FAC on the digits MLP, each with its learning rate from the same small search.

For every method the lr grid is its base lr × {1/10, 1/√10, 1, √10, 10} (``--quick``:
{1/10, 1, 10}); each lr trains ``--search-epochs`` epochs and the lr with the lowest
final training loss is retrained for ``--epochs`` epochs. Writes ``results.json``, a
table ``table.md`` and ``compare.png`` (training loss and validation accuracy per epoch
and per wall-second) into ``--out``.
"""

import json
import math
import os
import time

import numpy as np

HELP = "compare SGD, Adam, ProxProp, Hessian-free and K-FAC on the digits MLP"

METHODS = {  # name: base lr
    "sgd_nesterov": 0.1, "adam": 1e-3, "proxprop_exact": 1.0, "proxprop_cg1": 1.0,
    "hessian_free": 1.0, "kfac": 0.1,
}


def add_arguments(parser):
    parser.add_argument("--sizes", default="64,256,256,10", help="MLP layer sizes")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--tau-prox", type=float, default=1.0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="compare_out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for tests")


def _data(seed):
    from ..data import load_digits, train_val_test_split

    X, y = load_digits()
    train, val, _ = train_val_test_split(X, y, seed=seed)
    mean, std = train[0].mean(0), train[0].std(0) + 0.1
    return [((p[0] - mean) / std, p[1]) for p in (train, val)]


def _train(method, lr, sizes, epochs, batch_size, tau, train, val, seed):
    import tinygrad_opt as tg
    from .. import nn, optim

    F = nn.functional
    tg.manual_seed(seed)
    if method.startswith("proxprop"):
        model = nn.ProxPropMLP(sizes, optimization_mode="prox_" + method.split("_")[1],
                                 tau_prox=tau)
    else:
        model = nn.MLP(sizes)
    params = list(model.parameters())
    if method in ("sgd_nesterov",) or method.startswith("proxprop"):
        opt = optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    elif method == "adam":
        opt = optim.Adam(params, lr=lr)
    elif method == "hessian_free":
        opt = optim.HessianFree(params, lr=min(lr, 1.0), max_cg_iter=20)
    else:
        opt = optim.KFAC(model, lr=lr, momentum=0.9)
    Xt, yt = tg.tensor(train[0]), tg.tensor(train[1])
    Xv, yv = tg.tensor(val[0]), val[1]
    rng = np.random.default_rng(seed)
    rows, clock = [], 0.0
    for epoch in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(train[1]))
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            xb, yb = tg.tensor(train[0][idx]), tg.tensor(train[1][idx])
            if method == "hessian_free":
                opt.step(lambda: model(xb), lambda z: F.cross_entropy(z, yb))
            else:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
        clock += time.perf_counter() - start
        with tg.no_grad():
            loss = float(F.cross_entropy(model(Xt), yt).data)
            acc = float((model(Xv).numpy().argmax(1) == yv).mean())
        rows.append({"epoch": epoch + 1, "seconds": clock, "train_loss": loss, "val_acc": acc})
        if not math.isfinite(loss):
            break
    return rows


def run(args):
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    epochs, search_epochs = args.epochs, args.search_epochs
    factors = [0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0]
    if args.quick:
        sizes, epochs, search_epochs, factors = [64, 32, 32, 10], 2, 1, [0.1, 1.0, 10.0]
    train, val = _data(args.seed)
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for method in methods:
        search = {}
        for f in factors:
            lr = METHODS[method] * f
            rows = _train(method, lr, sizes, search_epochs, args.batch_size, args.tau_prox,
                          train, val, args.seed)
            last = rows[-1]["train_loss"]
            search[lr] = last if math.isfinite(last) else math.inf
        best = min(search, key=search.get)
        rows = _train(method, best, sizes, epochs, args.batch_size, args.tau_prox, train, val,
                      args.seed)
        results[method] = {"lr": best, "search": {str(k): v for k, v in search.items()},
                           "history": rows}
        print(f"{method:15s} lr {best:.3g}  train loss {rows[-1]['train_loss']:.4f}  "
              f"val acc {rows[-1]['val_acc']:.3f}  {rows[-1]['seconds']:.2f} s", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"sizes": sizes, "epochs": epochs, "results": results}, fh, indent=1)
    lines = ["| method | lr | train loss ep1 | final train loss | final val acc | seconds | "
             "largest stable lr in search |", "|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        h = r["history"]
        stable = max((float(k) for k, v in r["search"].items() if math.isfinite(v)),
                     default=float("nan"))
        lines.append(f"| {m} | {r['lr']:.3g} | {h[0]['train_loss']:.4f} | "
                     f"{h[-1]['train_loss']:.4f} | {h[-1]['val_acc']:.3f} | "
                     f"{h[-1]['seconds']:.2f} | {stable:.3g} |")
    table = "\n".join(lines)
    with open(os.path.join(args.out, "table.md"), "w") as fh:
        fh.write(table + "\n")
    print(table)
    _plot(results, os.path.join(args.out, "compare.png"))
    return 0


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for m, r in results.items():
        h = r["history"]
        ep = [row["epoch"] for row in h]
        sec = [row["seconds"] for row in h]
        axes[0, 0].semilogy(ep, [row["train_loss"] for row in h], label=m)
        axes[0, 1].semilogy(sec, [row["train_loss"] for row in h], label=m)
        axes[1, 0].plot(ep, [row["val_acc"] for row in h], label=m)
        axes[1, 1].plot(sec, [row["val_acc"] for row in h], label=m)
    for ax, (x, y) in zip(axes.ravel(), [("epoch", "train loss"), ("seconds", "train loss"),
                                         ("epoch", "val accuracy"),
                                         ("seconds", "val accuracy")]):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
