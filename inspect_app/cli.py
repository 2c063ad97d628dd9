"""The `inspect-app` console script: one parser, one sub-command per module in `commands/`."""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from inspect_app import __version__
from inspect_app.commands import COMMANDS

EPILOG = """\
Every command takes --home DIR (or $INSPECT_APP_HOME): where line models, the default
defect log (SQLite) and snapshots live. `inspect-app COMMAND --help` explains each command.

Start here:  inspect-app demo
"""


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"inspect_app.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspect-app",
        description="Line-side quality inspection: camera + vibration, PASS / FAIL per part.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"inspect-app {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _command_module(name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--home",
            metavar="DIR",
            default=None,
            help="where line models, the default database and snapshots live "
            "(default: $INSPECT_APP_HOME or the platform's user data folder)",
        )
        module.add_arguments(p)
    return parser


def _suggest(argv: Sequence[str]) -> str | None:
    """A close match for a mistyped command, e.g. `adpat` -> `adapt`."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None or first in COMMANDS:
        return None
    match = difflib.get_close_matches(first, COMMANDS, n=1)
    return match[0] if match else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    hint = _suggest(argv)
    if hint is not None:
        print(f"inspect-app: unknown command {argv[0]!r}; did you mean {hint!r}?", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = _command_module(args.command)
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        print("inspect-app: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
