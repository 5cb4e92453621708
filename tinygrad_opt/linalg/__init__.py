"""Linear algebra for the optimizers: solvers for A x = b (``tg.linalg.cg``, ...).

See :mod:`tinygrad_opt.linalg.solvers`. The same module is ``tg.optim.solvers``.
"""

from . import solvers
from .solvers import (
                      SolveResult,
                      as_operator,
                      cg,
                      cho_solve,
                      cholesky,
                      gauss_seidel,
                      gradient_descent,
                      jacobi,
                      pcg,
                      solve,
                      steihaug,
)

__all__ = [
                      "SolveResult",
                      "as_operator",
                      "cg",
                      "cho_solve",
                      "cholesky",
                      "gauss_seidel",
                      "gradient_descent",
                      "jacobi",
                      "pcg",
                      "solve",
                      "solvers",
                      "steihaug",
]
