"""HOME resolution and line names that must not escape it."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspect_app.home import line_dir, resolve_home


def test_cli_value_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPECT_APP_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "cli") == (tmp_path / "cli").resolve()
    assert resolve_home(None) == (tmp_path / "env").resolve()


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "/etc", "", ".hidden", "a b", "x" * 65])
def test_line_names_that_escape_home_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="line name"):
        line_dir(tmp_path, bad)


def test_good_line_name(tmp_path: Path) -> None:
    assert line_dir(tmp_path, "press-3_A") == (tmp_path / "lines" / "press-3_A").resolve()
