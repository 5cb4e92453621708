"""The subcommands of ``tinygrad-opt``: name -> module, in the order ``--help`` lists them.

To add one, write ``tinygrad_opt/commands/<name>.py`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (see ``graph.py``), and add
one line here. Raise ``tinygrad_opt.cli.UsageError`` for a bad argument (exit
code 2) and ``tinygrad_opt.cli.CommandError`` for an explained failure (exit 1).
"""

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
