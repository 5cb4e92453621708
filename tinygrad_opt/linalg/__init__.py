"""Linear algebra for the optimizers: solvers for A x = b (``tg.linalg.cg``, ...).

See :mod:`tinygrad_opt.linalg.solvers`. The same module is ``tg.optim.solvers``.
"""

from . import solvers
from .solvers import *  # the names in solvers.__all__, listed once there

__all__ = ["solvers"]
__all__ += solvers.__all__
