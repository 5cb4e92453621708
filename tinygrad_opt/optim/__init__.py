"""Optimizers and learning-rate schedules (``from tinygrad_opt import optim``).

First order, with PyTorch's arguments, defaults and update rules: SGD,
Adagrad, RMSprop, Adadelta, Adam, AdamW, Adamax, NAdam. Each update is one
pure function on arrays next to its class (``sgd._sgd``, ``adam._adam``, ...).
Schedules live in ``optim.lr_scheduler``.
"""

from ..linalg import solvers

# Second order (full batch): Newton by double backward, Hessian-free Newton-CG,
# BFGS, L-BFGS, Gauss-Newton, Levenberg and Levenberg-Marquardt; line searches; the linear
# solvers (also ``tg.linalg``); scipy-style minimize / least_squares.
from . import line_search, lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .bfgs import BFGS
from .gauss_newton import GaussNewton, LevenbergMarquardt
from .gd import GD
from .hessian_free import HessianFree  # Martens 2010, Gauss-Newton-vector products
from .kfac import KFAC  # Martens & Grosse 2015, Kronecker-factored preconditioned SGD
from .lbfgs import LBFGS
from .levenberg import Levenberg
from .minimize import OptimizeResult, least_squares, minimize
from .nadam import NAdam
from .newton import Newton
from .newton_cg import NewtonCG
from .optimizer import Optimizer, required
from .rmsprop import RMSprop
from .sgd import SGD
