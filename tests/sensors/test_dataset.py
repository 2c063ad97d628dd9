"""The dataset contract: labels.csv (all columns), MVTec AD, class folders, windows, refusals."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sensors.camera import FrameFormat, Roi
from sensors.dataset import LineDataset
from sensors.errors import DataError


def gray(value: int = 128, size: tuple[int, int] = (16, 20)) -> np.ndarray:
    return np.full(size, value, dtype=np.uint8)


@pytest.fixture
def line(tmp_path: Path, write_image: Callable[..., Path], write_wav: Callable[..., Path]) -> Path:
    """A labels.csv dataset using every contract column."""
    write_image("img/p1.png", gray())
    write_image("img/p2.jpg", gray(90))
    mask = np.zeros((16, 20), dtype=np.uint8)
    mask[4:8, 2:6] = 255
    write_image("masks/p2.png", mask)
    (tmp_path / "vib").mkdir()
    np.save(tmp_path / "vib" / "p1.npy", np.sin(np.arange(3000) / 5.0).astype(np.float32))
    write_wav("vib/p3.wav", 0.1 * np.sin(np.arange(2000) / 3.0), rate=1000)
    (tmp_path / "labels.csv").write_text(
        "part_id,image,vibration,label,sample_rate_hz,mask,timestamp,rpm,channel,split\n"
        "A1,img/p1.png,vib/p1.npy,ok,1000,,12.5,1790,,train\n"
        "A2,img/p2.jpg,,scratch,,masks/p2.png,2026-01-02T03:04:05Z,,,test\n"
        ",,vib/p3.wav,inner_race,,,,,,\n"
    )
    return tmp_path


def test_labels_csv_reads_every_column(line: Path) -> None:
    ds = LineDataset.open(line)
    assert ds.layout == "labels.csv" and len(ds) == 3
    assert ds.labels == ["ok", "scratch", "inner_race"]
    assert ds.classes == ["inner_race", "scratch"]
    first = ds[0]
    assert first.part_id == "A1" and first.frame is not None and first.frame.shape == (16, 20, 3)
    assert first.vibration is not None and first.vibration.sample_rate_hz == 1000
    assert first.vibration.rpm == 1790 and first.timestamp == 12.5
    assert first.meta["split"] == "train" and ds.rows[0].split == "train"
    second = ds[1]
    assert second.vibration is None and second.mask is not None and second.mask.dtype == bool
    assert second.mask.sum() == 16 and second.timestamp == 1767323045.0
    third = ds[2]
    assert third.part_id == "vib/p3" and third.frame is None
    assert third.vibration is not None and third.vibration.sample_rate_hz == 1000  # WAV header


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_spreadsheets_semicolon_or_tab_table_reads_the_same(line: Path, delimiter: str) -> None:
    """Saved by a spreadsheet where the comma is the decimal mark: `;`-separated, with a
    byte-order mark, CRLF line ends and decimal commas; or tab-separated."""
    comma = LineDataset.open(line)
    table = (line / "labels.csv").read_text().replace(",", delimiter)
    if delimiter == ";":
        table = table.replace("12.5", "12,5")  # and a decimal comma
    (line / "labels.csv").write_bytes(b"\xef\xbb\xbf" + table.replace("\n", "\r\n").encode())
    ds = LineDataset.open(line)
    assert [r.part_id for r in ds.rows] == [r.part_id for r in comma.rows]
    assert ds.rows == comma.rows
    assert ds[0].timestamp == 12.5 and ds.labels == comma.labels


def test_windows_cut_long_recordings_into_parts(line: Path) -> None:
    ds = LineDataset.open(line, window_s=1.0)
    ids = [r.part_id for r in ds.rows]
    assert ids == ["A1#0", "A1#1", "A1#2", "A2", "vib/p3#0", "vib/p3#1"]
    w = ds[1].vibration
    assert w is not None and w.samples.shape == (1000,)
    full = np.sin(np.arange(3000) / 5.0).astype(np.float32)
    np.testing.assert_array_equal(w.samples, full[1000:2000])
    assert ds[1].timestamp == 13.5 and ds[1].frame is not None  # the image goes with each window
    assert ds.unused_tail_s == 0.0
    assert LineDataset.open(line, window_s=0.7).unused_tail_s == pytest.approx(0.2 + 0.6)


def test_unknown_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("image,lable\na.png,ok\n")
    with pytest.raises(
        DataError, match="unknown column 'lable' \\(did you mean 'label'\\?\\)"
    ) as e:
        LineDataset.open(tmp_path)
    assert "labels.csv, row 1" in str(e.value)


def test_a_text_table_named_by_its_time_is_a_vibration_file(tmp_path: Path) -> None:
    snapshot = tmp_path / "2003.10.22.12.06.24"
    rows = np.random.default_rng(0).normal(size=(400, 4))
    snapshot.write_text("\n".join("\t".join(f"{v:.4f}" for v in r) for r in rows) + "\n")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    table = "vibration,label,sample_rate_hz,channel\n2003.10.22.12.06.24,ok,20000,1\n"
    (tmp_path / "labels.csv").write_text(table)
    part = LineDataset.open(tmp_path)[0]
    assert part.vibration is not None and part.vibration.samples.shape == (400,)
    (tmp_path / "labels.csv").write_text(table + "blob.bin,ok,20000,1\n")
    with pytest.raises(DataError, match=r"labels\.csv, row 3: vibration 'blob\.bin'.*text table"):
        LineDataset.open(tmp_path)


def test_row_with_neither_image_nor_vibration(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("image,vibration,label\na.png,,ok\n,,ok\n")
    with pytest.raises(DataError, match="row 3: row has neither an image nor a vibration"):
        LineDataset.open(tmp_path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("a.npy,ok,", "unknown sample rate for 'a.npy'"),
        ("a.mat,ok,", "unknown sample rate"),
        ("a.npy,ok,fast", "sample_rate_hz 'fast' is not a number"),
        ("a.npy,ok,-5", "must be a positive number"),
        ("a.npy,not ok!,100", "not a class slug"),
        ("a.ogg,ok,100", "expected one of"),
        ("../outside.npy,ok,100", "must be relative"),
        ("a.npy,ok,100,extra", "more fields than columns"),
    ],
)
def test_bad_rows_are_refused_naming_file_and_row(tmp_path: Path, row: str, problem: str) -> None:
    (tmp_path / "labels.csv").write_text(f"vibration,label,sample_rate_hz\nb.npy,ok,100\n{row}\n")
    with pytest.raises(DataError, match=problem) as err:
        LineDataset.open(tmp_path)
    assert "labels.csv, row 3" in str(err.value)


def test_missing_file_faults_the_part_not_the_dataset(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    write_image("a.png", gray())
    bad = write_image("b.jpg", gray())
    bad.write_bytes(bad.read_bytes()[:50])
    (tmp_path / "labels.csv").write_text("image,label\na.png,ok\nb.jpg,ok\ngone.png,dent\n")
    ds = LineDataset.open(tmp_path)
    with pytest.raises(DataError, match=r"gone\.png, row 4: file not found"):
        ds[2]
    with pytest.raises(DataError, match=r"b\.jpg, row 3: corrupt or truncated JPEG"):
        ds[1]
    samples = list(ds)  # iteration never drops a part
    assert [s.fault is None for s in samples] == [True, False, False]
    faulty = ds.load(2, strict=False)
    assert faulty.label == "dent" and faulty.frame is None and faulty.fault is not None
    assert "gone.png" in faulty.fault and "row 4" in faulty.fault


def test_nan_vibration_faults_with_its_row(tmp_path: Path) -> None:
    x = np.zeros(500)
    x[7] = np.inf
    np.save(tmp_path / "v.npy", x)
    (tmp_path / "labels.csv").write_text("vibration,sample_rate_hz\nv.npy,100\n")
    ds = LineDataset.open(tmp_path, window_s=1.0)  # unreadable: kept whole, not dropped
    assert len(ds) == 1
    fault = ds.load(0, strict=False).fault
    assert fault is not None and "v.npy, row 2" in fault and "NaN or infinite" in fault


def test_descriptive_and_meta_columns_are_kept_as_text(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros(100))
    (tmp_path / "labels.csv").write_text(
        "vibration,sample_rate_hz,motor_load_hp,meta_operator\nv.npy,100,2,anna\n"
    )
    assert LineDataset.open(tmp_path)[0].meta == {"motor_load_hp": "2", "meta_operator": "anna"}


def test_boxes_become_a_mask(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    write_image("s.jpg", gray(size=(10, 12)))
    (tmp_path / "s.xml").write_text(
        "<annotation><size><width>12</width><height>10</height></size><object><bndbox>"
        "<xmin>2</xmin><ymin>3</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    (tmp_path / "labels.csv").write_text("image,label,boxes\ns.jpg,scratches,s.xml\n")
    mask = LineDataset.open(tmp_path)[0].mask
    assert mask is not None and mask.shape == (10, 12) and mask.sum() == 9
    assert mask[2, 1] and mask[4, 3] and not mask[5, 3]


def test_a_region_of_interest_crops_frames_masks_and_boxes(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    frame = np.arange(10 * 12, dtype=np.uint8).reshape(10, 12)
    write_image("s.png", frame)
    write_image("m.png", (frame >= 60).astype(np.uint8) * 255)
    (tmp_path / "s.xml").write_text(
        "<annotation><size><width>12</width><height>10</height></size><object><bndbox>"
        "<xmin>2</xmin><ymin>3</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    (tmp_path / "labels.csv").write_text(
        "image,label,mask,boxes,part_id\ns.png,dent,m.png,,a\ns.png,scratches,,s.xml,b\n"
    )
    roi = Roi(1, 2, 8, 8)
    masked, boxed = LineDataset.open(tmp_path, frames=FrameFormat(roi=roi))
    assert masked.frame is not None and np.array_equal(masked.frame[..., 0], frame[2:10, 1:9])
    assert masked.mask is not None and np.array_equal(masked.mask, frame[2:10, 1:9] >= 60)
    assert boxed.mask is not None and boxed.mask.shape == (8, 8) and boxed.mask.sum() == 9
    assert boxed.mask[0, 0] and boxed.mask[2, 2] and not boxed.mask[3, 2]  # boxes of the frame
    ds = LineDataset.open(
        tmp_path, frames=FrameFormat(roi=Roi(6, 0, 8, 8))
    )  # wider than the 12 px frame
    with pytest.raises(DataError, match=r"s\.png, row 2: frame is 12x10 px: the line's region"):
        ds[0]
    assert "region of interest" in str(ds.load(1, strict=False).fault)


def test_mvtec_layout(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    write_image("train/good/000.png", gray())
    write_image("train/good/001.png", gray())
    write_image("test/good/000.png", gray())
    write_image("test/crack/000.png", gray())
    mask = np.zeros((16, 20), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    write_image("ground_truth/crack/000_mask.png", mask)
    ds = LineDataset.open(tmp_path)
    assert ds.layout == "mvtec" and len(ds) == 4 and ds.classes == ["crack"]
    crack = next(i for i, r in enumerate(ds.rows) if r.label == "crack")
    assert ds[crack].part_id == "test/crack/000" and ds[crack].mask.sum() == 4  # type: ignore[union-attr]
    assert sorted({r.split for r in ds.rows}) == ["test", "train"]


def test_good_part_labels_in_any_usual_spelling_are_ok(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    write_image("a.png", gray())
    names = ["ok", "OK", "good", "Good", "NORMAL", "Dent", "Dent"]
    rows = "".join(f"P{i},a.png,{name}\n" for i, name in enumerate(names))
    (tmp_path / "labels.csv").write_text("part_id,image,label\n" + rows)
    ds = LineDataset.open(tmp_path)
    assert ds.labels == ["ok"] * 5 + ["Dent", "Dent"]  # defect classes keep their spelling
    (tmp_path / "labels.csv").write_text("part_id,image,label\n" + rows + "P9,a.png,dent\n")
    with pytest.raises(DataError, match=r"row 9: label 'dent' differs from 'Dent' \(row 7\)"):
        LineDataset.open(tmp_path)


def test_mvtec_layout_without_ground_truth_has_no_masks(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    write_image("train/good/000.png", gray())
    write_image("test/crack/000.png", gray())
    write_image("test/dent/000.png", gray())
    write_image("ground_truth/dent/other_mask.png", gray(255))  # dent has masks, not this one
    ds = LineDataset.open(tmp_path)
    crack = next(i for i, r in enumerate(ds.rows) if r.label == "crack")
    dent = next(i for i, r in enumerate(ds.rows) if r.label == "dent")
    part = ds.load(crack, strict=False)
    assert part.fault is None and part.mask is None and part.mask_problem is None
    with pytest.raises(DataError, match=r"000_mask\.png.*file not found"):
        ds[dent]


def test_an_unreadable_mask_leaves_the_part_inspectable(
    tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    write_image("a.png", gray())
    write_image("b.png", gray())
    write_image("small_mask.png", gray(255, (4, 4)))
    (tmp_path / "labels.csv").write_text(
        "part_id,image,label,mask\nA,a.png,dent,gone.png\nB,b.png,dent,small_mask.png\n"
    )
    ds = LineDataset.open(tmp_path)
    for i, problem in ((0, r"gone\.png.*row 2"), (1, r"small_mask\.png.*4x4, image 20x16")):
        part = ds.load(i, strict=False)
        assert part.fault is None and part.frame is not None and part.mask is None
        assert part.mask_problem is not None and re.search(problem, part.mask_problem)
        with pytest.raises(DataError, match=problem):
            ds[i]  # strict reading (adapt, pretrain) still refuses it


def test_class_per_folder_layout(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    write_image("good/a.png", gray())
    write_image("dent/b.bmp", gray())
    (tmp_path / "dent" / "notes.txt").write_text("ignored: not data")
    ds = LineDataset.open(tmp_path)
    assert ds.layout == "class-per-folder"
    assert sorted(ds.labels) == ["dent", "ok"]  # type: ignore[type-var]
    with pytest.raises(DataError, match="not a dataset"):
        LineDataset.open(tmp_path / "good")
    with pytest.raises(DataError, match="dataset folder not found"):
        LineDataset.open(tmp_path / "nowhere")


def test_duplicate_part_ids_are_refused(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("part_id,image\nP,a.png\nP,b.png\n")
    with pytest.raises(DataError, match="part_id 'P' repeats row 2"):
        LineDataset.open(tmp_path)
