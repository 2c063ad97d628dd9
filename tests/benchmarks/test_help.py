"""Every benchmark script explains itself: `python -m benchmarks.X --help` prints and exits 0.

(argparse formats help strings with %: a bare "5 %" in one used to crash fewshot's --help.)
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SCRIPTS = (
    "backbone",
    "backbone_probe",
    "calibrate",
    "camera_frames",
    "clipping",
    "console",
    "drift",
    "fewshot",
    "frame_size",
    "lines_at_once",
    "neu_crops",
    "optimize",
    "reject_burst",
    "report",
    "sensors",
    "throughput",
    "visibility",
)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_and_exits_0(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr("sys.argv", [f"benchmarks/{name}.py", "--help"])
    with pytest.raises(SystemExit) as exc:
        module.main()
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_every_script_is_listed() -> None:
    here = Path(__file__).resolve().parents[2] / "benchmarks"
    found = {p.stem for p in here.glob("*.py") if p.stem != "__init__"}
    assert found == set(SCRIPTS)
