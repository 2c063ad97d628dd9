"""Defect-site pooling: the classifier reads the image tokens where the part looks defective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.adapt import AdaptConfig, AdaptData, adapt_line
from models.backbone import InspectBackbone
from models.inputs import ModelInputs
from models.line_model import LineModel, LineModelSettings, site_pool_tokens


def test_site_pool_weighs_the_hottest_patch() -> None:
    tokens = torch.randn(2, 4, 8)
    hot = torch.tensor([[0.0, 0.0, 40.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    pooled = site_pool_tokens(tokens, hot, 1.0, None)
    torch.testing.assert_close(pooled[0], tokens[0, 2])  # one patch stands out: its token
    torch.testing.assert_close(pooled[1], tokens[1].mean(0))  # nothing stands out: the mean
    softer = site_pool_tokens(tokens, hot / 20.0, 1.0, None)  # two spreads: a blend
    assert not torch.allclose(softer[0], tokens[0, 2])


def test_a_part_without_its_image_pools_zeros() -> None:
    tokens = torch.randn(2, 4, 8)
    pooled = site_pool_tokens(tokens, torch.randn(2, 4), 1.0, torch.tensor([True, False]))
    assert bool(pooled[0].abs().sum() > 0)
    assert bool((pooled[1] == 0).all())


def _parts(n_good: int, n_each: int, seed: int = 0) -> tuple[ModelInputs, torch.Tensor]:
    """Good parts: noise; class 1 a bright square, class 2 a dark one, anywhere."""
    g = torch.Generator().manual_seed(seed)
    n = n_good + 2 * n_each
    image = 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    labels = torch.tensor([0] * n_good + [1] * n_each + [2] * n_each)
    for i in range(n_good, n):
        r, c = (int(v) for v in torch.randint(0, 24, (2,), generator=g))
        image[i, :, r : r + 8, c : c + 8] = 3.0 if labels[i] == 1 else -3.0
    present = torch.ones(n, dtype=torch.bool)
    return ModelInputs(image, None, present, None), labels


def test_an_adapted_image_line_pools_at_the_site(small_backbone_32: InspectBackbone) -> None:
    inputs, labels = _parts(12, 6)
    data = AdaptData(inputs, labels, ["bright", "dark"], ["image"])
    model = adapt_line(small_backbone_32, data, AdaptConfig(method="linear", folds=0)).model
    dim = small_backbone_32.config.hidden_size
    assert model.settings.site_pool
    assert model.head.in_features == 3 * dim + dim
    test, test_labels = _parts(4, 4, seed=1)
    kwargs = test.as_kwargs()
    with torch.no_grad():
        pred = model(**kwargs)
        base, out = model.passes(**kwargs)
        site = model.site_scores(base, test.image)
        by_hand = model.class_logits(model.pool(out, test.image_present, None, site))
        with pytest.raises(ValueError, match="site map"):
            model.pool(out, test.image_present, None)
    torch.testing.assert_close(pred.class_probs, by_hand[:, 1:].softmax(-1))
    # the square is the hottest place of every defective part, hotter than any good part's
    assert bool((site[test_labels > 0].amax(1) > site[test_labels == 0].amax(1).max()).all())
    named = pred.class_probs[test_labels > 0].argmax(-1) + 1
    assert float((named == test_labels[test_labels > 0]).float().mean()) >= 0.75


def test_site_pooling_survives_save_and_load(
    small_backbone_32: InspectBackbone, tmp_path: Path
) -> None:
    inputs, labels = _parts(12, 6)
    data = AdaptData(inputs, labels, ["bright", "dark"], ["image"])
    model = adapt_line(small_backbone_32, data, AdaptConfig(method="prompt", folds=0, epochs=1))
    model.model.save(tmp_path)
    loaded = LineModel.load(tmp_path, model.model.settings.to_dict(), small_backbone_32)
    assert loaded.settings.site_pool
    test, _ = _parts(3, 2, seed=2)
    with torch.no_grad():
        a, b = model.model(**test.as_kwargs()), loaded(**test.as_kwargs())
    torch.testing.assert_close(a.class_probs, b.class_probs)


@pytest.mark.parametrize("case", ["vibration only", "no good parts", "turned off"])
def test_lines_without_a_site_map_pool_the_mean(
    case: str, small_backbone_32: InspectBackbone
) -> None:
    inputs, labels = _parts(12, 6)
    n = labels.numel()
    cfg = AdaptConfig(method="linear", folds=0, site_pool=case != "turned off")
    modalities = ["image"]
    if case == "vibration only":
        spectrum = torch.randn(n, 2, 32)
        inputs = ModelInputs(None, spectrum, None, torch.ones(n, dtype=torch.bool))
        modalities = ["vibration"]
    elif case == "no good parts":  # a dataset of defect classes only (NEU-DET is one)
        keep = labels > 0
        inputs = ModelInputs(inputs.image[keep], None, inputs.image_present[keep], None)  # type: ignore[index]
        labels = labels[keep]
    data = AdaptData(inputs, labels, ["bright", "dark"], modalities)
    model = adapt_line(small_backbone_32, data, cfg).model
    assert not model.settings.site_pool
    assert model.head.in_features == 3 * small_backbone_32.config.hidden_size
    with torch.no_grad():
        pred = model(**inputs.as_kwargs())
    assert pred.class_probs.shape == (labels.numel(), 2)


def test_lines_saved_before_site_pooling_read_as_mean_pool_only() -> None:
    raw = LineModelSettings(classes=["dent"]).to_dict()
    raw.pop("site_pool")
    assert not LineModelSettings.from_dict(raw).site_pool
    assert LineModelSettings.from_dict({**raw, "site_pool": True}).site_pool
