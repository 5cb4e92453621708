"""tinygrad_opt on an NVIDIA GPU (CuPy) against PyTorch CUDA, in one process.

1. One training step -- zero_grad, forward, cross-entropy, backward, Adam -- in float32 of
   the 784-2048-2048-10 MLP at batch 512 and of a 4096-4096-4096-10 MLP at batch 4096,
   same weights and data for both; goal: within 1.2x of PyTorch. The two alternate in
   windows of many steps, each window ends with a device synchronisation, and the table
   gives medians of the per-window times and of the per-window ratios.
2. One Adam step over 10^7 float32 parameters (one tensor): it must read θ, g, m, v and
   write θ, m, v, 7 x 4 B x 10^7 = 280 MB; the bandwidth that achieves is compared with
   the device's copy bandwidth measured in the same run (a 400 MB device-to-device
   copy); goal: at least 70%. The unfused update and PyTorch's fused Adam are shown too.

Matrix products run in true float32 on both sides (no TF32): PyTorch's default, and
CuPy's unless CUPY_TF32=1.

    python benchmarks/gpu.py            # a minute or two
    python benchmarks/gpu.py --quick    # a few seconds
    python benchmarks/gpu.py --json results.json

Without CuPy or a GPU it says so and exits 0; without a CUDA build of PyTorch it measures
tinygrad_opt alone.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
from _mlp import BETAS, EPS, LR, ours_mlp, torch_mlp, train_step

import tinygrad_opt as tg
from tinygrad_opt import cuda_kernels, nn, optim

MODELS = [  # name, sizes, batch; goal: ours / torch <= 1.2
    ("784-2048-2048-10", [784, 2048, 2048, 10], 512),
    ("4096-4096-4096-10", [4096, 4096, 4096, 10], 4096),
]
STEP_GOAL = 1.2
ADAM_PARAMS = 10**7
ADAM_BYTES = 7 * 4 * ADAM_PARAMS  # read θ, g, m, v; write θ, m, v
BANDWIDTH_GOAL = 0.70


def load_torch():
    """PyTorch with CUDA, or None (and why)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA here"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch, None


# -- one training step ---------------------------------------------------------------------------


def ours_step(sizes, X, y):
    model = ours_mlp(sizes).to("cuda")
    opt = optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    Xg, yg = tg.tensor(X, device="cuda"), tg.tensor(y, device="cuda")
    return train_step(model, opt, nn.functional.cross_entropy, Xg, yg,
                      zero_grad_first=True, host_loss=False)


def torch_step(torch, sizes, X, y):
    model = torch_mlp(torch, sizes).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    Xg, yg = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    return train_step(model, opt, torch.nn.functional.cross_entropy, Xg, yg,
                      zero_grad_first=True, host_loss=False)


def synchronize(torch):
    tg.cuda.synchronize()
    if torch is not None:
        torch.cuda.synchronize()


def timed(fn, n, torch):
    """Seconds per call of ``fn`` over ``n`` calls, the device drained before and after."""
    synchronize(torch)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    synchronize(torch)
    return (time.perf_counter() - start) / n


def race(steps, windows, window_s, torch):
    """Per-window seconds per step of each implementation, alternating."""
    reps = {}
    for name, step in steps.items():
        timed(step, 3, torch)  # warm up: kernels compiled, memory pools filled
        reps[name] = max(1, int(window_s / max(timed(step, 3, torch), 1e-6)))
    per_step = {name: [] for name in steps}
    for w in range(windows):
        for name in (steps if w % 2 == 0 else reversed(list(steps))):
            per_step[name].append(timed(steps[name], reps[name], torch))
    return per_step


def losses_agree(ours, theirs, steps=3):
    """A sanity check that both run the same computation: the first losses."""
    a = [ours().item() for _ in range(steps)]
    b = [theirs().item() for _ in range(steps)]
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))


# -- one Adam step over 10^7 parameters ------------------------------------------------------------


def copy_bandwidth(cupy, torch, nbytes=400 * 2**20, reps=20):
    """Bytes per second of a device-to-device copy (read + write), the best of a
    cudaMemcpy and an elementwise copy kernel."""
    src = cupy.random.standard_normal(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    memcpy = timed(lambda: dst.data.copy_from_device_async(src.data, src.nbytes), reps, torch)
    kernel = timed(lambda: cupy.copyto(dst, src), reps, torch)
    return 2 * src.nbytes / min(memcpy, kernel)


def adam_step(reps, torch):
    """Seconds per fused and unfused Adam step over one 10^7-element float32 tensor."""
    p = tg.zeros(ADAM_PARAMS, device="cuda", requires_grad=True)
    p.grad = tg.randn(ADAM_PARAMS, device="cuda")
    opt = optim.Adam([p], lr=LR, betas=BETAS, eps=EPS)
    opt.step()  # state allocated, kernel compiled
    fused = timed(opt.step, reps, torch)
    with cuda_kernels.unfused():
        opt.step()
        unfused = timed(opt.step, reps, torch)
    return fused, unfused


def torch_adam_step(torch, reps):
    p = torch.zeros(ADAM_PARAMS, device="cuda", requires_grad=True)
    p.grad = torch.randn(ADAM_PARAMS, device="cuda")
    opt = torch.optim.Adam([p], lr=LR, betas=BETAS, eps=EPS, fused=True)
    opt.step()
    return timed(opt.step, reps, torch)


# -- report --------------------------------------------------------------------------------------


def fmt_time(seconds):
    return f"{seconds * 1e6:9.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:9.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    if not tg.cuda.is_available():
        cupy = tg.cuda._cupy()
        why = ("CuPy is not installed (pip install tinygrad-opt[gpu])" if cupy is None
               else "CuPy sees no NVIDIA GPU")
        print(f"benchmarks/gpu.py: no GPU to measure on: {why}. Nothing to do.")
        return 0
    cupy = tg.cuda.namespace()
    torch, why_not_torch = load_torch()
    windows, window_s, reps = (3, 0.1, 10) if args.quick else (10, 0.5, 100)
    print(f"GPU: {tg.cuda.get_device_name()}, CuPy {cupy.__version__}"
          + (f", PyTorch {torch.__version__}" if torch else f" ({why_not_torch}: no PyTorch "
             "column)"))
    results = {"device": tg.cuda.get_device_name(), "steps": {}, "adam": {}}

    print(f"\none training step (zero_grad, forward, cross-entropy, backward, Adam), float32, "
          f"median of {windows} alternating windows")
    header = f"{'model':<30}{'ours':>13}{'torch':>13}{'ours/torch':>12}  goal"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    missed = []
    for name, sizes, batch in MODELS:
        X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], batch).astype(np.int64)
        steps = {"ours": ours_step(sizes, X, y)}
        if torch is not None:
            steps["torch"] = torch_step(torch, sizes, X, y)
            drift = losses_agree(steps["ours"], steps["torch"])
        per_step = race(steps, windows, window_s, torch)
        med = {k: statistics.median(v) for k, v in per_step.items()}
        label = f"{name} b{batch}"
        if torch is not None:
            ratio = statistics.median(a / b for a, b in zip(per_step["ours"],
                                                            per_step["torch"]))
            verdict = "ok" if ratio <= STEP_GOAL else "MISSED"
            if verdict != "ok":
                missed.append(label)
            print(f"{label:<30}{fmt_time(med['ours']):>13}{fmt_time(med['torch']):>13}"
                  f"{ratio:11.2f}x  <= {STEP_GOAL}x: {verdict}  (first losses agree to "
                  f"{drift:.1e})")
        else:
            ratio, verdict = None, "n/a"
            print(f"{label:<30}{fmt_time(med['ours']):>13}{'-':>13}{'-':>12}  n/a")
        results["steps"][label] = {"median_s": med, "ratio": ratio, "verdict": verdict}
        del steps
        tg.cuda.empty_cache()

    print(f"\none Adam step over {ADAM_PARAMS:.0e} float32 parameters: {ADAM_BYTES / 1e6:.0f} MB "
          "moved (read θ, g, m, v; write θ, m, v)")
    copy_bw = copy_bandwidth(cupy, torch)
    fused, unfused = adam_step(reps, torch)
    rows = [("device copy (read + write)", None, copy_bw), ("ours, fused kernel", fused, None),
            ("ours, unfused array ops", unfused, None)]
    if torch is not None:
        rows.append(("torch.optim.Adam(fused=True)", torch_adam_step(torch, reps), None))
    header = f"{'':<32}{'time':>13}{'GB/s':>10}{'of copy':>10}"
    print(header)
    print("-" * len(header))
    for label, seconds, bandwidth in rows:
        bandwidth = bandwidth or ADAM_BYTES / seconds
        share = bandwidth / copy_bw
        print(f"{label:<32}{fmt_time(seconds) if seconds else '-':>13}{bandwidth / 1e9:10.0f}"
              f"{share:10.0%}")
        results["adam"][label] = {"seconds": seconds, "bytes_per_s": bandwidth, "of_copy": share}
    share = ADAM_BYTES / fused / copy_bw
    verdict = "ok" if share >= BANDWIDTH_GOAL else "MISSED"
    if verdict != "ok":
        missed.append("Adam bandwidth")
    print(f"fused Adam at {share:.0%} of the copy bandwidth: goal >= {BANDWIDTH_GOAL:.0%}: "
          f"{verdict}")
    results["adam"]["verdict"] = verdict

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=float)
    if missed:
        print(f"\ngoals missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
