"""The study toolkit: the course's pictures, made live from the real optimizers.

* :mod:`~tinygrad_opt.study.landscapes` -- 2-D test functions (Rosenbrock, Beale, Booth,
  Himmelblau, six-hump camel, Rastrigin, the saddle x² - y², the ill-conditioned
  quadratic with a κ knob) in Tensor ops, with residual forms for least squares;
* :mod:`~tinygrad_opt.study.specs` -- optimizers by name (``"sgd:lr=0.1,momentum=0.9"``)
  and the closure each one wants;
* :mod:`~tinygrad_opt.study.race` -- optimizer races: paths, losses, distances,
  evaluations, line-search trials, steps to a tolerance, "fair" lr tuning;
* :mod:`~tinygrad_opt.study.derivative_free` -- random search, random local search,
  numerical-gradient descent, simulated annealing, an evolution strategy (race entrants);
* :mod:`~tinygrad_opt.study.opening_arc` -- the lecture's opening: random search to backprop
  on the digits;
* :mod:`~tinygrad_opt.study.solver_race` -- GD, Jacobi, Gauss-Seidel, CG, PCG, LU, QR and
  Cholesky on A x = b;
* :mod:`~tinygrad_opt.study.hessian_lab` -- exact Hessians by double backward, spectra,
  Lanczos, power iteration, Hutchinson, the edge of stability;
* :mod:`~tinygrad_opt.study.lr_finder` -- the LR range test and the schedule gallery;
* :mod:`~tinygrad_opt.study.sweep` -- grid and random search on a process pool or a
  Dask cluster, resumable, fault tolerant;
* :mod:`~tinygrad_opt.study.gradcheck_lab` -- the finite-difference step sweep;
* :mod:`~tinygrad_opt.study.expressions` -- small Tensor expressions typed by a person,
  evaluated safely, and their derivatives to draw (``graph``, ``gradcheck``, the lab);
* :mod:`~tinygrad_opt.study.plots` -- every picture (matplotlib, Agg, off screen);
* :mod:`~tinygrad_opt.study.report` -- the self-contained HTML report;
* :mod:`~tinygrad_opt.study.demo` -- ``tinygrad-opt demo``.

Submodules load on first use (``tg.study.race``), so importing the package is cheap.
"""

import importlib

_SUBMODULES = ("landscapes", "specs", "race", "hessian_lab", "lr_finder", "sweep",
               "gradcheck_lab", "plots", "report", "demo", "derivative_free", "opening_arc",
               "solver_race", "expressions")

__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tinygrad_opt.study' has no attribute {name!r}")
