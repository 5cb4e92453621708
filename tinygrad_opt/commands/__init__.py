"""The subcommands of ``tinygrad-opt``: name -> module, in the order ``--help`` lists them.

To add one, write ``tinygrad_opt/commands/<name>.py`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (see ``graph.py``), and add
one line here. Raise :class:`UsageError` for a bad argument (exit code 2) and
:class:`CommandError` for an explained failure (exit 1): ``tinygrad_opt.cli`` prints
either as one line. (They live here, below every command and the ``cli`` that catches
them, so that the imports point one way.)
"""


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit code 2."""


class CommandError(Exception):
    """A failure the user can fix (a missing program, an unreadable file): one line, exit 1."""


COMMANDS = {
    "demo": "tinygrad_opt.commands.demo",
    "lab": "tinygrad_opt.commands.lab",
    "train": "tinygrad_opt.commands.train",
    "race": "tinygrad_opt.commands.race",
    "opening-arc": "tinygrad_opt.commands.opening_arc",
    "solver-race": "tinygrad_opt.commands.solver_race",
    "graph": "tinygrad_opt.commands.graph",
    "hessian": "tinygrad_opt.commands.hessian",
    "lr-find": "tinygrad_opt.commands.lr_find",
    "sweep": "tinygrad_opt.commands.sweep",
    "gradcheck": "tinygrad_opt.commands.gradcheck",
    "compare": "tinygrad_opt.commands.compare",
}
