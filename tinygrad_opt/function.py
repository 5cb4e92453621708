"""The old name of :mod:`tinygrad_opt.op`, kept so ``from tinygrad_opt.function import Function``
in existing code still works. The module is :mod:`tinygrad_opt.op` itself, not a copy."""

import sys

from . import op

sys.modules[__name__] = op
