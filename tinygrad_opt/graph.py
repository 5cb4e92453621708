"""The old name of :mod:`tinygrad_opt.draw`, kept so ``tg.graph.render(...)`` and
``from tinygrad_opt.graph import ...`` in existing code still work. The module is
:mod:`tinygrad_opt.draw` itself, not a copy."""

import sys

from . import draw

sys.modules[__name__] = draw
