"""The top-level packages import from this distribution, and the CLI lists every command."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from inspect_app.cli import main
from inspect_app.commands import COMMANDS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["inspect_app", "models", "sensors", "ui"])
def test_top_level_packages_come_from_this_distribution(package: str) -> None:
    dist = importlib.metadata.distribution("inspect-app")
    top = {str(f).split("/")[0] for f in dist.files or [] if str(f).endswith(".py")} | set(
        (dist.read_text("top_level.txt") or "").split()
    )
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(REPO), module.__file__
    # editable installs record a finder instead of files; either way the name must be ours
    direct = dist.read_text("direct_url.json") or ""
    assert package in top or "file://" in direct


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "--home" in capsys.readouterr().out


def test_mistyped_command_gets_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adpat"]) == 2
    assert "did you mean 'adapt'" in capsys.readouterr().err


def test_help_does_not_load_the_model_libraries() -> None:
    """`inspect-app --help` and a command's --help build every sub-parser; none of them may load
    torch, transformers or peft (seconds at every call): the commands load them in `run`."""
    code = (
        "import sys\n"
        "from inspect_app.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'PyQt6') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]"
