"""`benchmarks.fewshot --paired`: two runs of the same draws compared run by run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.fewshot import Row, main, paired_table


def _row(method: str, task: str, seed: int, auroc: float, miss: float | None = 0.1) -> Row:
    return Row(method, task, "fused", seed, miss, 0.2, auroc, 0.8, 1.0)


def test_paired_counts_runs_higher_and_lower_and_skips_the_unpaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        _row("prompt (random backbone)", "synth-101", 0, 0.80),
        _row("prompt (random backbone)", "synth-202", 0, 0.90),
        _row("prompt (random backbone)", "synth-303", 0, 0.70),
        _row("prompt (random backbone)", "synth-404", 0, 0.70),  # no partner
        _row("linear", "synth-101", 0, 0.99),  # another method: no partner
    ]
    new = [
        _row("prompt", "synth-101", 0, 0.90),
        _row("prompt", "synth-202", 0, 0.85),
        _row("prompt", "synth-303", 0, 0.70, miss=None),
    ]
    text, unpaired = paired_table(base, new)
    assert unpaired == 2
    assert "| synthetic | fused | prompt | 3 |" in text
    assert "0.800 → 0.817 (1 higher / 1 lower)" in text
    assert "10.0 → 10.0 % (0 higher / 0 lower)" in text  # miss: the run without one left out

    files = []
    for name, rows in (("base", base), ("new", new)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps([asdict(r) for r in rows]))
    assert main(["--paired", str(files[0]), str(files[1])]) == 0
    out = capsys.readouterr().out
    assert "(1 higher / 1 lower)" in out and "2 rows had no partner" in out
