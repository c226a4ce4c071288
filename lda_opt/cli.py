"""The ``lda-opt`` command line.

Every subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only registers them.  Only the module of the subcommand being
run is imported, so ``lda-opt solve`` does not pay for the imports of ``lda-opt duality``.  Bad input gives exit status 2 and exactly
one line on stderr, ``lda-opt CMD: error: MESSAGE``, naming the option or parameter:
``ValueError``, ``TypeError`` and ``OSError`` (a missing file, a permission, a name too long,
a full disk) raised by a subcommand's ``run`` (bad input before any work: each subcommand
validates everything first) are reported by :func:`main`;
argparse's own errors (an unknown option or choice, a value that does not parse, a missing
argument) raise ``SystemExit(2)`` after the same single line, without the usage synopsis
(``lda-opt CMD --help`` prints it).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("lda_opt.commands.solve", "solve an imaging problem with LDA, MetaLDA, ELDA, GD or AGD"),
    "check": ("lda_opt.commands.check", "check the convergence-theorem invariants of a solve run"),
    "complexity": ("lda_opt.commands.complexity", "measure the iteration complexity N(eps_tol)"),
    "train": ("lda_opt.commands.train", "train an unrolled LDA-Net from a config file"),
    "duality": ("lda_opt.commands.duality", "convex dual of the two-layer soft-thresholding CNN"),
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (subparsers are of the same class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of blanks collapsed to single spaces."""
    return " ".join(str(message).split())


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of ``command`` (or of every subcommand when None) are added."""
    parser = _Parser(prog="lda-opt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    parser.subcommand_parsers = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        parser.subcommand_parsers[name] = sp
        sp.set_defaults(_module=module)
        if command is None or name == command:
            importlib.import_module(module).add_arguments(sp)
    return parser


def _command(argv: list[str]) -> str:
    """The subcommand named in ``argv`` ("" when none: argparse then reports the error)."""
    for token in argv:
        if not token.startswith("-"):
            return token
    return ""


def _check_single_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a single-valued option that argparse parsed as a list: ``--opt=--`` gives
    ``[]`` (argparse drops the ``--``), which would otherwise reach the command."""
    for action in parser._actions:
        if action.option_strings and action.nargs is None and isinstance(getattr(args, action.dest, None), list):
            parser.error(f"argument {'/'.join(action.option_strings)}: expected one argument")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    _check_single_values(parser.subcommand_parsers[args.command], args)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except (ValueError, TypeError, OSError) as exc:  # OSError: FileNotFoundError, PermissionError, ...
        print(f"lda-opt {args.command}: error: {one_line(exc) or type(exc).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
