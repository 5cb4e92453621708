"""``tinygrad-opt hessian``: the Hessian lab on a small trained MLP.

    tinygrad-opt hessian                                  # moons, 2-8-8-2, trained with Adam
    tinygrad-opt hessian --hidden 16-16 --train-epochs 50 --k 10
    tinygrad-opt hessian --eos 1.0 --eos-steps 300        # λmax against 2/η during GD

Trains the network (``--train-epochs`` of mini-batch training with --optimizer;
0 keeps the random initialisation), then at the trained weights computes the
exact Hessian of the training loss by double backward (up to --exact-limit
parameters), its spectrum, numerical rank, κ = λmax/λmin⁺ (when a spectral gap
defines it), the negative eigenvalues, the curvature named with the gradient norm, the top
--k eigenvalues by Lanczos on Hessian-vector products, |λ|max by power iteration
and Hutchinson's trace estimate. With --eos LR it also trains a copy by
full-batch gradient descent with that step, records λmax every 10 steps against
2/LR and says in sentences computed from the run how far above 2/LR it went and for
how long. Writes spectrum.png, eos.png and hessian.json into --out.
"""

import math

from ..study import hessian_lab
from ..study.race import format_rows
from ..train import fit
from . import _study

HELP = "exact Hessian spectrum, Lanczos, Hutchinson, edge of stability for a small MLP"


def add_arguments(parser):
    _study.add_data_arguments(parser, samples=200, hidden="8-8")
    parser.add_argument("--optimizer", default="adam:lr=0.01", metavar="SPEC",
                        help="training optimizer (default adam:lr=0.01)")
    parser.add_argument("--train-epochs", type=int, default=50,
                        help="epochs of training before the analysis (50; 0: at init)")
    parser.add_argument("--k", type=int, default=5, help="top eigenvalues by Lanczos (5)")
    parser.add_argument("--hutchinson", type=int, default=100, metavar="N",
                        help="Rademacher samples for the trace estimate (100)")
    parser.add_argument("--exact-limit", type=int, default=3000, metavar="N",
                        help="form the exact Hessian up to N parameters (3000)")
    parser.add_argument("--eos", type=float, metavar="LR",
                        help="also run full-batch GD with this step and track λmax vs 2/LR")
    parser.add_argument("--eos-steps", type=int, default=300, help="GD steps for --eos (300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", "-o", default="runs/hessian", metavar="DIR",
                        help="folder for spectrum.png, eos.png, hessian.json (runs/hessian)")
    _study.add_progress(parser)


def run(args):
    _study.check_bounds(args, minimum={"train_epochs": 0, "k": 1, "hutchinson": 1, "samples": 10,
                                       "eos_steps": 1}, above_zero=("eos",))
    study = _study.mlp_study(args, "pick a first-order optimizer for the mini-batch training "
                                   "(sgd, momentum, adam, ...).")
    model, loss_fn, X, y = study.model, study.loss_fn, study.X, study.y
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if args.train_epochs:
        fit(model, loss_fn, study.spec.build(model.parameters()), (X, y),
            epochs=args.train_epochs, batch_size=32, seed=args.seed,
            progress=not args.no_progress)
    n = sum(p.numel() for p in model.parameters())
    print(f"{'-'.join(map(str, study.layer_sizes))} MLP, {n} parameters, on {args.data} "
          f"({len(X)} points)" + (f", trained {args.train_epochs} epochs with {study.spec.label}"
                                  if args.train_epochs else ", at initialisation"))
    lab = hessian_lab.analyze(model, loss_fn, X, y, k=args.k, samples=args.hutchinson,
                              exact_limit=args.exact_limit, seed=args.seed)
    print(format_rows(["quantity", "value"],
                      [[name, f"{v:.6g}" if isinstance(v, float) else str(v)]
                       for name, v in lab.rows()]))
    result = {"n": n, "loss": lab.loss, "grad_norm": lab.grad_norm,
              "lanczos": lab.lanczos.eigenvalues.tolist(),
              "lanczos_iterations": lab.lanczos.iterations, "power": lab.power[0],
              "trace_estimate": lab.trace_estimate, "trace_stderr": lab.trace_stderr}
    if lab.eigenvalues is not None:
        result.update({k: getattr(lab, k) for k in ("lam_max", "lam_min", "lam_min_pos",
                                                    "n_negative", "n_zero", "kind", "trace",
                                                    "rank", "zero_tol", "condition_note",
                                                    "critical")})
        result["condition"] = lab.condition if math.isfinite(lab.condition) else None
        result["eigenvalues"] = lab.eigenvalues.tolist()
    eos = None
    if args.eos is not None:
        model.load_state_dict(init)
        with _study.progress(args, args.eos_steps, "gradient descent") as tick:
            eos = hessian_lab.edge_of_stability(model, loss_fn, X, y, lr=args.eos,
                                                steps=args.eos_steps, every=10, seed=args.seed,
                                                progress=tick)
        sentences, _ = hessian_lab.describe_edge_of_stability(eos)
        print("edge of stability, from the initialisation:")
        print("\n".join(f"  {line}" for line in sentences))
        result["eos"] = {"lr": args.eos, "threshold": eos.threshold,
                         "steps": eos.steps.tolist(), "sharpness": eos.sharpness.tolist(),
                         "loss": eos.loss.tolist(), "diverged": eos.diverged}
    written = study.outputs
    written.json("hessian.json", result)
    plots = _study.plots_or_none()
    if plots is not None:
        plots.spectrum(lab, written.path("spectrum.png"))
        if eos is not None and len(eos.steps):
            plots.sharpness(eos, written.path("eos.png"))
    written.report()
    return 0
