"""`inspect-app adapt` / `evaluate` end to end on a tiny hand-made line (small random backbone)."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import inspect_app.teach as teach
from inspect_app.cli import main
from inspect_app.commands.adapt import evidence_lines
from inspect_app.service import InspectionService, ServeOptions
from inspect_app.teach import stratified_sample
from models.adapt import AdaptResult, OutOfFold
from models.line_model import ABSENT_SCORE
from sensors.dataset import LineDataset
from sensors.sample import Sample

RATE = 12800.0


pytestmark = pytest.mark.usefixtures("small_teach_backbone")


def _part(folder: Path, i: int, label: str, rng: np.random.Generator) -> list[str]:
    img = (120 + 10 * rng.standard_normal((32, 32, 3))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    t = np.arange(int(0.5 * RATE)) / RATE
    vib = 0.1 * rng.standard_normal(t.size)
    if label == "dent":
        r, c = rng.integers(2, 20, 2)
        img[r : r + 10, c : c + 10] = 250
        mask[r : r + 10, c : c + 10] = 255
    if label == "crack":
        r = rng.integers(4, 28)
        img[r : r + 2, :] = 0
        mask[r : r + 2, :] = 255
    if label == "hum":
        vib += 2.0 * np.sin(2 * np.pi * 1500 * t)
    cv2.imwrite(str(folder / f"p{i}.png"), img)
    np.save(folder / f"p{i}.npy", vib.astype(np.float32))
    mask_name = ""
    if mask.any():
        cv2.imwrite(str(folder / f"m{i}.png"), mask)
        mask_name = f"m{i}.png"
    return [f"p{i}.png", f"p{i}.npy", label, str(RATE), mask_name, f"part-{i}"]


def make_line(folder: Path, counts: dict[str, int], seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = ["image,vibration,label,sample_rate_hz,mask,part_id"]
    i = 0
    for label, n in counts.items():
        for _ in range(n):
            rows.append(",".join(_part(folder, i, label, rng)))
            i += 1
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def _adapt(home: Path, data: Path, *extra: str) -> int:
    return main(
        [
            "adapt",
            "--home",
            str(home),
            "--line",
            "l1",
            "--data",
            str(data),
            "--no-progress",
            "--samples",
            "30",
            *extra,
        ]
    )


@pytest.mark.slow
def test_adapt_then_evaluate_with_an_unseen_class_and_a_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_line(tmp_path / "train", {"ok": 18, "dent": 7, "hum": 5})
    assert _adapt(tmp_path / "home", data) == 0
    out = capsys.readouterr().out
    assert "false-reject rate" in out and "v1" in out
    assert "with 95 % confidence from 12 defective parts" in out  # 7 dent + 5 hum
    assert "takes about 598 defective parts without a miss" in out  # for the 0.5 % default
    # noise textures do not register: auto says why the alignment is off, and the card keeps it
    assert "pose alignment off (" in out and "judged without the pixel template" in out
    root = tmp_path / "home" / "lines" / "l1"
    assert (root / "ACTIVE").read_text().strip() == "v1"
    card = json.loads((root / "v1" / "line.json").read_text())
    assert card["align"] == {} and card["align_refused"] in out
    assert card["adapt"]["frame_px"] == [32, 32] and "frames are" not in out
    assert card["classes"] == ["dent", "hum"]
    assert card["modalities"] == ["image", "vibration"]
    assert 0.0 <= card["threshold"] <= 1.0
    assert card["metrics"]["n"] == 30
    # the weakest defective adapt parts, lowest out-of-fold score first, and what passing them buys
    weakest = card["metrics"]["weakest_defects"]
    assert 1 <= len(weakest) <= 3
    assert all(w["label"] in ("dent", "hum") and w["part_id"].startswith("part-") for w in weakest)
    assert [w["defect_score"] for w in weakest] == sorted(w["defect_score"] for w in weakest)
    tradeoff = card["metrics"]["miss_tradeoff"]
    assert tradeoff[0]["missed"] == 0 and tradeoff[0]["threshold"] == card["threshold"]
    assert (root / "v1" / "weights.safetensors").is_file()
    assert (root / "v1" / "adapter" / "adapter_config.json").is_file()
    assert "Validation" in (root / "v1" / "MODEL_CARD.md").read_text()

    test = make_line(tmp_path / "test", {"ok": 12, "dent": 4, "hum": 3, "crack": 4}, seed=1)
    (test / "p0.png").write_bytes(b"not a png")  # an ok part that cannot be read
    (test / "m12.png").unlink()  # a dent whose mask (ground truth) is gone: still inspected
    # an ok part whose vibration was not recorded: the line is fused, so a hum could pass
    table = test / "labels.csv"
    table.write_text(table.read_text().replace("p1.png,p1.npy,ok,", "p1.png,,ok,"))
    report_file = tmp_path / "m.json"
    rc = main(
        [
            "evaluate",
            "--home",
            str(tmp_path / "home"),
            "--line",
            "l1",
            "--data",
            str(test),
            "--json",
            str(report_file),
            "--parts-csv",
            str(tmp_path / "parts.csv"),
            "--no-progress",
        ]
    )
    assert rc == 0
    m = json.loads(report_file.read_text())
    with (tmp_path / "parts.csv").open(newline="") as f:
        parts = {row["part_id"]: row for row in csv.DictReader(f)}
    assert len(parts) == m["n"]
    assert parts["part-0"]["verdict"] == "FAULT" and "p0.png" in parts["part-0"]["fault"]
    outcomes = Counter(row["outcome"] for row in parts.values())
    assert outcomes["missed"] == round(m["miss_rate"] * m["n_defective"])
    assert outcomes["false_reject"] + 2 == m["per_class"]["ok"]["failed"]  # + the two faults
    for row in parts.values():
        if row["verdict"] != "FAULT":
            fail = float(row["defect_score"]) >= m["threshold"]
            assert row["verdict"] == ("FAIL" if fail else "PASS")
    for key in (
        "n",
        "n_defective",
        "miss_rate",
        "false_reject_rate",
        "auroc",
        "accuracy",
        "class_accuracy",
        "per_class",
        "threshold",
        "latency_ms",
        "pixel_auroc",
    ):
        assert key in m, key
    assert m["n"] == 23 and m["n_defective"] == 11 and m["n_fault"] == 2
    reasons = {f["part_id"]: f["reason"] for f in m["faults"]}
    assert "p0.png" in reasons["part-0"]
    assert "part-1: no vibration window" in reasons["part-1"]  # a FAULT, never judged on half
    assert [p["part_id"] for p in m["mask_problems"]] == ["part-12"]
    assert "m12.png" in m["mask_problems"][0]["reason"]
    assert any("1 part(s) were inspected without their mask" in note for note in m["notes"])
    assert m["per_class"]["crack"]["note"] == "class never in adapt data: can't be named"
    assert m["per_class"]["ok"]["failed"] >= 2  # the unreadable good part is rejected, and so
    # is the one without vibration
    assert m["auroc"] > 0.8  # blatant defects, even on a random backbone
    assert set(m["latency_ms"]) == {"p50", "p95"}
    assert m["miss_rate"] <= m["miss_rate_upper_95"] <= 1  # how sure 11 defective parts make it

    # serving this fused line from a camera with no vibration would FAULT every part: refused
    options = ServeOptions(
        home=tmp_path / "home",
        line="l1",
        source=str(tmp_path / "line-cam.mp4"),
        db_url=f"sqlite:///{tmp_path / 'serve.db'}",
        http=None,
        snapshots=False,
    )
    with pytest.raises(
        ValueError, match=r"line l1 is taught on image and vibration: .*--vibration"
    ):
        InspectionService.build(options)
    assert m["false_reject_rate"] < m["false_reject_rate_upper_95"] <= 1


def test_too_few_parts_in_a_class_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_line(tmp_path / "d", {"ok": 12, "dent": 2})
    assert _adapt(tmp_path / "home", data) == 1
    err = capsys.readouterr().err
    assert "'dent'" in err and "only 2" in err and "leave them out of the adapt data" in err
    assert "--window-s" not in err  # camera parts: no recordings to cut
    assert not (tmp_path / "home" / "lines" / "l1" / "ACTIVE").exists()


def test_one_long_recording_per_condition_is_pointed_to_window_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Vibration often comes as one long recording per machine condition (as CWRU's): too few
    parts of a class then means the recordings want cutting, and the error says how."""
    data = tmp_path / "recordings"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = [("normal.npy", "ok"), *((f"fault{i}.npy", "inner_race") for i in range(3))]
    for name, _ in rows:
        np.save(data / name, rng.normal(size=12000 * 4).astype(np.float32))  # 4 s at 12 kHz
    with (data / "labels.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["vibration", "label", "sample_rate_hz"])
        writer.writerows([name, label, 12000] for name, label in rows)
    assert _adapt(tmp_path / "home", data) == 1
    err = capsys.readouterr().err
    assert "class 'ok' has only 1 part(s)" in err
    assert "vibration recordings" in err and "--window-s S cuts it into parts" in err


def test_unreadable_file_names_file_and_row_and_keeps_the_active_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_line(tmp_path / "d", {"ok": 12, "dent": 4})
    home = tmp_path / "home"
    assert _adapt(home, data, "--method", "linear") == 0
    capsys.readouterr()
    (data / "p3.png").write_bytes(b"broken")
    assert _adapt(home, data, "--samples", "16") == 1
    err = capsys.readouterr().err
    assert "p3.png" in err and "row 5" in err
    root = home / "lines" / "l1"
    assert (root / "ACTIVE").read_text().strip() == "v1"
    assert sorted(p.name for p in root.iterdir()) == ["ACTIVE", "v1"]


def test_a_part_taught_twice_is_refused_and_copies_of_adapt_parts_are_not_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A part listed twice (or copied under another name) would be scored against itself in
    cross-validation: adapt names both rows and writes nothing. Once taught, a folder holding
    copies of the adapt parts under other names is evaluated without them (their scores would
    flatter the line), and says so."""
    import shutil

    data = make_line(tmp_path / "d", {"ok": 12, "dent": 4})
    home = tmp_path / "home"
    labels = data / "labels.csv"
    clean = labels.read_text()
    shutil.copy(data / "p0.png", data / "copy.png")
    shutil.copy(data / "p0.npy", data / "copy.npy")
    labels.write_text(clean + f"copy.png,copy.npy,ok,{RATE},,part-copy\n")
    assert _adapt(home, data, "--samples", "17") == 1
    err = capsys.readouterr().err
    assert "1 part(s) of the adapt sample" in err and "repeat another part's reading" in err
    assert (
        "part-copy (row 18, " in err
        and "copy.png, labeled ok) reads the same as part-0 (row 2" in err
    )
    assert not (home / "lines" / "l1").exists()

    labels.write_text(clean)
    assert _adapt(home, data, "--samples", "16") == 0
    card = json.loads((home / "lines" / "l1" / "v1" / "line.json").read_text())
    assert len(card["adapt"]["digests"]) == 16
    other = make_line(tmp_path / "week2", {"ok": 4, "dent": 2}, seed=1)
    for name in ("p0.png", "p0.npy", "p12.png", "p12.npy"):  # two adapt parts, renamed
        shutil.copy(data / name, other / f"old-{name}")
    rows = ["old-p0.png,old-p0.npy,ok", "old-p12.png,old-p12.npy,dent"]
    (other / "labels.csv").write_text(
        (other / "labels.csv").read_text() + "".join(f"{r},{RATE},,old-{r[4:7]}\n" for r in rows)
    )
    capsys.readouterr()
    argv = ["evaluate", "--home", str(home), "--line", "l1", "--data", str(other), "--no-progress"]
    out_json = tmp_path / "m.json"
    assert main([*argv, "--json", str(out_json)]) == 0
    metrics = json.loads(out_json.read_text())
    assert metrics["n"] == 6
    assert any(n.startswith("2 part(s) read the same, sample for sample, as parts the line was "
                            "taught from") for n in metrics["notes"])  # fmt: skip
    assert main([*argv, "--include-adapt-parts", "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["n"] == 8


def test_a_part_the_line_could_not_inspect_is_refused_by_adapt_and_a_fault_in_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dead or overloaded sensor's reading (a flat or clipped vibration window) is a FAULT on
    the line: adapt will not learn a good part from it (naming the part, row and problem, and
    writing nothing), and evaluate reports such a part as a FAULT, as `serve` would, never
    scoring it as a part."""
    data = make_line(tmp_path / "d", {"ok": 12, "dent": 4})
    home = tmp_path / "home"
    clean = np.load(data / "p2.npy")
    np.save(data / "p2.npy", np.zeros_like(clean))  # sensor disconnected
    assert _adapt(home, data, "--samples", "16", "--method", "linear") == 1
    err = capsys.readouterr().err
    assert "1 part(s) of the adapt sample" in err and "could not be inspected" in err
    assert "part-2 (row 4, " in err and "vibration is flat (every sample 0)" in err
    assert not (home / "lines" / "l1").exists()
    rail = 0.5 * float(np.abs(clean).max())
    np.save(data / "p2.npy", np.clip(clean, -rail, rail))  # the input range overloaded
    assert _adapt(home, data, "--samples", "16", "--method", "linear") == 1
    err = capsys.readouterr().err
    assert "part-2 (row 4, " in err and "vibration clipped (" in err
    assert not (home / "lines" / "l1").exists()

    np.save(data / "p2.npy", clean)
    assert _adapt(home, data, "--samples", "16", "--method", "linear") == 0
    test = make_line(tmp_path / "test", {"ok": 4, "dent": 2}, seed=1)
    hot = np.load(test / "p4.npy")  # a dent
    np.save(test / "p4.npy", np.clip(hot, -0.3, 0.3))
    out_json = tmp_path / "m.json"
    argv = ["evaluate", "--home", str(home), "--line", "l1", "--data", str(test)]
    assert main([*argv, "--no-progress", "--json", str(out_json)]) == 0
    metrics = json.loads(out_json.read_text())
    assert metrics["n"] == 6 and metrics["n_fault"] == 1
    (reason,) = [f["reason"] for f in metrics["faults"] if f["part_id"] == "part-4"]
    assert "p4.npy: vibration clipped (" in reason and "separate peaks" in reason


def test_a_line_name_that_escapes_home_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["adapt", "--home", str(tmp_path), "--line", "../x", "--data", str(tmp_path)])
    assert rc == 1
    assert "line name" in capsys.readouterr().err


def test_stratified_sample_keeps_every_class_in_proportion() -> None:
    labels = ["ok"] * 80 + ["a"] * 15 + ["b"] * 5
    picked = stratified_sample(labels, 20, seed=0)
    counts = {k: sum(labels[i] == k for i in picked) for k in ("ok", "a", "b")}
    assert len(picked) == 20 and counts["b"] >= 3 and counts["ok"] >= 12
    assert stratified_sample(labels, 20, seed=0) == picked
    with pytest.raises(ValueError, match="too few"):
        stratified_sample(labels, 5, seed=0)


def test_stratified_sample_gives_good_parts_half_of_a_defect_heavy_sample() -> None:
    labels = ["ok"] * 20 + ["a"] * 100 + ["b"] * 60 + ["c"] * 20
    counts = {k: sum(labels[i] == k for i in stratified_sample(labels, 50, seed=0)) for k in "abc"}
    ok = 50 - sum(counts.values())
    assert ok == 20  # every good part there is (proportion alone: 5)
    assert counts["a"] > counts["b"] > counts["c"] >= 3  # the defects share the rest in proportion
    picked = stratified_sample(["ok"] * 10 + ["a"] * 100, 50, seed=0)
    assert sum(i < 10 for i in picked) == 10  # fewer good parts than half: all of them
    labels = ["ok"] * 30 + [c for c in "abcde" for _ in range(20)]
    picked = stratified_sample(labels, 20, seed=0)  # 5 classes x 3 leave room for 5 good parts
    assert [sum(labels[i] == k for i in picked) for k in ("ok", *"abcde")] == [5, 3, 3, 3, 3, 3]


def test_adapt_says_when_few_good_parts_carry_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_line(tmp_path / "d", {"ok": 6, "dent": 30})
    assert _adapt(tmp_path / "home", data, "--samples", "24") == 0
    out = capsys.readouterr().out
    assert "validation (24 parts, out-of-fold, 18 defective)" in out  # every good part drawn
    assert "note: only 6 good parts in the sample" in out and "label more good parts" in out


def test_a_line_taught_no_good_part_draws_its_heat_map_from_the_pretrained_defect_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A defect library (NEU-DET has no defect-free class): no good-part memory to compare
    with, so the heat-map is the backbone's defect map (not a flat map scoring 0.5 pixel
    AUROC), and adapt and evaluate say so."""
    data = make_line(tmp_path / "d", {"dent": 14, "crack": 14})
    home = tmp_path / "home"
    assert _adapt(home, data, "--samples", "16") == 0
    out = capsys.readouterr().out
    assert "note: no good parts in the sample" in out and "pretrained defect map" in out
    report_file = tmp_path / "m.json"
    argv = ["evaluate", "--home", str(home), "--line", "l1", "--data", str(data)]
    assert main([*argv, "--json", str(report_file), "--no-progress"]) == 0
    m = json.loads(report_file.read_text())
    assert m["n"] == 12  # the 16 adapt parts are left out
    assert 0.0 <= m["pixel_auroc"] <= 1.0 and m["pixel_auroc"] != 0.5
    assert any(n.startswith("heat-map: the backbone's pretrained defect map") for n in m["notes"])
    model, card, _ = teach.load_line_model(home, "l1")
    assert model.heatmap_source() == "defect_map"
    card_text = (home / "lines" / "l1" / "v1" / "MODEL_CARD.md").read_text()
    assert "- heat-map: the backbone's pretrained defect map" in card_text
    sample = LineDataset.open(data).load(0, strict=True)
    with torch.no_grad():
        heat = model(**teach.prepare_batch([sample], card).as_kwargs()).heatmap
    assert float(heat.max() - heat.min()) > 1e-3  # a map, not a constant


def test_a_line_taught_from_good_parts_only_rejects_its_target_share_of_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An MVTec AD folder's train/good: no miss rate to set the threshold for; it rejects
    --target-false-reject-rate of the good parts out-of-fold instead of none."""
    data = make_line(tmp_path / "d", {"ok": 40})
    home = tmp_path / "home"
    assert _adapt(home, data, "--samples", "40", "--target-false-reject-rate", "0.1") == 0
    out = capsys.readouterr().out
    assert "miss rate          unknown: no defective part to measure it on" in out
    assert "taught from good parts only" in out
    card = json.loads((home / "lines" / "l1" / "v1" / "line.json").read_text())
    assert card["metrics"]["n_defective"] == 0
    assert card["metrics"]["false_reject_rate"] == pytest.approx(4 / 40)  # floor(0.1 * 40)
    assert card["adapt"]["threshold_rule"].startswith("false-reject rate 0.1 ")
    text = (home / "lines" / "l1" / "v1" / "MODEL_CARD.md").read_text()
    assert "threshold set for a false-reject rate 0.1" in text
    assert "Taught from good parts only: how many defects pass is unknown" in text


def test_a_target_rate_out_of_range_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "not-read"
    assert _adapt(tmp_path / "home", data, "--target-false-reject-rate", "1.5") == 2
    assert "--target-false-reject-rate must be in [0, 1), got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "home" / "lines").exists()


def _fixtured_line(folder: Path, counts: dict[str, int], seed: int, size: int = 32) -> Path:
    """Image-only parts in a fixture (a plate with holes, pose jitter); "missing" lacks a hole.
    Drawn at 32 px and taken by the camera at `size` px."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = ["image,label,part_id"]
    i = 0
    for label, n in counts.items():
        for _ in range(n):
            img = np.full((32, 32, 3), 25, np.uint8)
            cv2.rectangle(img, (5, 7), (26, 24), (190, 185, 170), -1)
            holes = [((10, 12), 2), ((20, 13), 3), ((15, 20), 2)]
            for (x, y), r in holes[1:] if label == "missing" else holes:
                cv2.circle(img, (x, y), r, (35, 35, 35), -1)
            m = cv2.getRotationMatrix2D((16, 16), rng.normal(0, 2), 1.0)
            m[:, 2] += rng.normal(0, 1, 2)
            img = cv2.warpAffine(img, m, (32, 32), borderMode=cv2.BORDER_REPLICATE)
            if size != 32:
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            noise = rng.normal(0, 4, img.shape)
            img = np.clip(img + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"p{i}.png"), img)
            rows.append(f"p{i}.png,{label},part-{i}")
            i += 1
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def _empty_fixture() -> np.ndarray:
    """The fixture of `_fixtured_line` without its plate: the dark floor and the camera's noise
    (a frame of one value would be a FAULT before registration is tried, as a dark camera)."""
    return np.random.default_rng(5).integers(20, 30, (32, 32, 3)).astype(np.uint8)


@pytest.mark.slow
def test_fixtured_parts_are_aligned_and_the_template_catches_a_missing_hole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _fixtured_line(tmp_path / "train", {"ok": 22, "missing": 8}, seed=0)
    assert _adapt(tmp_path / "home", data, "--method", "linear") == 0
    assert "pose alignment on" in capsys.readouterr().out
    card = json.loads((tmp_path / "home" / "lines" / "l1" / "v1" / "line.json").read_text())
    assert card["align"]["method"] == "ecc-euclidean"
    assert card["model"]["image_template"] is True
    model_card = (tmp_path / "home" / "lines" / "l1" / "v1" / "MODEL_CARD.md").read_text()
    assert "pose alignment: ecc-euclidean" in model_card and "anomaly sources:" in model_card
    test = _fixtured_line(tmp_path / "test", {"ok": 12, "missing": 6}, seed=1)
    out = tmp_path / "m.json"
    argv = ["evaluate", "--home", str(tmp_path / "home"), "--line", "l1", "--data", str(test)]
    assert main([*argv, "--json", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["auroc"] > 0.95

    # an empty fixture cannot be registered onto the reference: a FAULT naming the part
    cv2.imwrite(str(test / "p0.png"), _empty_fixture())
    assert main([*argv, "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())
    assert m["n_fault"] == 1 and "could not be registered" in m["faults"][0]["reason"]
    assert "part-0" in m["faults"][0]["reason"]

    # --align off: the same line without alignment has no template
    assert _adapt(tmp_path / "home", data, "--method", "linear", "--align", "off") == 0
    card2 = json.loads((tmp_path / "home" / "lines" / "l1" / "v2" / "line.json").read_text())
    assert card2["align"] == {} and card2["model"]["image_template"] is False

    # an empty fixture among the good adapt parts: auto leaves the alignment off, saying why;
    # --align on refuses to teach on it, naming the part, and writes nothing
    cv2.imwrite(str(data / "p3.png"), _empty_fixture())
    capsys.readouterr()
    assert _adapt(tmp_path / "home", data, "--method", "linear") == 0
    assert "pose alignment off (1 of 22 good parts could not be registered" in (
        capsys.readouterr().out
    )
    assert _adapt(tmp_path / "home", data, "--method", "linear", "--align", "on") == 1
    err = capsys.readouterr().err
    assert "1 good adapt part(s) could not be registered" in err and "part-3" in err
    assert not (tmp_path / "home" / "lines" / "l1" / "v4").exists()


def _frames(*sides: int) -> list[Sample]:
    return [Sample(f"p{i}", frame=np.zeros((h, h + 40, 3), np.uint8)) for i, h in enumerate(sides)]


def test_template_scale_auto_follows_the_smallest_frame_and_a_bad_size_is_explained() -> None:
    scale = teach.template_scale
    assert scale(_frames(300, 700), 128, "auto", aligned=True) == 2  # 300 px holds 2 x 128
    assert scale(_frames(200, 700), 128, "auto", aligned=True) == 1  # the smallest frame rules
    assert scale(_frames(2000), 128, "auto", aligned=True) == teach.MAX_AUTO_TEMPLATE_SCALE
    assert scale(_frames(300), 128, "auto", aligned=False) == 1  # no registration: no template
    assert scale([Sample("v")], 128, "auto", aligned=True) == 1  # no camera
    assert scale(_frames(600), 128, 384, aligned=True) == 3
    assert scale(_frames(600), 128, 128, aligned=False) == 1
    with pytest.raises(ValueError, match="multiple of the backbone's image size"):
        scale(_frames(600), 128, 200, aligned=True)
    with pytest.raises(ValueError, match="needs the parts registered"):
        scale(_frames(600), 128, 256, aligned=False)
    with pytest.raises(ValueError, match=r"larger than the smallest adapt frame \(300 px\)"):
        scale(_frames(300), 128, 384, aligned=True)


@pytest.mark.slow
def test_large_frames_are_compared_at_twice_the_backbone_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = _fixtured_line(tmp_path / "train", {"ok": 22, "missing": 8}, seed=0, size=64)
    assert _adapt(tmp_path / "home", data, "--method", "linear") == 0
    assert "pixel template at 64 px" in capsys.readouterr().out
    folder = tmp_path / "home" / "lines" / "l1" / "v1"
    card = json.loads((folder / "line.json").read_text())
    assert card["image_size"] == 64 and card["model"]["image_scale"] == 2
    assert card["align"]["size"] == 32  # registered at the backbone's size, carried up
    assert "taken at 64 px" in (folder / "MODEL_CARD.md").read_text()
    test = _fixtured_line(tmp_path / "test", {"ok": 12, "missing": 6}, seed=1, size=64)
    out = tmp_path / "m.json"
    argv = ["evaluate", "--home", str(tmp_path / "home"), "--line", "l1", "--data", str(test)]
    assert main([*argv, "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())
    assert m["auroc"] > 0.95 and not any("smaller than" in n for n in m["notes"])

    # a camera switched to a lower resolution after teaching: evaluate and the service say so
    small = _fixtured_line(tmp_path / "small", {"ok": 3, "missing": 2}, seed=2, size=32)
    argv_small = [*argv[:-1], str(small), "--json", str(out), "--no-progress"]
    assert main(argv_small) == 0
    notes = json.loads(out.read_text())["notes"]
    assert any("5 part(s) came with frames smaller than the 64 px" in n for n in notes)
    options = ServeOptions(
        home=tmp_path / "home",
        line="l1",
        source=str(small),
        db_url=f"sqlite:///{tmp_path / 'serve.db'}",
        http=None,
        batch_size=2,
        snapshots=False,
    )
    with caplog.at_level(logging.WARNING, logger="inspect_app.service"):
        InspectionService.build(options).run(install_signals=False)
    said = [r for r in caplog.records if "smaller than the 64 px" in r.getMessage()]
    assert len(said) == 1 and "line l1" in said[0].getMessage()  # once per run, not per part

    # the backbone's own size on request; a size that is no multiple of it is refused
    assert _adapt(tmp_path / "home", data, "--method", "linear", "--template-size", "32") == 0
    card2 = json.loads((tmp_path / "home" / "lines" / "l1" / "v2" / "line.json").read_text())
    assert card2["image_size"] == 32 and card2["model"]["image_scale"] == 1
    capsys.readouterr()
    assert _adapt(tmp_path / "home", data, "--template-size", "48") == 1
    assert "template size 48 px: it must be a multiple" in capsys.readouterr().err
    assert not (tmp_path / "home" / "lines" / "l1" / "v3").exists()
    with pytest.raises(SystemExit) as exc:
        _adapt(tmp_path / "home", data, "--template-size", "big")
    assert exc.value.code == 2


def _oof_result(scores: list[float]) -> AdaptResult:
    n = len(scores)
    oof = OutOfFold(
        defect_score=torch.tensor(scores),
        anomaly_score=torch.zeros(n),
        predicted_class=torch.zeros(n, dtype=torch.long),
        fold=torch.zeros(n, dtype=torch.long),
    )
    return AdaptResult(model=None, oof=oof, seconds=0.0)  # type: ignore[arg-type]


def test_the_parts_that_hold_the_threshold_down_are_named_with_what_passing_them_buys() -> None:
    labels = ["ok", "dent", "ok", "scratch", "ok", "dent", "ok", "scratch"]
    scores = [0.10, 0.90, 0.30, 0.25, 0.20, 0.80, 0.40, 0.95]
    samples = [Sample(part_id=f"p{i}", label=label) for i, label in enumerate(labels)]
    evidence = teach.threshold_evidence(_oof_result(scores), samples, count=2)
    weakest = evidence["weakest_defects"]
    assert [(w["part_id"], w["label"]) for w in weakest] == [("p3", "scratch"), ("p5", "dent")]
    assert weakest[0]["good_at_or_above"] == pytest.approx(0.5)  # 0.30 and 0.40 of 4 good
    assert weakest[1]["good_at_or_above"] == 0.0
    rows = evidence["miss_tradeoff"]
    assert [(r["missed"], r["false_reject_rate"]) for r in rows] == [(0, 0.5), (1, 0.0)]
    text = "\n".join(evidence_lines({"n_defective": 4, **evidence}))
    assert "p3  scratch  0.2500  50.0 % of good parts\n" in text  # no per-source scores here
    assert "1 of 4 missed (25.0 %): false-reject 0.0 %  (--target-miss-rate 0.25)" in text
    # nothing to say without cross-validation, defective parts or good parts
    assert teach.threshold_evidence(AdaptResult(None, None, 0.0), samples) == {}  # type: ignore[arg-type]
    only_good = [Sample(part_id="g", label="ok")] * 2
    assert teach.threshold_evidence(_oof_result([0.1, 0.2]), only_good) == {}
    assert evidence_lines({}) == []


def test_the_weakest_parts_say_which_source_scored_them_highest() -> None:
    # a fault no source sees scores like a good part on every source: the engineer reads that
    # its sensor cannot pick it up (or the label is wrong); absent sensors are not counted
    labels = ["ok", "dent", "ok", "bearing_inner"]
    result = _oof_result([0.2, 0.9, 0.3, 0.1])
    assert result.oof is not None
    result.oof.sources = {
        "image_template": torch.tensor([0.1, 6.0, 0.4, 0.2]),
        "spectrum_template": torch.tensor([0.3, ABSENT_SCORE, -0.2, 0.9]),
        "classifier": torch.tensor([-1.0, 2.0, 0.0, -0.5]),
    }
    samples = [Sample(part_id=f"p{i}", label=label) for i, label in enumerate(labels)]
    weakest = teach.threshold_evidence(result, samples, count=2)["weakest_defects"]
    assert [(w["part_id"], w["strongest_source"]) for w in weakest] == [
        ("p3", "spectrum_template"),
        ("p1", "image_template"),
    ]
    assert weakest[0]["strongest_spreads"] == pytest.approx(0.9)
    text = "\n".join(evidence_lines({"n_defective": 2, "weakest_defects": weakest}))
    line = "p3  bearing_inner  0.1000  100.0 % of good parts; strongest: spectrum template 0.9"
    assert line + "\n" in text + "\n"
