"""`inspect-app console` on the command line (no window is opened here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspect_app.cli import main


def test_help_teaches_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["console", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "inspect-app console --line demo-line" in out
    for option in ("--line", "--source", "--db", "--operator", "--start"):
        assert option in out


def test_a_home_without_line_models_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["console", "--home", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no line model" in err and "inspect-app adapt --line" in err


def test_a_reduced_precision_graph_is_for_onnxruntime_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["console", "--home", str(tmp_path), "--line", "l", "--precision", "int8"]
    assert main(argv) == 2
    assert "--precision int8 picks an exported graph for --backend onnxruntime; torch runs" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--backend", "tensorrt"]) == 2
    assert "tensorrt runs its engine" in capsys.readouterr().err
