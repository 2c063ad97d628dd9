"""What a command that is not built yet says: it names itself, and exits non-zero."""

from __future__ import annotations

import argparse
import sys


def not_built(args: argparse.Namespace) -> int:
    print(
        f"inspect-app {args.command}: not built yet in this version; see the README's roadmap.",
        file=sys.stderr,
    )
    return 2
