"""Small lines for end-to-end tests of adapt and evaluate: a 64 px image-only synthetic line, a
vibration-only one, and operator corrections in a line's defect log for `adapt --from-db`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from inspect_app.home import default_db_url
from inspect_app.store import DefectStore, InspectionRecord
from sensors.synthetic import write_line


def image_line(folder: Path, parts: int, start: int) -> Path:
    """Parts `start`.. of image-only synthetic line 11 at 64 px, 40 % defective, in `folder`."""
    write_line(folder, 11, parts, 0.4, start_index=start, modalities=("image",), image_size=64)
    return folder


def vibration_line(
    folder: Path,
    parts: int,
    start: int,
    classes: tuple[str, ...],
    seed: int = 7,
    **options: float,
) -> Path:
    """Parts `start`.. of vibration-only synthetic line `seed` with `classes`, 40 % defective,
    in `folder`; `options` go to `write_line` (`sample_rate_hz`, `duration_s`, `housing_hz`)."""
    write_line(
        folder, seed, parts, 0.4, start_index=start, modalities=("vibration",), classes=classes,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
    return folder


def taught_image_line(tmp_path: Path, line: str) -> Path:
    """HOME (`tmp_path/home`) with `line` taught by `inspect-app adapt` from 20 of 30 parts of
    `image_line` (the small teach backbone's fixture makes it take seconds)."""
    from inspect_app.cli import main

    home = tmp_path / "home"
    data = image_line(tmp_path / "parts", 30, 0)
    argv = ["adapt", "--home", str(home), "--line", line, "--data", str(data)]
    assert main([*argv, "--samples", "20", "--no-progress"]) == 0
    return home


def correct_in_log(home: Path, line: str, part_ids: Sequence[str]) -> None:
    """Log `part_ids` as FAIL parts of `line` v1 in HOME's default log and correct them as
    operators would: every other one a false alarm (`ok`), the rest relabelled `dent`."""
    now = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
    with DefectStore.open(default_db_url(home)) as store:
        ids = store.add_inspections(
            [InspectionRecord(line, "v1", part, now, "FAIL", "x", 0.9) for part in part_ids]
        )
        for i, inspection in enumerate(ids):
            if i % 2:
                store.add_operator_action(inspection, "false_alarm", "A. Jones")
            else:
                store.add_operator_action(inspection, "relabel", "A. Jones", new_class="dent")
