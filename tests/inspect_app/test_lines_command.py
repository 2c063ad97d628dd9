"""`inspect-app lines` and `adapt --no-activate`: a new version waits beside the active one,
the engineer switches to it (or back) in one atomic step, and a wrong name is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspect_app.cli import main
from inspect_app.lines import active_version, versions
from tests.inspect_app.small_lines import image_line

pytestmark = pytest.mark.usefixtures("small_teach_backbone")


def _adapt(home: Path, data: Path, *extra: str) -> int:
    argv = ["adapt", "--home", str(home), "--line", "cover-2", "--data", str(data)]
    return main([*argv, "--samples", "20", "--no-progress", *extra])


def test_a_version_saved_aside_is_checked_then_activated_and_rolled_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    data = image_line(tmp_path / "parts", 30, 0)
    assert _adapt(home, data) == 0
    assert _adapt(home, data, "--no-activate", "--seed", "1") == 0
    out = capsys.readouterr().out
    assert "v2 saved in" in out and "not active (the line still runs v1)" in out
    assert "inspect-app lines --line cover-2 --activate v2" in out
    assert versions(home, "cover-2") == ["v1", "v2"] and active_version(home, "cover-2") == "v1"

    assert main(["lines", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cover-2: v1 active of 2 versions; taught ")
    assert "by prompt from 20 parts (image; classes: " in out and "validation: miss " in out

    assert main(["lines", "--home", str(home), "--line", "cover-2"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].endswith(": 2 version(s), v1 active")
    assert listed[1].startswith("* v1: taught ") and listed[4].startswith("  v2: taught ")
    # the test's backbone is a small random one: said so, with the hash the line keeps
    assert listed[2].startswith("    backbone: test (RANDOMLY INITIALISED, sha256 ")
    assert listed[3] == "    runs on: torch; nothing exported yet (inspect-app export)"

    (home / "lines" / "cover-2" / "v1" / "model.engine").write_bytes(b"plan")  # on a Jetson
    assert main(["lines", "--home", str(home), "--line", "cover-2", "--activate", "v2"]) == 0
    out = capsys.readouterr().out
    assert "line cover-2: v2 is now the active version (was v1)" in out and "restart" in out
    assert "note: v1 has a TensorRT engine (model.engine) and v2 has none" in out
    assert active_version(home, "cover-2") == "v2"
    assert main(["lines", "--home", str(home), "--line", "cover-2", "--activate", "v1"]) == 0
    assert active_version(home, "cover-2") == "v1"  # rolled back
    assert main(["lines", "--home", str(home), "--line", "cover-2", "--activate", "v1"]) == 0
    assert "v1 is already the active version" in capsys.readouterr().out

    assert main(["lines", "--home", str(home), "--json"]) == 0
    (listed_line,) = json.loads(capsys.readouterr().out)
    assert listed_line["line"] == "cover-2" and listed_line["active"] == "v1"
    assert [v["version"] for v in listed_line["versions"]] == ["v1", "v2"]
    v1 = listed_line["versions"][0]
    assert v1["method"] == "prompt" and v1["samples"] == 20 and v1["modalities"] == ["image"]
    assert set(v1["validation"]) >= {"miss_rate", "false_reject_rate", "auroc"}
    assert v1["runs_on"] == ["torch", "tensorrt"]  # the engine left there above
    assert main(["export", "--home", str(home), "--line", "cover-2", "--int8"]) == 0
    assert main(["lines", "--home", str(home), "--line", "cover-2"]) == 0
    assert "    runs on: torch; onnxruntime int8, tensorrt" in capsys.readouterr().out


def test_wrong_names_are_clear_errors_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["lines", "--home", str(home)]) == 0
    assert "no lines under" in capsys.readouterr().out
    assert _adapt(home, image_line(tmp_path / "parts", 30, 0)) == 0
    capsys.readouterr()
    argv = ["lines", "--home", str(home), "--line"]
    assert main([*argv, "cover-2", "--activate", "v7"]) == 1
    assert "line 'cover-2' has no version 'v7' (versions: v1)" in capsys.readouterr().err
    assert main([*argv, "press-9"]) == 1
    err = capsys.readouterr().err
    assert "no line 'press-9'" in err and "(lines there: cover-2)" in err
    assert main([*argv, "press-9", "--json"]) == 1
    assert "no line 'press-9'" in capsys.readouterr().err
    assert main([*argv, "../etc", "--activate", "v1"]) == 1
    assert "not allowed" in capsys.readouterr().err
    assert main(["lines", "--home", str(home), "--activate", "v1"]) == 2
    assert "--activate needs --line" in capsys.readouterr().err
    (home / "lines" / "cover-2" / "v1" / "line.json").write_text("{", encoding="utf-8")
    assert main([*argv, "cover-2"]) == 0  # a broken card is shown, the listing goes on
    assert "v1: unreadable: " in capsys.readouterr().out
    assert main([*argv, "cover-2", "--json"]) == 0
    (version,) = json.loads(capsys.readouterr().out)[0]["versions"]
    assert version["version"] == "v1" and version["error"].startswith("unreadable: ")
    assert active_version(home, "cover-2") == "v1"


def test_evaluate_against_the_active_version_shows_what_switching_would_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert _adapt(home, image_line(tmp_path / "parts", 30, 0)) == 0
    assert _adapt(home, image_line(tmp_path / "more", 30, 100), "--no-activate") == 0
    check = image_line(tmp_path / "check", 24, 500)
    argv = ["evaluate", "--home", str(home), "--line", "cover-2", "--data", str(check)]
    argv += ["--no-progress"]
    assert main([*argv, "--version", "v2", "--against", "v2"]) == 1
    assert "is the version being evaluated" in capsys.readouterr().err
    assert main([*argv, "--version", "v2", "--against", "v9"]) == 1
    assert "has no version 'v9'" in capsys.readouterr().err
    capsys.readouterr()

    verdicts = {}
    for version in ("v1", "v2"):
        out_csv = tmp_path / f"{version}.csv"
        assert main([*argv, "--version", version, "--parts-csv", str(out_csv)]) == 0
        rows = out_csv.read_text().splitlines()[1:]
        verdicts[version] = {r.split(",")[0]: r.split(",")[2] for r in rows}
    report = tmp_path / "m.json"
    assert main([*argv, "--version", "v2", "--against", "v1", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "against v1, on the 24 parts both scored:" in out
    against = json.loads(report.read_text())["against"]
    assert against["version"] == "v1" and against["n_common"] == 24
    differ = {pid for ids in against["differs"].values() for pid in ids}
    assert differ == {p for p in verdicts["v2"] if verdicts["v2"][p] != verdicts["v1"][p]}
    assert f"v2 decides {len(differ)} part(s) otherwise than v1" in out
