"""`benchmarks.fewshot`: the out-of-fold rates adapt prints, against the test parts' rates."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.fewshot import Row, foretold_table, main


def _row(task: str, oof_fr: float, test_fr: float, oof_miss: float | None, miss: float) -> Row:
    row = Row("prompt", task, "fused", 0, miss, test_fr, 0.9, 0.8, 1.0)
    row.extra["out_of_fold"] = {"miss_rate": oof_miss, "false_reject_rate": oof_fr}
    return row


def test_foretold_means_each_rate_and_the_gap_run_by_run() -> None:
    rows = [
        _row("synth-101", 0.30, 0.10, 0.0, 0.10),  # gaps 0.20 and 0.10
        _row("synth-202", 0.10, 0.30, 0.0, 0.00),  # gaps 0.20 and 0.00
        Row("prompt", "synth-303", "fused", 0, 0.1, 0.2, 0.9, 0.8, 1.0),  # no out-of-fold rates
    ]
    text = foretold_table(rows)
    # the means agree (20 % both) while every run was 20 points off: the gap shows it
    assert "| synthetic (held-out seeds) | fused | prompt | 2 | 20.0 / 20.0 %, 20.0 |" in text
    assert "| 0.0 / 5.0 %, 5.0 |" in text


def test_foretold_is_empty_without_out_of_fold_rates() -> None:
    assert foretold_table([Row("resnet", "synth-101", "fused", 0, 0.1, 0.2, 0.9, 0.8, 1.0)]) == ""


def test_table_from_earlier_files_prints_the_foretold_table_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([asdict(_row("synth-101", 0.30, 0.10, 0.0, 0.10))]))
    assert main(["--table-from", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| synthetic (held-out seeds) | fused | prompt | 1 | 30.0 / 10.0 %, 20.0 |" in out
