"""`inspect-app serve`: not built yet."""

from __future__ import annotations

import argparse

from inspect_app.commands._unbuilt import not_built

HELP = "(not built yet) serve"
DESCRIPTION = "This command is not built yet in this version."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    return not_built(args)
