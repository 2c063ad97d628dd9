"""The synthetic line generator: deterministic, lines differ, masks cover the defects."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspect_app.cli import main
from sensors.dataset import LineDataset
from sensors.synthetic import (
    IMAGE_CLASSES,
    LineSpec,
    WriteOptions,
    draw_labels,
    make_part,
    write_line,
)
from sensors.synthetic.surfaces import COARSE_BLUR_SIGMA, smooth_noise

SMALL = {"image_size": 96, "duration_s": 0.25, "sample_rate_hz": 12800.0}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_the_same_part() -> None:
    spec = LineSpec.from_seed(3)
    assert LineSpec.from_seed(3) == spec
    label = spec.classes[0]
    a, b = make_part(spec, 5, label), make_part(spec, 5, label)
    assert a.image is not None and b.image is not None
    assert np.array_equal(a.image, b.image)
    assert a.vibration is not None and b.vibration is not None
    assert np.array_equal(a.vibration, b.vibration)
    assert a.severity == b.severity and a.rpm == b.rpm


def test_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_line(tmp_path / name, 11, 8, 0.5, **SMALL)  # type: ignore[arg-type]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_lines_differ_across_seeds() -> None:
    specs = [LineSpec.from_seed(s) for s in range(1, 41)]
    assert len({s.surface.family for s in specs}) == 5
    assert len({s.geometry.shape for s in specs}) >= 3
    assert len({s.classes for s in specs}) >= 20
    assert all(3 <= len(s.classes) <= 5 for s in specs)
    rpms = [s.machine.rpm for s in specs]
    assert len(set(rpms)) == len(rpms)
    teeth = {s.machine.gear_teeth for s in specs}
    assert len(teeth) >= 10
    for s in specs:
        assert 1500 <= s.machine.housing.freq_hz <= 5500
        assert all(1500 <= r.freq_hz <= 5500 for r in s.machine.resonances)
    a = make_part(specs[0], 0).image
    b = make_part(specs[1], 0).image
    assert a is not None and b is not None and not np.array_equal(a, b)


def test_image_only_line_has_no_vibration_and_only_visible_classes() -> None:
    spec = LineSpec.from_seed(5, modalities=("image",))
    assert set(spec.classes) <= set(IMAGE_CLASSES)
    part = make_part(spec, 0, spec.classes[0])
    assert part.vibration is None and part.image is not None


@pytest.mark.parametrize("label", IMAGE_CLASSES)
def test_mask_covers_what_the_defect_changed(label: str) -> None:
    spec = LineSpec.from_seed(21, classes=IMAGE_CLASSES, image_size=128)
    for index in range(3):
        good = make_part(spec, index)
        bad = make_part(spec, index, label, severity=0.7)
        assert good.mask is None and bad.mask is not None and good.image is not None
        assert bad.image is not None
        diff = np.abs(bad.image.astype(float) - good.image.astype(float)).sum(-1)
        near = bad.mask | _grow(bad.mask, 3)
        assert diff[bad.mask].mean() > 8, f"{label} part {index} barely changed the image"
        assert diff[near].sum() > 0.9 * diff.sum(), f"{label} part {index} changed pixels off mask"
        assert bad.mask.mean() < 0.1


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            out |= np.roll(mask, (dy, dx), axis=(0, 1))
    return out


def test_vibration_only_defect_leaves_the_image_alone() -> None:
    spec = LineSpec.from_seed(15)
    assert "bearing_outer" in spec.classes
    good, bad = make_part(spec, 2), make_part(spec, 2, "bearing_outer", severity=0.5)
    assert bad.mask is None
    assert good.image is not None and bad.image is not None
    assert np.array_equal(good.image, bad.image)


def test_labels_are_spread_over_every_class() -> None:
    spec = LineSpec.from_seed(15)
    labels = draw_labels(spec, 60, 0.4)
    assert labels.count("ok") == 36
    counts = [labels.count(c) for c in spec.classes]
    assert min(counts) >= 4 and sum(counts) == 24
    with pytest.raises(ValueError, match="defect_fraction"):
        draw_labels(spec, 10, 1.5)


def test_unknown_label_is_refused() -> None:
    spec = LineSpec.from_seed(15)
    missing = next(c for c in IMAGE_CLASSES if c not in spec.classes)
    with pytest.raises(ValueError, match="not a class of line"):
        make_part(spec, 0, missing)


def test_written_line_reads_back_through_the_dataset_reader(tmp_path: Path) -> None:
    options = WriteOptions(image_format="jpg", vibration_format="npy16")
    written = write_line(tmp_path, 15, 12, 0.5, split="train", options=options, **SMALL)  # type: ignore[arg-type]
    ds = LineDataset.open(tmp_path)
    assert len(ds) == 12
    assert sorted(ds.classes) == sorted(c for c in written.counts if c != "ok")
    n_masks = 0
    for i in range(len(ds)):
        sample = ds[i]
        assert sample.frame is not None and sample.frame.shape == (96, 96, 3)
        assert sample.vibration is not None
        assert sample.vibration.sample_rate_hz == 12800.0
        assert sample.vibration.samples.shape == (3200,)
        assert sample.vibration.rpm is not None and 800 < sample.vibration.rpm < 2500
        if sample.mask is not None:
            n_masks += 1
            assert sample.label in IMAGE_CLASSES and sample.mask.any()
    assert n_masks == written.n_masks > 0
    with pytest.raises(ValueError, match="exists"):
        write_line(tmp_path, 15, 2, **SMALL)  # type: ignore[arg-type]


def test_png_line_is_written_without_opencv_warnings(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # a JPEG quality handed to a PNG write makes OpenCV warn on stderr once per image
    write_line(tmp_path, 15, 4, 0.5, **SMALL)  # type: ignore[arg-type]
    assert len(list((tmp_path / "images").glob("*.png"))) == 4
    assert "unsupported key" not in capfd.readouterr().err


def test_wav_and_vibration_only_line(tmp_path: Path) -> None:
    options = WriteOptions(vibration_format="wav")
    write_line(tmp_path, 4, 6, 0.5, modalities=("vibration",), options=options, **SMALL)  # type: ignore[arg-type]
    ds = LineDataset.open(tmp_path)
    sample = ds[0]
    assert sample.frame is None and sample.vibration is not None
    assert sample.vibration.sample_rate_hz == 12800.0


def test_synth_command_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "line"
    rc = main(["synth", "--out", str(out), "--line-seed", "9", "--parts", "5",
               "--image-size", "96", "--duration", "0.25"])  # fmt: skip
    assert rc == 0
    assert len((out / "labels.csv").read_text().splitlines()) == 6
    assert "wrote 5 parts of synth-9" in capsys.readouterr().out
    assert main(["synth", "--out", str(out), "--parts", "5", "--classes", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_generation_is_fast() -> None:
    spec = LineSpec.from_seed(31)
    start = time.perf_counter()
    for i in range(10):
        make_part(spec, i, spec.classes[i % len(spec.classes)])
    per_part = (time.perf_counter() - start) / 10
    assert per_part < 0.5, f"{per_part * 1000:.0f} ms per 256 px part with 1 s of vibration"


def test_a_wide_blur_on_a_coarse_grid_matches_the_direct_one() -> None:
    """Large frames' slow shading is blurred on a coarser grid (seconds saved per part); the
    field must stay the same noise, low-passed alike, and frames up to 256 px are untouched."""
    assert COARSE_BLUR_SIGMA > 256 / 3  # the widest blur a 256 px frame asks for
    size, sigma = 512, 512 / 3
    coarse = smooth_noise(np.random.default_rng(0), (size, size), sigma)
    noise = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    direct = cv2.GaussianBlur(noise, (0, 0), sigma)
    direct /= direct.std()
    assert coarse.shape == (size, size)
    assert abs(float(coarse.std()) - 1) < 1e-3
    assert np.corrcoef(coarse.ravel(), direct.ravel())[0, 1] > 0.97
