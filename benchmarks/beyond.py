"""Per-epoch time and peak Python memory (tracemalloc) of each method of
``tinygrad-opt compare`` on the digits MLP, as ratios to SGD.

    python benchmarks/beyond.py [--sizes 64,256,256,10] [--epochs 2]
"""

import argparse
import tracemalloc

from tinygrad_opt.commands.compare import METHODS, _data, _train


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="64,256,256,10")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    train, val = _data(0)
    rows = {}
    for method, lr in METHODS.items():
        tracemalloc.start()
        hist = _train(method, lr, sizes, args.epochs, 100, 1.0, train, val, 0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows[method] = (hist[-1]["seconds"] / len(hist), peak)
    t0, m0 = rows["sgd_nesterov"]
    print(f"MLP {sizes}, batch 100, {args.epochs} epochs")
    print("| method | s/epoch | time / SGD | peak MiB | memory / SGD |\n|---|---|---|---|---|")
    for m, (t, mem) in rows.items():
        print(f"| {m} | {t:.3f} | {t / t0:.2f} | {mem / 2**20:.1f} | {mem / m0:.2f} |")


if __name__ == "__main__":
    main()
