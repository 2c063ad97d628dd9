"""One module per `inspect-app` command; `COMMANDS` is the single table the CLI is built from.

Each module defines `HELP` (one line), `DESCRIPTION` (the `--help` text, with an example),
`add_arguments(parser)` and `run(args) -> int`.
"""

COMMANDS: tuple[str, ...] = (
    "demo",
    "synth",
    "capture",
    "adapt",
    "evaluate",
    "calibrate",
    "lines",
    "serve",
    "console",
    "report",
    "export",
    "pretrain",
)
