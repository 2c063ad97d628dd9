"""Versioned line folders: atomic writes, ACTIVE switched last, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspect_app.lines import (
    ACTIVE,
    LineCard,
    active_version,
    input_fit_notes,
    list_lines,
    model_card,
    read_card,
    set_active,
    version_dir,
    versions,
    write_version,
)


def _card(threshold: float = 0.5) -> LineCard:
    return LineCard(
        line="press-3",
        method="prompt",
        classes=["dent", "scratch"],
        threshold=threshold,
        modalities=["image", "vibration"],
        image_size=128,
        spectrum={"psd_bins": 128, "env_bins": 128, "env_band_hz": [2000.0, 5000.0]},
        backbone={"size": "tiny", "sha256": "ab" * 32},
        metrics={"miss_rate": 0.0, "false_reject_rate": 0.04, "auroc": 0.99, "n": 50},
    )


def _weights(tmp: Path) -> None:
    (tmp / "weights.safetensors").write_bytes(b"w")


def test_versions_count_up_and_active_follows(tmp_path: Path) -> None:
    v1 = write_version(tmp_path, "press-3", _card(0.4), _weights)
    v2 = write_version(tmp_path, "press-3", _card(0.6), _weights)
    assert (v1.name, v2.name) == ("v1", "v2")
    assert versions(tmp_path, "press-3") == ["v1", "v2"]
    assert active_version(tmp_path, "press-3") == "v2"
    card = read_card(version_dir(tmp_path, "press-3"))
    assert card.threshold == 0.6 and card.version == "v2" and card.created
    assert "miss rate" in (v2 / "MODEL_CARD.md").read_text()
    assert list_lines(tmp_path) == ["press-3"]
    set_active(tmp_path, "press-3", "v1")
    assert read_card(version_dir(tmp_path, "press-3")).threshold == 0.4


def test_a_failed_write_leaves_the_active_model_and_no_debris(tmp_path: Path) -> None:
    write_version(tmp_path, "press-3", _card(), _weights)

    def crash(tmp: Path) -> None:
        (tmp / "weights.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_version(tmp_path, "press-3", _card(), crash)
    root = tmp_path / "lines" / "press-3"
    assert sorted(p.name for p in root.iterdir()) == [ACTIVE, "v1"]
    assert active_version(tmp_path, "press-3") == "v1"


def test_missing_line_says_how_to_teach_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inspect-app adapt --line nope"):
        active_version(tmp_path, "nope")


def test_line_name_that_escapes_home_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line name"):
        write_version(tmp_path, "../evil", _card(), _weights)
    assert not (tmp_path.parent / "evil").exists()


def test_card_round_trip_and_bad_format(tmp_path: Path) -> None:
    card = _card()
    again = LineCard.from_json(card.to_json())
    assert again == card
    assert again.spectrum_config().env_band_hz == (2000.0, 5000.0)
    with pytest.raises(ValueError, match="format"):
        LineCard.from_json('{"format": 99}')


def test_model_card_names_the_weakest_defective_parts() -> None:
    card = _card()
    assert "What holds the threshold down" not in model_card(card)
    card.metrics["weakest_defects"] = [
        {"part_id": "p7", "label": "scratch", "defect_score": 0.012, "good_at_or_above": 0.9},
        {
            "part_id": "p2",
            "label": "dent",
            "defect_score": 0.3,
            "good_at_or_above": 0.1,
            "strongest_source": "image_template",
            "strongest_spreads": 2.46,
        },
    ]
    card.metrics["miss_tradeoff"] = [
        {"missed": 0, "false_reject_rate": 0.9, "target_miss_rate": 0.0},
        {"missed": 1, "false_reject_rate": 0.1, "target_miss_rate": 0.04},
    ]
    text = model_card(card)
    assert "What holds the threshold down" in text
    # p7 as a card written before the strongest source was recorded: "-"
    assert "| p7 | scratch | 0.0120 | 90.0 % | - | 10.0 % | 0.04 |" in text
    assert "| p2 | dent | 0.3000 | 10.0 % | image_template (2.5) | - | - |" in text


def test_frames_much_longer_than_wide_are_noted_with_what_to_do() -> None:
    """The line sees every frame square: a 1600 x 400 px strip loses four times more detail
    along it than across, which adapt and the model card say."""
    card = _card()
    card.adapt["frame_px"] = [1600, 400]
    (note,) = input_fit_notes(card)
    assert note.startswith("frames are 1600x400 px (4.0 to 1): the line sees each at 128x128")
    assert "coarser along the width" in note and "--roi" in note
    assert note in model_card(card)
    card.adapt["frame_px"] = [300, 400]  # a little taller than wide: nothing to say
    assert input_fit_notes(card) == []


def test_a_camera_that_sees_fixed_surroundings_is_told_to_crop_to_the_part() -> None:
    card = _card()
    card.align = {"camera_fixed_share": 0.07}
    (note,) = input_fit_notes(card)
    assert note.startswith("7% of the frame stays where the camera holds it") and "--roi" in note
    assert note in model_card(card)
    # the region the fixture closes in, from the reference's pixels to the camera's
    card.align = {
        "camera_fixed_share": 0.07,
        "size": 128,
        "camera_fixed_encloses": [16, 15, 96, 97],
    }
    card.adapt["frame_px"] = [320, 320]
    (note,) = input_fit_notes(card)
    assert "--roi 40,37,240,243, the region it closes in" in note
    card.roi = [100, 50, 320, 320]  # a line with a region already: offset by it
    assert "--roi 140,87,240,243" in next(n for n in input_fit_notes(card) if "stays" in n)
    card.roi, card.adapt = None, {}
    card.align = {"camera_fixed_share": 0.0005}  # the generator's frames: nothing to say
    assert input_fit_notes(card) == []
    card.align = {}  # lines taught before it was measured
    assert input_fit_notes(card) == []
