"""LineModel: shapes and ranges for every modality mix, prompts as an input, save/load, adapt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inspect_app.metrics import auroc
from models.adapt import AdaptConfig, AdaptData, adapt_line, stratified_folds
from models.backbone import InspectBackbone
from models.inputs import ModelInputs
from models.line_model import LineModel, LineModelSettings


def toy_parts(n_good: int, n_bad: int, seed: int = 0) -> tuple[ModelInputs, torch.Tensor]:
    """Good parts: smooth noise; defects: a bright square and a spectrum peak."""
    g = torch.Generator().manual_seed(seed)
    n = n_good + n_bad
    image = 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    spectrum = 0.3 * torch.randn(n, 2, 32, generator=g)
    for i in range(n_good, n):
        r, c = (int(v) for v in torch.randint(0, 24, (2,), generator=g))
        image[i, :, r : r + 8, c : c + 8] = 4.0
        spectrum[i, 1, 10:14] += 6.0
    labels = torch.tensor([0] * n_good + [1] * n_bad)
    present = torch.ones(n, dtype=torch.bool)
    return ModelInputs(image, spectrum, present, present.clone()), labels


@pytest.mark.parametrize("modalities", [["image"], ["vibration"], ["image", "vibration"]])
@pytest.mark.parametrize("method", ["prompt", "lora", "linear"])
def test_forward_shapes_and_ranges(
    modalities: list[str], method: str, small_backbone_32: InspectBackbone
) -> None:
    model = LineModel(
        small_backbone_32,
        LineModelSettings(method=method, classes=["a", "b"], modalities=modalities),
    ).eval()
    inputs, _ = toy_parts(2, 1)
    with torch.no_grad():
        pred = model(**inputs.as_kwargs())
    assert pred.defect_score.shape == (3,)
    assert pred.class_probs.shape == (3, 2)
    assert pred.heatmap.shape == (3, 4, 4)
    assert pred.anomaly_score.shape == (3,)
    assert bool(((pred.defect_score >= 0) & (pred.defect_score <= 1)).all())
    assert bool(((pred.heatmap >= 0) & (pred.heatmap <= 1)).all())
    torch.testing.assert_close(pred.class_probs.sum(-1), torch.ones(3))


def test_prompt_tokens_are_an_input(small_backbone_32: InspectBackbone) -> None:
    model = LineModel(small_backbone_32, LineModelSettings(classes=["a", "b"])).eval()
    torch.nn.init.normal_(model.head.weight, std=0.05)  # unsaturated: a change must show
    inputs, _ = toy_parts(2, 0)
    with torch.no_grad():
        own = model(**inputs.as_kwargs())
        other = model(**inputs.as_kwargs(), prompt_tokens=torch.randn(2, 8, 32))
    assert not torch.allclose(own.class_probs, other.class_probs)


@pytest.mark.parametrize("method", ["prompt", "lora", "linear"])
def test_adapt_learns_save_load_round_trip(
    tmp_path: Path, method: str, small_backbone_32: InspectBackbone
) -> None:
    backbone = small_backbone_32
    inputs, labels = toy_parts(20, 9)
    data = AdaptData(inputs, labels, ["blob"], ["image", "vibration"])
    cfg = AdaptConfig(method=method, epochs=1, head_steps=50, folds=3, batch_size=8)
    result = adapt_line(backbone, data, cfg)
    assert result.oof is not None
    oof = result.oof.defect_score
    # defects are blatant: out of fold, they score above (nearly) every good part
    assert auroc(oof.numpy(), labels.numpy() == 1) >= 0.95
    assert float(oof[labels == 1].min()) > float(oof[labels == 0].median())
    result.model.save(tmp_path)
    again = LineModel.load(tmp_path, result.model.settings.to_dict(), backbone=backbone)
    with torch.no_grad():
        a = result.model(**inputs.as_kwargs())
        b = again(**inputs.as_kwargs())
    torch.testing.assert_close(a.defect_score, b.defect_score)
    torch.testing.assert_close(a.heatmap, b.heatmap)


def test_missing_modality_for_one_part_is_judged_by_the_other(
    small_backbone_32: InspectBackbone,
) -> None:
    backbone = small_backbone_32
    inputs, labels = toy_parts(12, 6)
    data = AdaptData(inputs, labels, ["blob"], ["image", "vibration"])
    result = adapt_line(backbone, data, AdaptConfig(method="linear", folds=0, head_steps=50))
    test, _ = toy_parts(0, 2, seed=5)
    assert test.image_present is not None
    test.image_present[:] = False  # camera lost: the spectrum peak must still fail them
    with torch.no_grad():
        pred = result.model(**test.as_kwargs())
    assert float(pred.anomaly_score.min()) > 3.0
    assert float(pred.heatmap.abs().sum()) == 0.0


def test_stratified_folds_spread_every_label() -> None:
    labels = torch.tensor([0] * 9 + [1] * 6 + [2] * 3)
    fold = stratified_folds(labels, 3, seed=0)
    for value in (0, 1, 2):
        counts = torch.bincount(fold[labels == value], minlength=3)
        assert int(counts.max() - counts.min()) <= 1


def test_fold_memory_scores_are_put_in_the_final_memorys_units() -> None:
    from models.adapt import _on_final_scale
    from models.line_model import ABSENT_SCORE

    z = torch.tensor([0.0, 2.0, ABSENT_SCORE])  # fold: center 1, scale 0.5 -> raw 1, 2, absent
    out = _on_final_scale(z, (1.0, 0.5), (1.5, 2.0))
    torch.testing.assert_close(out, torch.tensor([-0.25, 0.25, ABSENT_SCORE]))
    assert _on_final_scale(z, (1.0, 0.5), None) is z  # no final memory: left as it is


def test_out_of_fold_memory_scores_use_the_final_models_standardization(
    small_backbone_32: InspectBackbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.adapt as adapt_module

    seen: list[tuple[tuple[float, float], tuple[float, float] | None]] = []
    real = adapt_module._on_final_scale

    def spy(z: torch.Tensor, fold: tuple[float, float], final: tuple[float, float] | None):  # type: ignore[no-untyped-def]
        seen.append((fold, final))
        return real(z, fold, final)

    monkeypatch.setattr(adapt_module, "_on_final_scale", spy)
    inputs, labels = toy_parts(6, 9)  # few good parts: each fold's spread is its own
    data = AdaptData(inputs, labels, ["blob"], ["vibration"])
    result = adapt_line(small_backbone_32, data, AdaptConfig(method="linear", folds=3))
    memories = [result.model.vibration_memory, result.model.spectrum_memory]
    finals = {tuple(m.stats[:2].tolist()) for m in memories if m is not None}
    assert len(seen) == 3 * len(finals) == 6  # each fold, each memory
    assert {final for _, final in seen} == finals
    assert len({fold for fold, _ in seen}) == 6  # the folds' own standardizations differ


def test_adapt_joins_a_kept_classifier_by_agree_z_unless_told_max_z(
    small_backbone_32: InspectBackbone,
) -> None:
    inputs, labels = toy_parts(12, 6)
    data = AdaptData(inputs, labels, ["blob"], ["image", "vibration"])
    fusions = {}
    for name in ("agree_z", "max_z"):
        cfg = AdaptConfig(
            method="linear", folds=3, head_steps=20, select_sources=False, classifier_fusion=name
        )
        fusions[name] = adapt_line(small_backbone_32, data, cfg).model.settings.fusion
    assert fusions == {"agree_z": "agree_z", "max_z": "max_z"}
    assert AdaptConfig().classifier_fusion == "agree_z"  # what `inspect-app adapt` teaches
    with pytest.raises(ValueError, match="classifier_fusion must be"):
        AdaptConfig(classifier_fusion="sum")


def test_out_of_fold_anomaly_scores_are_the_final_models_on_defects_and_leave_out_on_goods(
    small_backbone_32: InspectBackbone,
) -> None:
    # A fold's memories hold a third fewer good parts than the final one, so their distances
    # run higher on every part; the defective parts were never in any memory, so the taught
    # line's own scores on them are what it will give a new defective part.
    inputs, labels = toy_parts(15, 9)
    data = AdaptData(inputs, labels, ["blob"], ["vibration"])
    cfg = AdaptConfig(method="linear", folds=3, head_steps=20, select_sources=False)
    result = adapt_line(small_backbone_32, data, cfg)
    assert result.oof is not None
    model = result.model
    with torch.no_grad():
        final = model(**inputs.as_kwargs()).anomaly_score
    bad, good = labels == 1, labels == 0
    torch.testing.assert_close(result.oof.anomaly_score[bad], final[bad])
    sources = [model.vibration_memory, model.spectrum_memory, model.spectrum_template]
    leave_out = torch.stack([m.leave_out for m in sources if m is not None]).max(0).values
    torch.testing.assert_close(result.oof.anomaly_score[good], leave_out)
    # each source's out-of-fold score is kept by name (adapt names the one that scored a weak
    # defective part highest); the anomaly score is their largest
    names = ["vibration_memory", "spectrum_memory", "spectrum_template"]
    assert set(result.oof.sources) >= set(names)
    kept = torch.stack([result.oof.sources[n] for n in names]).max(0).values
    torch.testing.assert_close(result.oof.anomaly_score, kept)
    # a good part's leave-out score is not its score from the memory that holds it (zero
    # distance to itself): the two must differ
    assert not torch.allclose(result.oof.anomaly_score[good], final[good])
