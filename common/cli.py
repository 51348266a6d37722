"""The one command-line dispatcher (`python -m core|study COMMAND ...`) and the option
groups several commands share.

Each command lives in its own module with `main(argv) -> int`; a package's registry maps
the command name to that module, so listing the commands imports nothing heavy (torch
is imported only by the commands that need it). An error of the toolkit
(`common.errors.ToolkitError`) is printed as one line `error: ...` (exit 1), an unknown
command gives the usage (exit 2).

Shared option groups spell an option the same way in every command:
`add_device` (--device, one rule: `core.device.resolve_device`), `add_quiet` (--quiet,
also accepted as --no-progress), `add_seed`, `add_overwrite` (--overwrite, also accepted
as --force), `add_db` (a study's answer store).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence

from common.errors import ToolkitError

Commands = Mapping[str, tuple[str, str]]   # name -> (module with main(argv), one-line help)


def usage(prog: str, commands: Commands) -> str:
    lines = [f"usage: {prog} COMMAND [options]", "", "commands:"]
    for name, (_, help_text) in commands.items():
        lines.append(f"  {name:<16} {help_text}")
    return "\n".join(lines)


def dispatch(prog: str, commands: Commands, argv: Sequence[str] | None = None) -> int:
    """Run the command named by argv[0] with the rest of argv; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage(prog, commands))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"error: unknown command {name!r}\n\n{usage(prog, commands)}", file=sys.stderr)
        return 2
    module = importlib.import_module(commands[name][0])
    try:
        return int(module.main(rest) or 0)
    except ToolkitError as exc:  # one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


# -- option groups shared by several commands ------------------------------------------

def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument("--device", default=default,
                        help="auto (this process's GPU when there is one, else the CPU), cpu, cuda, cuda:1 "
                             f"(default: {default})")


def add_quiet(parser: argparse.ArgumentParser, dest: str = "quiet") -> None:
    """--quiet and --no-progress: the same switch under either name (`args.<dest>`)."""
    parser.add_argument("--quiet", "--no-progress", dest=dest, action="store_true", help="no progress bars")


def add_seed(parser: argparse.ArgumentParser, default: int = 0, help: str = "random seed (recorded)") -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"{help} (default: {default})")


def add_overwrite(parser: argparse.ArgumentParser, what: str = "--out", dest: str = "overwrite") -> None:
    """--overwrite and --force: the same switch under either name (`args.<dest>`)."""
    parser.add_argument("--overwrite", "--force", dest=dest, action="store_true",
                        help=f"replace {what} if it exists")


def add_db(parser: argparse.ArgumentParser) -> None:
    """--db: the answer store of a study (python -m study ...)."""
    parser.add_argument("--db", help="answer store: SQLite path or URL (default STUDY/answers.sqlite)")
