"""`inspect-app pretrain` end to end on a few synthetic parts: train, resume, load the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inspect_app.cli import main
from inspect_app.pretrain_data import (
    PRETRAIN_SEEDS,
    _held_out_mask,
    dataset_folder,
    held_out_of_pretraining,
    synthetic_line,
)
from models.backbone import InspectBackbone
from sensors.spectrum import SpectrumConfig


def test_pretrain_then_resume(tmp_path: Path) -> None:
    from sensors.synthetic import write_line

    folder = tmp_path / "folder-line"
    write_line(folder, 0, parts=6, defect_fraction=0.5, image_size=128)
    out, cache = tmp_path / "run", tmp_path / "cache"
    common = [
        "pretrain",
        "--data",
        "synthetic",
        str(folder),
        "--synthetic-lines",
        "1",
        "--parts-per-line",
        "4",
        "--batch-size",
        "2",
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--checkpoint-every",
        "1",
    ]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "3", "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in rows)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["seed"] == 0 and recipe["steps"] == 3 and "ok" in recipe["classes"]
    model = InspectBackbone.from_pretrained(out / "backbone")
    assert model.config.size_name == "tiny"
    assert torch.isfinite(model(image=torch.zeros(1, 3, 128, 128)).cls).all()
    assert sorted(p.name for p in (out / "backbone").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]

    # a second stage from the first one's weights, with a fresh optimizer and schedule
    second = tmp_path / "second"
    stage2 = [*common[:-4], "--out", str(second), "--cache", str(cache)]
    stage2 += ["--synthetic-first-seed", "1005"]  # other lines than the first stage's
    argv = [*stage2, "--steps", "1", "--init-from", str(out / "last.pt")]
    assert main([*argv, "--router-lr-scale", "0.5", "--lr", "0.0"]) == 0
    again = InspectBackbone.from_pretrained(second / "backbone")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        if "routing_bias" not in name:  # lr 0: only the load-balancing bias may move
            assert torch.equal(a, b), name
    recipe2 = json.loads((second / "recipe.json").read_text())
    assert recipe2["init_from"] == str(out / "last.pt") and recipe2["router_lr_scale"] == 0.5
    assert recipe["synthetic_seeds"] == [1000, 1000] and recipe2["synthetic_seeds"] == [1005, 1005]
    assert len(list(cache.glob("synthetic-1005-*.npz"))) == 1
    # line 1005 has other classes than line 1000: the class head carries over row by row, by name
    assert recipe2["classes"] != recipe["classes"]
    head1 = torch.load(out / "last.pt", weights_only=True)["model"]["class_head.fc.weight"]
    head2 = torch.load(second / "last.pt", weights_only=True)["model"]["class_head.fc.weight"]
    shared = [c for c in recipe2["classes"] if c in recipe["classes"]]
    assert shared
    for c in shared:  # lr 0: unchanged
        assert torch.equal(head2[recipe2["classes"].index(c)], head1[recipe["classes"].index(c)])

    # from a backbone folder (heads fresh), with the per-patch class term
    third = tmp_path / "third"
    argv = [*common[:-4], "--out", str(third), "--cache", str(cache), "--steps", "1", "--lr", "0"]
    argv += ["--init-from", str(out / "backbone"), "--patch-class-weight", "1"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (third / "log.jsonl").read_text().splitlines()]
    assert np.isfinite(rows[0]["patch_class"])
    assert json.loads((third / "recipe.json").read_text())["patch_class_weight"] == 1.0
    again = InspectBackbone.from_pretrained(third / "backbone")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        if "routing_bias" not in name:
            assert torch.equal(a, b), name
    # and a run without the term starts from that run's last.pt (its extra head left behind)
    fourth = [*common[:-4], "--out", str(tmp_path / "fourth"), "--cache", str(cache)]
    argv = [*fourth, "--steps", "1", "--init-from", str(third / "last.pt")]
    assert main([*argv, "--masked-patch-weight", "4", "--masked-share", "1"]) == 0
    recipe4 = json.loads((tmp_path / "fourth" / "recipe.json").read_text())
    assert recipe4["masked_patch_weight"] == 4.0 and recipe4["masked_share"] == 1.0
    # a folder that is no backbone is refused by name
    assert main([*fourth, "--steps", "1", "--init-from", str(cache)]) == 2


def test_resume_without_state_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "pretrain",
            "--data",
            "synthetic",
            "--synthetic-lines",
            "1",
            "--parts-per-line",
            "2",
            "--out",
            str(tmp_path / "none"),
            "--cache",
            str(tmp_path / "c"),
            "--resume",
        ]
    )
    assert code == 2
    assert "no " in capsys.readouterr().err


def test_masked_share_sets_which_synthetic_images_train_masked_patches() -> None:
    from types import SimpleNamespace

    from inspect_app.pretrain_loop import _make_batch

    n = 64
    data = SimpleNamespace(
        images=np.zeros((n, 8, 8, 3), np.uint8),
        masks=np.zeros((n, 8, 8), np.uint8),
        has_image=np.ones(n, bool),
        has_vibration=np.zeros(n, bool),
        has_mask=np.zeros(n, bool),
        vibration_label_ok=np.zeros(n, bool),
        image_label_ok=np.ones(n, bool),
        spectra=np.zeros((n, 4, 4), np.float32),
    )
    pick, labels, synthetic = np.arange(n), np.ones(n, np.int64), np.zeros(n, bool)

    def masked(share: float) -> np.ndarray:
        rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
        cpu = torch.device("cpu")
        keep = lambda i, m, g: (i, m)  # noqa: E731 (no augmentation)
        batch = _make_batch(data, pick, labels, synthetic, rng, gen, cpu, keep, share)
        return batch.masked_patches.numpy()

    assert masked(1.0).all() and not masked(0.0).any()
    assert 10 < masked(0.5).sum() < 54


def _started_from(tmp_path: Path, config: Any, run_config: str) -> list[str]:
    """Argv of a one-step run of `--config run_config` on one tiny synthetic line, started from
    a backbone folder saved with `config` (a BackboneConfig)."""
    folder = tmp_path / "start-backbone"
    InspectBackbone(config).save_pretrained(folder, safe_serialization=True)
    argv = ["pretrain", "--data", "synthetic", "--synthetic-lines", "1", "--parts-per-line", "2"]
    argv += ["--config", run_config, "--steps", "1", "--batch-size", "2"]
    return [
        *argv,
        "--init-from",
        str(folder),
        "--out",
        str(tmp_path / "r"),
        "--cache",
        str(tmp_path / "c"),
    ]


def test_a_backbone_folder_of_another_size_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.config import BackboneConfig

    assert main(_started_from(tmp_path, BackboneConfig.named("tiny"), "small")) == 2
    err = capsys.readouterr().err
    assert "do not fit this backbone" in err and "another --config" in err


def test_a_backbone_with_wider_experts_starts_a_run_narrowed_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint with wider experts (the `tiny` shipped before its experts were halved) is a
    valid starting point: its experts are narrowed to the config's width, and the run says so."""
    from models.config import BackboneConfig

    width = BackboneConfig.named("tiny").moe_intermediate_size
    wide = BackboneConfig.named("tiny", moe_intermediate_size=2 * width)
    assert main(_started_from(tmp_path, wide, "tiny")) == 0
    note = f"experts narrowed from {2 * width} to {width} hidden units"
    assert note in capsys.readouterr().err
    out = InspectBackbone.from_pretrained(tmp_path / "r" / "backbone")
    assert out.config.moe_intermediate_size == width


def test_a_masked_share_outside_0_1_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["pretrain", "--data", "synthetic", "--masked-share", "1.5"]
    argv += ["--out", str(tmp_path / "r"), "--cache", str(tmp_path)]
    assert main(argv) == 2
    assert "--masked-share 1.5" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_first_seed_in_the_held_out_range_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["pretrain", "--data", "synthetic", "--synthetic-first-seed", "990"]
    argv += ["--synthetic-lines", "20", "--out", str(tmp_path / "r"), "--cache", str(tmp_path)]
    assert main(argv) == 2
    assert "leave the pretraining range" in capsys.readouterr().err


def test_held_out_seeds_are_refused() -> None:
    assert 7 not in PRETRAIN_SEEDS and 15 not in PRETRAIN_SEEDS and 1000 in PRETRAIN_SEEDS
    with pytest.raises(ValueError, match="outside"):
        synthetic_line(15, 2, 128, SpectrumConfig())


def test_held_out_split_never_divides_a_group() -> None:
    labels = ["a"] * 20 + ["ok"] * 5
    groups = [f"rec{i // 2}" for i in range(20)] + ["normal"] * 5
    held = _held_out_mask(labels, groups)
    for g in set(groups) - {"normal"}:
        assert len({bool(held[i]) for i in range(20) if groups[i] == g}) == 1
    assert held[:20].any() and not held[:20].all()
    assert held[20:].tolist() == [False, False, False, False, True]  # one recording: split in time


def test_evaluations_can_keep_to_what_pretraining_held_out(tmp_path: Path) -> None:
    """The benchmark's real-data rows use `held_out_of_pretraining`: the same parts as the
    arrays pretraining reads hold out, without reading a single image."""
    import cv2

    from sensors.dataset import LineDataset

    rng = np.random.default_rng(0)
    for label in ("crazing", "scratches"):
        (tmp_path / label).mkdir()
        for i in range(12):
            image = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / label / f"{label}_{i:02d}.png"), image)
    arrays = dataset_folder(tmp_path, 16, SpectrumConfig())
    held = held_out_of_pretraining(LineDataset.open(tmp_path))
    assert held.tolist() == arrays.held_out.tolist()
    assert held.sum() == 4  # every fifth image of each class


def test_memory_objective_workers_cached_arrays_and_time_limit(tmp_path: Path) -> None:
    """--anomaly-weight trains on lines grouped by line and logs the objective (--spread-weight
    too); --workers fills
    the cache with the same lines as one process; a cached .npz stands in for its folder;
    --time-limit stops early and still writes the backbone."""
    from inspect_app.pretrain_data import load_sources

    spectrum = SpectrumConfig()
    one, two = tmp_path / "one", tmp_path / "two"
    a = load_sources(["synthetic"], one, 128, spectrum, 2, 6, first_seed=1003)
    b = load_sources(["synthetic"], two, 128, spectrum, 2, 6, first_seed=1003, workers=2)
    assert np.array_equal(a.images, b.images) and a.labels == b.labels
    folder = tmp_path / "folder-line"
    from sensors.synthetic import write_line

    write_line(folder, 0, parts=4, defect_fraction=0.5, image_size=128)
    load_sources([str(folder)], one, 128, spectrum, 0, 0)
    cached = next(one.glob("folder-line-*.npz"))
    from_npz = load_sources([str(cached)], tmp_path / "none", 128, spectrum, 0, 0)
    assert from_npz.sources[0] == "folder-line" and len(from_npz) == 4
    with pytest.raises(ValueError, match="64 px"):
        load_sources([str(cached)], tmp_path / "none", 64, spectrum, 0, 0)

    out = tmp_path / "run"
    argv = ["pretrain", "--data", "synthetic", str(cached), "--synthetic-first-seed", "1003"]
    argv += ["--synthetic-lines", "2", "--parts-per-line", "6", "--batch-size", "2"]
    argv += ["--anomaly-weight", "1", "--anomaly-lines", "2", "--anomaly-parts", "4"]
    argv += ["--out", str(out), "--cache", str(one), "--steps", "5", "--time-limit", "0"]
    argv += ["--spread-weight", "0.5"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and np.isfinite(rows[0]["anomaly"])  # stopped after one step
    assert np.isfinite(rows[0]["spread"])
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["step_reached"] == 1 and recipe["anomaly_weight"] == 1.0
    assert recipe["spread_weight"] == 0.5
    assert (out / "backbone" / "model.safetensors").is_file()


def test_memory_objective_needs_lines_with_good_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["pretrain", "--data", "synthetic", "--synthetic-first-seed", "1003"]
    argv += ["--synthetic-lines", "1", "--parts-per-line", "1", "--anomaly-weight", "1"]
    argv += ["--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--steps", "1"]
    assert main(argv) == 2
    assert "two good image parts" in capsys.readouterr().err


def test_an_8px_backbone_starts_a_16px_run_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--config tiny16 --init-from` an 8 px backbone folder: its image tokens merged 2x2."""
    from models.config import BackboneConfig

    assert main(_started_from(tmp_path, BackboneConfig.named("tiny"), "tiny16")) == 0
    assert "image patches merged 2x2" in capsys.readouterr().err
    out = InspectBackbone.from_pretrained(tmp_path / "r" / "backbone")
    assert out.config.patch_size == 16 and out.config.grid == (8, 8)


def test_a_backbone_starts_a_run_that_merges_its_tokens_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--config tinym --init-from` a `tiny` folder: the merge starts as the mean of four."""
    from models.config import BackboneConfig

    assert main(_started_from(tmp_path, BackboneConfig.named("tiny"), "tinym")) == 0
    assert "image tokens merged 2x2 after block 2" in capsys.readouterr().err
    out = InspectBackbone.from_pretrained(tmp_path / "r" / "backbone")
    assert out.config.merge_after == 1 and out.merge is not None
