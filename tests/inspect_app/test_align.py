"""Pose alignment (inspect_app/align.py): frames registered onto the line's reference part."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from inspect_app.align import (
    Alignment,
    camera_fixed_mask,
    choose_alignment,
    enclosed_region,
    estimate_warp,
    fit_alignment,
    gray,
    register,
)
from inspect_app.preprocess import prepare_batch
from sensors.sample import Sample

S = 64


def _part_image(angle: float = 0.0, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A uint8 RGB part: a plate with three holes of different sizes, moved by a rigid pose."""
    img = np.full((S, S, 3), 30, np.uint8)
    cv2.rectangle(img, (12, 16), (52, 48), (200, 190, 180), -1)
    for (x, y), r in (((20, 24), 4), ((42, 26), 6), ((30, 40), 3)):
        cv2.circle(img, (x, y), r, (40, 40, 40), -1)
    m = cv2.getRotationMatrix2D((S / 2, S / 2), angle, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(img, m, (S, S), borderMode=cv2.BORDER_REPLICATE)


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    from models.inputs import frames_to_tensor

    return frames_to_tensor(frames, S)[0]


def test_a_moved_part_is_put_back_on_the_reference() -> None:
    ref = _tensor([_part_image()])
    moved = _tensor([_part_image(4.0, (3.0, -2.5))])
    alignment = fit_alignment(ref.repeat(3, 1, 1, 1))
    aligned, reg = register(moved, None, alignment.reference)
    before = (moved - ref).abs().mean()
    after = (aligned - ref).abs().mean()
    assert after < 0.3 * before
    assert reg.failed == [] and reg.correlation[0] > 0.9


def test_frames_twice_the_reference_size_are_registered_through_it() -> None:
    """A line comparing 2S px frames keeps its reference at S px: the warp is found on the
    frames averaged down and carried up; it lands them where registering at 2S would."""
    from models.inputs import frames_to_tensor

    def big(frames: list[np.ndarray]) -> torch.Tensor:
        up = [cv2.resize(f, (2 * S, 2 * S), interpolation=cv2.INTER_CUBIC) for f in frames]
        return frames_to_tensor(up, 2 * S)[0]

    small_ref = fit_alignment(_tensor([_part_image()] * 3))
    big_ref = fit_alignment(big([_part_image()] * 3))
    still = big([_part_image()])
    moved = big([_part_image(4.0, (3.0, -2.5))])
    carried, reg = register(moved, None, small_ref.reference)
    direct, _ = register(moved, None, big_ref.reference)
    before = (moved - still).abs().mean()
    assert (carried - still).abs().mean() < 0.3 * before
    assert (carried - direct).abs().mean() < 0.1 * before
    assert reg.failed == [] and reg.warps[0] is not None
    with pytest.raises(ValueError, match="taught at another image size"):
        register(frames_to_tensor([_part_image()], 3 * S // 2)[0], None, small_ref.reference)


def test_parts_that_arrive_in_any_orientation_are_turned_back() -> None:
    """OpenCV's rigid ECC cannot turn a part more than 90 degrees back; a line whose parts come
    in any orientation gets every turn tried first, and only such a line (adapt chooses)."""
    angles = (0.0, 70.0, 150.0, -120.0, 200.0, -35.0, 100.0, 10.0)
    turned = _tensor([_part_image(a, (1.0, -1.0)) for a in angles])
    upright = _tensor([_part_image(0.0, (1.0, -1.0))])
    free = fit_alignment(turned)
    assert free.any_turn and free.unregistered == 0 and free.median_correlation > 0.95
    aligned, reg = register(turned, None, free.reference, free.method, free.any_turn)
    assert reg.failed == []
    spread = (aligned - aligned.mean(0, keepdim=True)).abs().mean()
    assert spread < 0.3 * (turned - turned.mean(0, keepdim=True)).abs().mean()
    again = Alignment.from_dict(free.to_dict())
    assert (
        again.any_turn and not Alignment.from_dict({**free.to_dict(), "any_turn": False}).any_turn
    )
    # the turn is found: 150 degrees, to within ECC's precision
    warp, cc = estimate_warp(gray(upright)[0], gray(turned[2:3])[0], any_turn=True)
    assert abs(math.degrees(math.atan2(warp[1, 0], warp[0, 0])) - (-150.0)) < 2.0 and cc > 0.9
    # tried every way, ECC settles on an empty fixture too: under the floor it is no part
    empty = _tensor([np.random.default_rng(2).integers(20, 30, (S, S, 3)).astype(np.uint8)])
    _, reg = register(empty, None, free.reference, free.method, free.any_turn)
    assert reg.failed == [0] and reg.warps == [None] and np.isnan(reg.correlation[0])
    # parts a few degrees off keep the plain registration (nothing to gain)
    steady = fit_alignment(_tensor([_part_image(a, (0.5, 0.0)) for a in (-3, 2, 0, 4, -1, 1)]))
    assert not steady.any_turn and "any_turn" not in steady.to_dict()


def test_frames_not_present_are_left_alone() -> None:
    frames = _tensor([_part_image(3.0), _part_image(-3.0)])
    alignment = fit_alignment(_tensor([_part_image()] * 2))
    aligned, reg = register(frames, torch.tensor([False, True]), alignment.reference)
    assert torch.equal(aligned[0], frames[0])
    assert np.isnan(reg.correlation[0]) and reg.correlation[1] > 0.9


def test_card_round_trip_and_a_corrupt_reference() -> None:
    alignment = fit_alignment(_tensor([_part_image(a) for a in (-2.0, 0.0, 2.0)]))
    raw = alignment.to_dict()
    again = Alignment.from_dict(raw)
    assert np.abs(again.reference - alignment.reference).max() <= 1 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"line.json: the alignment reference"):
        Alignment.from_dict({**raw, "reference_png": "not base64 at all!"})
    with pytest.raises(ValueError, match="alignment method"):
        Alignment.from_dict({**raw, "method": "sift"})


def _in_fixture(frame: np.ndarray) -> np.ndarray:
    """`frame` seen through a window of a plain plate the camera holds still: the part moves
    inside the window, the window's edges stay where they are."""
    out = np.full((S + 16, S + 16, 3), 120, np.uint8)
    out[8:-8, 8:-8] = frame
    return cv2.resize(out, (S, S), interpolation=cv2.INTER_AREA)


def test_a_fixture_the_camera_holds_still_is_measured_and_a_loose_part_shows_none() -> None:
    """Registration puts the part back and moves what the camera holds still: the good parts
    agree on the window's edges as seen and not registered. On parts alone nothing does."""
    rng = np.random.default_rng(3)
    poses = [(rng.normal(0, 3), tuple(rng.normal(0, 2.5, 2))) for _ in range(12)]
    loose = [_part_image(a, s) for a, s in poses]
    noise = [rng.normal(0, 4, (S, S, 3)) for _ in poses]  # the sensor's own noise

    def noisy(frames: list[np.ndarray]) -> torch.Tensor:
        pairs = zip(frames, noise, strict=True)
        return _tensor([np.clip(f + n, 0, 255).astype(np.uint8) for f, n in pairs])

    assert fit_alignment(noisy(loose)).camera_fixed_share == 0.0
    held = fit_alignment(noisy([_in_fixture(f) for f in loose]))
    assert held.camera_fixed_share > 0.02
    assert Alignment.from_dict(held.to_dict()).camera_fixed_share == pytest.approx(
        held.camera_fixed_share, abs=1e-4
    )
    assert camera_fixed_mask(np.zeros((2, S, S)), np.ones((2, S, S))) is None  # too few parts
    # for adapt's advice, a box inside the window (6.4 px of plate on every side) less the
    # band its edges sweep once registered, holding the part
    x, y, w, h = held.to_dict()["camera_fixed_encloses"]
    assert x >= 6 and y >= 6 and x + w <= S - 6 and y + h <= S - 6 and min(w, h) >= 36
    assert "camera_fixed_encloses" not in fit_alignment(noisy(loose)).to_dict()


def test_the_region_the_camera_fixed_pixels_leave_free() -> None:
    window = np.zeros((S, S), bool)
    window[6:9, 5:60] = window[56:59, 5:60] = True  # top and bottom of a fixture's window
    window[6:59, 5:8] = window[6:59, 57:60] = True  # its sides
    assert enclosed_region(window) == (8, 9, 49, 47)
    clamps = np.zeros((S, S), bool)
    clamps[:, 10:13] = clamps[:, 50:53] = True  # two clamps, top to bottom: the gap between
    assert enclosed_region(clamps) == (13, 0, 37, S)
    assert enclosed_region(np.zeros((S, S), bool)) is None  # nothing holds it in
    centre = np.zeros((S, S), bool)
    centre[S // 2, S // 2] = True
    assert enclosed_region(centre) is None
    small = np.zeros((S, S), bool)
    small[24:27, 24:41] = small[38:41, 24:41] = small[24:41, 24:27] = small[24:41, 38:41] = True
    assert enclosed_region(small) is None  # under a sixteenth of the frame: no part's place


def test_auto_keeps_alignment_for_fixtured_parts_and_drops_it_for_textures() -> None:
    poses = [(a, (dx, dy)) for a, dx, dy in ((-3, 1, 0), (2, -2, 1), (0, 0, 2), (4, 2, -1))]
    parts = _tensor([_part_image(a, s) for a, s in poses])
    good = torch.ones(4, dtype=torch.bool)
    fixtured = choose_alignment(parts, None, good, "auto")
    assert fixtured is not None and fixtured.median_correlation > 0.9
    rng = np.random.default_rng(0)
    textures = _tensor([rng.integers(0, 255, (S, S, 3), dtype=np.uint8) for _ in range(4)])
    assert choose_alignment(textures, None, good, "auto") is None
    assert choose_alignment(parts, None, good, "off") is None
    with pytest.raises(ValueError, match="at least 2 good parts"):
        choose_alignment(parts, None, torch.tensor([True, False, False, False]), "on")
    with pytest.raises(ValueError, match="align must be one of"):
        choose_alignment(parts, None, good, "sometimes")


def test_auto_leaves_the_alignment_off_when_a_good_part_does_not_register() -> None:
    """A good part ECC cannot register (here a blank frame) means good parts that will be
    FAULT on the line: `auto` refuses, saying how many, however well the others register;
    `on` keeps it and counts them (saved with the line)."""
    from inspect_app.align import align_adapt_inputs
    from models.inputs import ModelInputs

    poses = [(a, (dx, dy)) for a, dx, dy in ((-3, 1, 0), (2, -2, 1), (0, 0, 2), (4, 2, -1))]
    frames = [_part_image(a, s) for a, s in poses] + [np.zeros((S, S, 3), np.uint8)]
    parts = _tensor(frames)
    good = torch.ones(len(frames), dtype=torch.bool)
    assert choose_alignment(parts, None, good, "auto") is None
    forced = choose_alignment(parts, None, good, "on")
    assert forced is not None and forced.median_correlation > 0.9
    assert (forced.unregistered, forced.good_parts) == (1, 5)
    assert forced.refusal() == "1 of 5 good parts could not be registered onto one reference"
    assert Alignment.from_dict(forced.to_dict()).good_parts == 5
    inputs = ModelInputs(parts, None, None, None)
    same, none, why = align_adapt_inputs(inputs, good, "auto")
    assert none is None and same is inputs and why == forced.refusal()
    kept = align_adapt_inputs(inputs, good, "on")
    assert kept[1] is not None and kept[2] is None
    fixtured = align_adapt_inputs(ModelInputs(parts[:4], None, None, None), good[:4], "auto")
    assert fixtured[1] is not None and fixtured[1].refusal() is None
    # a defect library without good parts (NEU-DET's) has nothing to register: said so
    no_good = torch.zeros(len(frames), dtype=torch.bool)
    same, none, why = align_adapt_inputs(inputs, no_good, "auto")
    assert (
        none is None and why == "fewer than 2 good parts with an image to register onto each other"
    )
    assert align_adapt_inputs(inputs, no_good, "off")[2] is None


@dataclass
class _Card:
    modalities: list[str]
    image_size: int
    spectrum: dict[str, Any]
    align: dict[str, Any] = field(default_factory=dict)


def test_prepare_batch_registers_frames_of_an_aligned_line() -> None:
    reference = _part_image()
    alignment = fit_alignment(_tensor([reference] * 2))
    part = Sample(part_id="p1", frame=_part_image(5.0, (2.0, 2.0)), label=None)
    plain = prepare_batch([part], _Card(["image"], S, {}))
    aligned = prepare_batch([part], _Card(["image"], S, {}, alignment.to_dict()))
    assert plain.image is not None and aligned.image is not None
    ref = _tensor([reference])
    assert (aligned.image - ref).abs().mean() < 0.3 * (plain.image - ref).abs().mean()


def test_a_part_nearer_the_camera_is_scaled_back() -> None:
    ref = _tensor([_part_image()])
    m = cv2.getRotationMatrix2D((S / 2, S / 2), 2.0, 1.06)  # 6 % larger, turned 2 degrees
    bigger = _tensor([cv2.warpAffine(_part_image(), m, (S, S), borderMode=cv2.BORDER_REPLICATE)])
    alignment = fit_alignment(ref.repeat(2, 1, 1, 1))
    rigid, _ = register(bigger, None, alignment.reference)
    affine, reg = register(bigger, None, alignment.reference, "ecc-affine")
    assert (affine - ref).abs().mean() < 0.6 * (rigid - ref).abs().mean()
    assert reg.correlation[0] > 0.95


def test_heat_maps_go_back_to_where_the_camera_saw_the_part() -> None:
    from inspect_app.align import heatmaps_to_frames

    alignment = fit_alignment(_tensor([_part_image()] * 2))
    moved = _tensor([_part_image(0.0, (10.0, 0.0))])  # the part sits 10 px to the right
    _, reg = register(moved, None, alignment.reference)
    assert reg.warps[0] is not None and abs(float(reg.warps[0][0, 2]) - 10.0) < 1.0
    heat = np.zeros((1, 8, 8), np.float32)
    heat[0, 3, 2] = 1.0  # hot in the reference's place (the model's view), columns 16-24 px
    back = heatmaps_to_frames(heat, reg.warps, S)
    cols = np.arange(8) + 0.5
    centre = float((back[0].sum(0) * cols).sum() / back[0].sum()) * (S / 8)
    assert 26.0 < centre < 32.0  # 20 px in the reference + 10 px of shift
    assert np.array_equal(heatmaps_to_frames(heat, [None], S), heat)


def test_a_frame_that_cannot_be_registered_is_a_data_error_naming_the_part() -> None:
    from sensors.errors import DataError

    alignment = fit_alignment(_tensor([_part_image()] * 2))
    card = _Card(["image"], S, {}, alignment.to_dict())
    empty_fixture = np.full((S, S, 3), 30, np.uint8)  # nothing in the fixture: nothing to match
    with pytest.raises(DataError, match=r"part p2: the frame could not be registered"):
        prepare_batch(
            [
                Sample(part_id="p1", frame=_part_image(2.0), label=None),
                Sample(part_id="p2", frame=empty_fixture, label=None),
            ],
            card,
        )
