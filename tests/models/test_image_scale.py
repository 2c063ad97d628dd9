"""Frames larger than the backbone's: the template compares them at full size, the backbone
sees them averaged down (`LineModelSettings.image_scale`, `TemplateConfig.at_scale`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from models.adapt import AdaptConfig, AdaptData, adapt_line
from models.backbone import InspectBackbone
from models.export import export_line_model
from models.inputs import ModelInputs
from models.line_model import LineModel, LineModelSettings
from models.template import PixelTemplate, TemplateConfig


def test_at_scale_keeps_lengths_on_the_part_and_adds_the_finest_filter() -> None:
    base = TemplateConfig()
    assert base.at_scale(1) == base
    two = base.at_scale(2)
    assert two.scales == (1.5, 3.0, 6.0)
    assert two.highpass == 2 * base.highpass
    assert two.top_k_pixels == 4 * base.top_k_pixels
    assert two.smooth % 2 == 1  # the first form's box stays centred
    assert TemplateConfig(scales=()).at_scale(2).scales == ()
    # the wider filters run on a 2x coarser grid at the camera's resolution; lines compared at
    # the backbone's size, and every line saved before the setting, keep the full grid
    assert two.coarse_filters and not base.coarse_filters
    saved_before = LineModelSettings.from_dict({"template": {"scales": [3.0, 6.0]}})
    assert TemplateConfig(**saved_before.template).coarse_filters is False
    with pytest.raises(ValueError, match="whole number >= 1"):
        base.at_scale(0)


def test_coarse_filters_give_the_full_grid_maps_of_the_wider_filters() -> None:
    """The 3 and 6 px filters on the deviation averaged 2x2, brought back up: in the filters'
    good-part units the maps match the full-resolution ones (correlation >= 0.99; filters of
    the full width on the coarse grid give 0.84-0.91), and the 1.5 px one is untouched."""
    size = 64
    g = torch.Generator().manual_seed(0)
    good = 0.2 * torch.randn(30, 3, size, size, generator=g)
    parts = 0.2 * torch.randn(6, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    parts[:, 1] += 0.6 * torch.exp(-((yy - 40) ** 2 + (xx - 22) ** 2) / (2 * 4.0**2))
    # the filters alone: no good-part modes taken out first
    config = TemplateConfig(gradient=False, scales=(1.5, 3.0, 6.0), highpass=24.0, modes=0)
    full = PixelTemplate(3, size, 8, config)
    coarse = PixelTemplate(3, size, 8, replace(config, coarse_filters=True))
    assert coarse.fine_scales == (1.5,) and coarse.coarse_scales == (3.0, 6.0)
    maps = []
    for t in (full, coarse):
        t.fit(good)
        with torch.no_grad():
            dev = t._deviation(t.channels(parts), t.mean, t.spread)
        maps.append(dev / t.filter_scale.view(1, -1, 1, 1))
    assert torch.allclose(maps[0][:, 0], maps[1][:, 0], atol=1e-5)
    for f in (1, 2):
        pair = torch.stack([maps[0][:, f].flatten(), maps[1][:, f].flatten()])
        assert float(torch.corrcoef(pair)[0, 1]) >= 0.99
    with torch.no_grad():
        assert torch.allclose(full(parts).score, coarse(parts).score, rtol=0.05)
    odd = PixelTemplate(3, size + 1, 8, replace(config, coarse_filters=True))
    assert odd.coarse_scales == ()  # a grid that does not halve keeps every filter at full size


def test_settings_of_lines_taught_before_take_scale_1_and_a_bad_scale_is_refused() -> None:
    assert LineModelSettings.from_dict({"method": "linear"}).image_scale == 1
    with pytest.raises(ValueError, match="image_scale"):
        LineModelSettings(image_scale=0)


def _parts(n: int, size: int, seed: int, stain: bool = False) -> torch.Tensor:
    """A plate with a hole at `size` px; a stain of 3 x 3 px (too small to survive 2x2
    averaging as strongly) on the defective ones."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.full((3, size, size), -1.0)
    img[:, (yy - size // 2) ** 2 + (xx - size // 2) ** 2 < (size // 3) ** 2] = 1.0
    out = img.expand(n, -1, -1, -1).clone() + 0.15 * torch.randn(n, 3, size, size, generator=g)
    if stain:
        out[:, 1, 27:30, 21:24] += 0.9
    return out


def _stain_line(good: int, stained: int, size: int, downscale: int = 1) -> AdaptData:
    """Labeled image-only parts at `size` px (`downscale`: averaged that many times down)."""
    images = torch.cat([_parts(good, size, 1), _parts(stained, size, 2, stain=True)])
    if downscale > 1:
        images = F.avg_pool2d(images, downscale)
    present = torch.ones(good + stained, dtype=torch.bool)
    labels = torch.tensor([0] * good + [1] * stained)
    inputs = ModelInputs(image=images, spectrum=None, image_present=present)
    return AdaptData(inputs, labels, ["stain"], ["image"])


def test_the_backbone_sees_the_frames_averaged_and_the_template_sees_them_whole(
    small_backbone_32: InspectBackbone,
) -> None:
    big = _parts(3, 64, 0)
    spectrum_free = {"image_present": torch.ones(3, dtype=torch.bool)}
    one = LineModel(small_backbone_32, LineModelSettings(method="linear", modalities=["image"]))
    two = LineModel(
        small_backbone_32,
        LineModelSettings(
            method="linear", modalities=["image"], image_scale=2, image_template=True
        ),
    )
    assert two.input_size == 64 and one.input_size == 32
    assert two.image_template is not None and two.image_template.mean.shape[-1] == 64
    with torch.no_grad():
        a = one.base_features(image=F.avg_pool2d(big, 2), **spectrum_free)
        b = two.base_features(image=big, **spectrum_free)
    assert torch.equal(a.patch_features, b.patch_features)
    with torch.no_grad():
        pred = two.eval()(image=big, **spectrum_free)
    assert pred.heatmap.shape == (3, *small_backbone_32.config.grid)  # the backbone's grid


def test_adapt_at_scale_2_and_frames_of_the_wrong_size_are_refused(
    tmp_path: Path,
    small_backbone_32: InspectBackbone,
    separates_and_reloads: Callable[..., None],
) -> None:
    data = _stain_line(24, 8, 64)
    cfg = AdaptConfig(method="linear", image_template=True, image_scale=2, folds=0)
    model = adapt_line(small_backbone_32, data, cfg).model
    assert model.settings.template["scales"] == (1.5, 3.0, 6.0)  # at_scale(2) of the default
    test = torch.cat([_parts(10, 64, 3), _parts(10, 64, 4, stain=True)])
    separates_and_reloads(model, test, 10, tmp_path, small_backbone_32)

    small = _stain_line(24, 8, 64, downscale=2)
    with pytest.raises(ValueError, match=r"\(32, 32\) px but the line model takes 64 px"):
        adapt_line(small_backbone_32, small, cfg)


@pytest.mark.slow
def test_a_scale_2_line_exports_and_onnxruntime_equals_torch(
    tmp_path: Path, small_backbone_32: InspectBackbone
) -> None:
    data = _stain_line(12, 6, 64)
    cfg = AdaptConfig(method="prompt", image_template=True, image_scale=2, folds=0, epochs=1)
    model = adapt_line(small_backbone_32, data, cfg).model.eval()
    present = torch.ones(3, dtype=torch.bool)
    assert data.inputs.image is not None
    example = ModelInputs(image=data.inputs.image[:2], spectrum=None, image_present=present[:2])
    graph = export_line_model(model, example.as_kwargs(), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    test = ModelInputs(image=_parts(3, 64, 5, stain=True), spectrum=None, image_present=present[:3])
    feed = {k: v.numpy() for k, v in test.as_kwargs().items() if v is not None}
    feed.update(graph.line_values)
    got = session.run(["defect_score", "anomaly_score", "heatmap"], feed)
    with torch.no_grad():
        want = model(**test.as_kwargs())
    np.testing.assert_allclose(got[0], want.defect_score.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1], want.anomaly_score.numpy(), atol=1e-4, rtol=0)
    # this small backbone's patch memory has a narrow spread, so its heat-map differs by ~2e-4
    # between runtimes at scale 1 too (the same parts averaged down to 32 px)
    np.testing.assert_allclose(got[2], want.heatmap.numpy(), atol=1e-3, rtol=0)


def test_a_template_line_draws_its_heat_map_from_the_template_and_older_lines_keep_theirs(
    small_backbone_32: InspectBackbone,
) -> None:
    """On a line whose score takes the pixel template, the heat-map is the template's patch
    map alone (the memory's coarser cells only blurred it); a line saved before the setting
    keeps the largest of its image sources, as it was taught."""
    data = _stain_line(24, 8, 64)
    cfg = AdaptConfig(method="linear", image_template=True, image_scale=2, folds=0)
    model = adapt_line(small_backbone_32, data, cfg).model.eval()
    assert model.settings.template_draws_heatmap()
    assert model.heatmap_source() == "image_template"
    test = torch.cat([_parts(3, 64, 3), _parts(3, 64, 4, stain=True)])
    present = torch.ones(6, dtype=torch.bool)
    with torch.no_grad():
        pred = model(image=test, image_present=present)
        base = model.base_features(image=test, image_present=present)
        parts = model.anomaly_components(base, None, present, None, test)
    rows, cols = small_backbone_32.config.grid
    offset = model.settings.heatmap_offset

    def heat(scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores - offset).view(6, rows, cols)

    template, memory = parts["image_template"].patch_scores, parts["image_memory"].patch_scores
    assert (memory > template).any()  # the two forms differ on these parts
    torch.testing.assert_close(pred.heatmap, heat(template))
    saved = {k: v for k, v in model.settings.to_dict().items() if k != "heatmap_template_only"}
    older = LineModel(small_backbone_32, LineModelSettings.from_dict(saved)).eval()
    older.load_state_dict(model.state_dict())
    assert not older.settings.template_draws_heatmap()
    assert older.heatmap_source() == "image_template + image_memory"
    with torch.no_grad():
        torch.testing.assert_close(
            older(image=test, image_present=present).heatmap,
            heat(torch.maximum(template, memory)),
        )
