"""``tinygrad-opt compare``: SGD+Nesterov, Adam, ProxProp (exact, cg1), Hessian-free and
K-FAC on the digits MLP, each with its learning rate from the same small search.

For every method the lr grid is its base lr × {1/10, 1/√10, 1, √10, 10} (``--quick``:
{1/10, 1, 10}); each lr trains ``--search-epochs`` epochs and the lr with the lowest
final training loss is retrained for ``--epochs`` epochs.

Time is reported as a ratio to SGD's, measured *paired* in CPU time of this process:
``--timing-rounds`` times, epochs of the method and of SGD run back to back (method,
SGD, SGD, method) and the median of the per-round ratios is kept -- other programs
on a loaded machine neither count nor drift the ratio, where raw seconds would. Writes ``results.json``, a
table ``table.md`` and ``compare.png`` (training loss and validation accuracy per
epoch and per cost in SGD epochs) into ``--out`` (default ``runs/compare``) and prints
where.
"""

import math
import statistics
import time

import numpy as np

import tinygrad_opt as tg

from .. import nn, optim
from ..data import load_digits, train_val_test_split
from . import _study
from ._study import usage

HELP = "compare SGD, Adam, ProxProp, Hessian-free and K-FAC on the digits MLP"

METHODS = {  # name: base lr
    "sgd_nesterov": 0.1, "adam": 1e-3, "proxprop_exact": 1.0, "proxprop_cg1": 1.0,
    "hessian_free": 1.0, "kfac": 0.1,
}


def add_arguments(parser):
    parser.add_argument("--sizes", default="64,256,256,10", metavar="N,N,...",
                        help="MLP layer sizes, input to output (default 64,256,256,10)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs of the final run at the chosen lr (default 10)")
    parser.add_argument("--search-epochs", type=int, default=2,
                        help="epochs per lr of the search; the lowest training loss after "
                             "them picks the lr (default 2)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="mini-batch size for every method (default 100)")
    parser.add_argument("--tau-prox", type=float, default=1.0,
                        help="ProxProp's proximal step τ (default 1)")
    parser.add_argument("--methods", default=",".join(METHODS), metavar="LIST",
                        help=f"methods to run, from {', '.join(METHODS)} (default: all)")
    parser.add_argument("--timing-rounds", type=int, default=5, metavar="N",
                        help="rounds of paired method/SGD epochs for the time ratio; 0 skips "
                             "the timing (default 5)")
    parser.add_argument("--out", "-o", default="runs/compare", metavar="DIR",
                        help="folder for results.json, table.md and compare.png "
                             "(default runs/compare)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny network, 2 epochs, 3-point search, 1 timing round (tests)")


def _data(seed):
    X, y = load_digits()
    train, val, _ = train_val_test_split(X, y, seed=seed)
    mean, std = train[0].mean(0), train[0].std(0) + 0.1
    return [((p[0] - mean) / std, p[1]) for p in (train, val)]


def _train(method, lr, sizes, epochs, batch_size, tau, train, val, seed):
    """Train ``method`` for ``epochs``; one row per epoch (seconds so far, training loss
    on the whole training set, validation accuracy)."""
    F = nn.functional
    model, epoch = _epoch_runner(method, lr, sizes, batch_size, tau, train, seed)
    Xt, yt = tg.tensor(train[0]), tg.tensor(train[1])
    Xv, yv = tg.tensor(val[0]), val[1]
    rows, clock = [], 0.0
    for number in range(epochs):
        clock += epoch()
        with tg.no_grad():
            loss = float(F.cross_entropy(model(Xt), yt).data)
            acc = float((model(Xv).numpy().argmax(1) == yv).mean())
        rows.append({"epoch": number + 1, "seconds": clock, "train_loss": loss, "val_acc": acc})
        if not math.isfinite(loss):
            break
    return rows


def paired_time_ratio(method, lr, sgd_lr, sizes, batch_size, tau, train, seed, rounds=5,
                      min_seconds=0.2):
    """The median over ``rounds`` of (CPU time of ``method``) / (CPU time of SGD with
    Nesterov) for the same number of epochs, each round running them in the order
    method, SGD, SGD, method (a drift in the machine's speed during a round cancels).
    CPU time of this process, not wall time: other programs on a loaded machine do not
    count, and each half runs enough epochs for SGD's share to take ``min_seconds``."""
    _, method_epoch = _epoch_runner(method, lr, sizes, batch_size, tau, train, seed)
    _, sgd_epoch = _epoch_runner("sgd_nesterov", sgd_lr, sizes, batch_size, tau, train, seed)
    method_epoch(), sgd_epoch()  # warm up: first-call allocations are not the method's cost

    def cpu(epoch, count):
        start = time.process_time()
        for _ in range(count):
            epoch()
        return time.process_time() - start

    count = max(1, math.ceil(min_seconds / max(cpu(sgd_epoch, 1), 1e-3)))

    def one_round():
        first, sgd = cpu(method_epoch, count), cpu(sgd_epoch, 2 * count)
        return (first + cpu(method_epoch, count)) / sgd

    return statistics.median(one_round() for _ in range(rounds))


def _epoch_runner(method, lr, sizes, batch_size, tau, train, seed):
    """(model, epoch): ``epoch()`` trains one pass over ``train`` and returns its seconds."""
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
    rng = np.random.default_rng(seed)

    def epoch():
        start = time.perf_counter()
        order = rng.permutation(len(train[1]))
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            xb, yb = tg.tensor(train[0][idx]), tg.tensor(train[1][idx])
            if method == "hessian_free":
                opt.step(lambda xb=xb: model(xb), lambda z, yb=yb: F.cross_entropy(z, yb))
            else:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
        return time.perf_counter() - start

    return model, epoch


def _check(args):
    """(sizes, methods) from the arguments, or a one-line UsageError."""
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or sizes[0] != 64 or sizes[-1] != 10 or min(sizes) < 1:
        raise usage(f"--sizes expects layer sizes from 64 (the digits' pixels) to 10 (the "
                    f"classes) joined by commas, such as 64,256,256,10; got {args.sizes!r}.")
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise usage(f"--methods: unknown method {', '.join(map(repr, unknown)) or '(none)'}; "
                    f"choose from {', '.join(METHODS)}.")
    _study.check_bounds(args, minimum={"epochs": 1, "search_epochs": 1, "batch_size": 1,
                                       "timing_rounds": 0}, above_zero=("tau_prox",))
    return sizes, methods


def run(args):
    sizes, methods = _check(args)
    epochs, search_epochs = args.epochs, args.search_epochs
    factors = [0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0]
    rounds, min_seconds = args.timing_rounds, 0.2
    if args.quick:
        sizes, epochs, search_epochs, factors = [64, 32, 32, 10], 2, 1, [0.1, 1.0, 10.0]
        rounds, min_seconds = min(rounds, 1), 0.0
    train, val = _data(args.seed)
    written = _study.Outputs(args.out)
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
              f"val acc {rows[-1]['val_acc']:.3f}", flush=True)
    sgd_lr = results.get("sgd_nesterov", {}).get("lr", METHODS["sgd_nesterov"])
    for method, r in results.items():
        r["time_vs_sgd"] = (paired_time_ratio(method, r["lr"], sgd_lr, sizes, args.batch_size,
                                              args.tau_prox, train, args.seed, rounds,
                                              min_seconds)
                            if rounds else None)
    written.json("results.json", {"sizes": sizes, "epochs": epochs, "timing_rounds": rounds,
                                  "results": results}, indent=1)
    table = format_table(results)
    written.text("table.md", table + "\n")
    print(table)
    _plot(results, written.path("compare.png"))
    written.report()
    return 0


def format_table(results):
    """The Markdown table of a comparison (time as the paired ratio to SGD's epoch)."""
    lines = [("| method | lr | train loss, epoch 1 | final train loss | final val acc | "
              "time per epoch / SGD's | largest stable lr in search |"),
             "|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        h = r["history"]
        stable = max((float(k) for k, v in r["search"].items() if math.isfinite(v)),
                     default=float("nan"))
        ratio = "—" if r.get("time_vs_sgd") is None else f"{r['time_vs_sgd']:.2f}×"
        lines.append(f"| {m} | {r['lr']:.3g} | {h[0]['train_loss']:.4f} | "
                     f"{h[-1]['train_loss']:.4f} | {h[-1]['val_acc']:.3f} | {ratio} | "
                     f"{stable:.3g} |")
    return "\n".join(lines)


def _plot(results, path):
    """Training loss and validation accuracy per epoch, and against the cost in SGD
    epochs (epochs × the paired time ratio, log scale): wall seconds of a loaded machine
    would say more about the machine than about the method."""
    import matplotlib  # optional (the plot extra), and its backend must be chosen first

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional too, and only after the backend is chosen

    timed = all(r.get("time_vs_sgd") for r in results.values())
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    for m, r in results.items():
        h = r["history"]
        ep = [row["epoch"] for row in h]
        cost = ([e * r["time_vs_sgd"] for e in ep] if timed else [row["seconds"] for row in h])
        axes[0, 0].semilogy(ep, [row["train_loss"] for row in h], label=m)
        axes[0, 1].semilogy(cost, [row["train_loss"] for row in h], label=m)
        axes[1, 0].plot(ep, [row["val_acc"] for row in h], label=m)
        axes[1, 1].plot(cost, [row["val_acc"] for row in h], label=m)
    cost_label = ("cost in SGD epochs (paired CPU time, log scale)" if timed
                  else "seconds (wall clock)")
    for ax, (x, y) in zip(axes.ravel(), [("epoch", "training loss"), (cost_label, "training loss"),
                                         ("epoch", "validation accuracy"),
                                         (cost_label, "validation accuracy")]):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    if timed:
        axes[0, 1].set_xscale("log")
        axes[1, 1].set_xscale("log")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="method")
    fig.savefig(path, dpi=90)
    plt.close(fig)
