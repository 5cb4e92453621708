"""The ``tinygrad-opt`` command: one subcommand per job.

    tinygrad-opt graph --expr "a*b + c.tanh()" --var a=2 --var b=-3 --var c=1 --out g.svg
    tinygrad-opt graph --mlp 2-4-1 --order 2 --out graph.svg

Each subcommand is a small module in ``tinygrad_opt/commands/`` listed in the
table ``tinygrad_opt.commands.COMMANDS``; it defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``, and imports the heavy
parts of the library inside ``run`` so that ``--help`` stays fast. A command
reports a bad argument by raising :class:`UsageError` (one line, exit code 2)
and a failure it can explain by raising :class:`CommandError` (one line,
exit code 1).
"""

import argparse
import importlib
import os
import sys

from .commands import COMMANDS, CommandError, UsageError

PROG = "tinygrad-opt"


class _Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise _Exit(2)

    def exit(self, status=0, message=None):
        if message:
            print(message.rstrip("\n"), file=sys.stderr)
        raise _Exit(status)


def _load(module_name):
    return importlib.import_module(module_name)


def build_parser():
    """The parser with every subcommand of the table registered."""
    parser = _Parser(prog=PROG, description="A small autograd engine with a complete "
                                            "optimizer stack: pictures, training, races.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = _load(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.error(f"choose a command: {', '.join(COMMANDS)}")
        prog = f"{PROG} {args.command}"
        try:
            code = args._run(args)
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except CommandError as error:
            print(f"{prog}: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (`tinygrad-opt race | head`): stop quietly, and
            # point stdout at devnull so the interpreter's final flush cannot fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        return 0 if code is None else int(code)
    except _Exit as done:
        return done.code


if __name__ == "__main__":  # `python -m tinygrad_opt.cli`
    sys.exit(main())
