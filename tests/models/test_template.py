"""The good-part pixel template (models/template.py) and its place in the line model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models.adapt import AdaptConfig, AdaptData, adapt_line, select_sources
from models.backbone import InspectBackbone
from models.inputs import ModelInputs
from models.line_model import LineModel
from models.template import PixelTemplate, TemplateConfig

SIZE = 32


def _layout() -> torch.Tensor:
    """A 'part': a bright disc with two dark holes on a dark background, (3, S, S)."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    img = torch.full((3, SIZE, SIZE), -1.0)
    img[:, (yy - 16) ** 2 + (xx - 16) ** 2 < 13**2] = 1.0
    for cy, cx in ((11, 11), (20, 22)):
        img[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 3**2] = -1.0
    return img


def _parts(n: int, seed: int, defect: str | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = _layout().expand(n, -1, -1, -1).clone()
    out += 0.15 * torch.randn(out.shape, generator=g)
    if defect == "missing_hole":  # the first hole filled in: looks like good surface elsewhere
        yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        out[:, :, (yy - 11) ** 2 + (xx - 11) ** 2 < 3**2] = 1.0
    if defect == "stain":
        out[:, 0, 14:19, 8:13] += 0.8
    return out


def test_a_missing_feature_and_a_stain_stand_out_where_they_are() -> None:
    t = PixelTemplate(3, SIZE, patch_size=8)
    t.fit(_parts(20, 0))
    good = t(_parts(20, 1)).score
    missing = t(_parts(10, 2, "missing_hole"))
    stain = t(_parts(10, 3, "stain")).score
    # standardized by the good parts' own leave-out scores: a new good part is near 0
    assert good.abs().median() < 2.0
    assert missing.score.min() > good.max() + 3.0
    assert stain.min() > good.max() + 3.0
    # the heat-map's hottest patch is the one holding the missing hole (rows 8-15, cols 8-15)
    hottest = missing.patch_scores.view(10, 4, 4).flatten(1).argmax(1)
    assert torch.all(hottest == 1 * 4 + 1)


def test_slow_shading_of_a_good_part_is_not_a_defect_but_a_thin_scratch_is() -> None:
    """A light that drifts brightens one side of a part smoothly: the plane and the high-pass
    take it out. A thin line a little brighter than the noise is still caught."""
    size = 64
    g = torch.Generator().manual_seed(0)

    def parts(n: int) -> torch.Tensor:
        return 0.2 * torch.randn(n, 3, size, size, generator=g)

    ramp = torch.linspace(-1.0, 1.0, size).view(1, 1, 1, size)
    shaded = parts(20) + 0.45 * ramp  # 0.45 at the edge: a few pixel spreads, smooth
    scratched = parts(20)
    scratched[:, :, 30, 10:40] += 0.5  # one pixel wide, 30 long, 2.5 pixel spreads
    filtered = PixelTemplate(3, size, 8, TemplateConfig(gradient=False))
    first_form = PixelTemplate(3, size, 8, TemplateConfig(gradient=False, scales=(), highpass=0))
    for t in (filtered, first_form):
        t.fit(parts(30))
    good = filtered(parts(20)).score
    # in the first form the shading alone scores tens of good-part spreads; here a few
    assert first_form(shaded).score.min() > 20.0
    assert filtered(shaded).score.median() < 5.0
    assert filtered(scratched).score.median() > good.median() + 3.0
    # the units of each filter are fitted and saved with the template
    assert "filter_scale" in filtered.state_dict() and "filter_scale" not in first_form.state_dict()
    assert torch.all(filtered.filter_scale > 0) and not torch.all(filtered.filter_scale == 1)


def test_a_template_saved_before_the_filters_keeps_its_first_form() -> None:
    from models.line_model import LineModelSettings

    old = LineModelSettings.from_dict({"template": {"smooth": 5, "top_k_pixels": 20}})
    config = TemplateConfig(**old.template)
    assert config.scales == () and config.highpass == 0.0 and config.gradient is False
    assert config.modes == 0  # nor the good parts' modes
    new = LineModelSettings.from_dict(LineModelSettings().to_dict())
    assert TemplateConfig(**new.template) == TemplateConfig()
    with pytest.raises(ValueError, match="scales must be > 0"):
        TemplateConfig(scales=(0.0,))


def test_a_pixel_that_never_varied_gets_a_floor_spread() -> None:
    good = _parts(20, 0)
    good[:, :, :4, :] = -1.0  # a clipped, perfectly flat band: zero spread across the good parts
    t = PixelTemplate(3, SIZE, patch_size=8)
    t.fit(good)
    typical = t.spread[:, 8:, :].flatten(1).median(dim=1).values
    flat = t.spread[:, :4, :].flatten(1).min(dim=1).values
    # a division by ~0 would turn one grey level of JPEG noise there into a huge deviation
    assert torch.all(flat >= 0.4 * typical)
    assert torch.isfinite(t(_parts(4, 1)).score).all()


def test_the_good_parts_modes_forgive_an_outline_a_pixel_off_but_not_a_stain() -> None:
    """Parts a little larger or smaller than the reference put a thin ring of deviation along
    their outline; across the good parts that ring is one mode of their variation. Taken out
    (`modes`), new good parts score far lower, and a stain on the plain surface - no mix of
    the good parts' deviations - still stands out."""
    size = 64

    def parts(n: int, seed: int, stain: bool = False) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        xx = torch.arange(size).float().view(1, 1, 1, size)
        yy = torch.arange(size).float().view(1, 1, size, 1)
        r = ((xx - 32) ** 2 + (yy - 32) ** 2).sqrt()
        radius = 20 + 0.8 * torch.randn(n, 1, 1, 1, generator=g)  # the outline a pixel off
        img = torch.sigmoid((radius - r) * 2.0).expand(n, 3, size, size) * 2 - 1
        img = img + 0.05 * torch.randn(n, 3, size, size, generator=g)
        if stain:
            img[:, 1, 28:33, 28:33] += 0.4
        return img

    good, stained = {}, {}
    for modes in (0, 8):
        t = PixelTemplate(3, size, 8, TemplateConfig(scales=(1.5, 3.0), modes=modes))
        t.fit(parts(25, 0))
        with torch.no_grad():
            good[modes], stained[modes] = t(parts(200, 1)).score, t(parts(50, 2, True)).score
    assert "modes" in t.state_dict() and t.modes.shape == (8, 4 * size * size)
    assert good[8].quantile(0.95) < 0.5 * good[0].quantile(0.95)
    assert stained[8].min() > good[8].max() + 3.0
    rows = t.modes @ t.modes.T  # orthonormal directions
    assert torch.allclose(rows, torch.eye(8), atol=1e-4)
    with pytest.raises(ValueError, match="modes must be >= 0"):
        TemplateConfig(modes=-1)


def test_fit_refuses_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N>0, C, S, S\)"):
        PixelTemplate(3, SIZE, 8).fit(torch.zeros(0, 3, SIZE, SIZE))


def test_adapt_with_the_template_catches_an_unlabeled_kind_and_saves_it(
    tmp_path: Path,
    small_backbone_32: InspectBackbone,
    separates_and_reloads: Callable[..., None],
) -> None:
    backbone = small_backbone_32
    images = torch.cat([_parts(24, 0), _parts(8, 1, "stain")])
    labels = torch.tensor([0] * 24 + [1] * 8)
    present = torch.ones(32, dtype=torch.bool)
    inputs = ModelInputs(image=images, spectrum=None, image_present=present)
    cfg = AdaptConfig(method="linear", image_template=True, folds=3)
    result = adapt_line(backbone, AdaptData(inputs, labels, ["stain"], ["image"]), cfg)
    model = result.model
    assert model.image_template is not None and model.settings.image_template
    test = torch.cat([_parts(10, 5), _parts(10, 6, "missing_hole")])  # a kind never labeled
    separates_and_reloads(model, test, 10, tmp_path, backbone)


def test_source_selection_drops_noise_and_keeps_a_source_that_catches_a_few() -> None:
    g = torch.Generator().manual_seed(0)
    defective = torch.tensor([False] * 30 + [True] * 20)
    good_source = torch.randn(50, generator=g)
    good_source[30:45] += 6.0  # catches 15 of the 20 defects
    few = torch.randn(50, generator=g)
    few[45:] += 6.0  # catches only the other 5
    noise = 4.0 * torch.randn(50, generator=g)  # catches nothing, spreads wide
    chosen = select_sources(
        {"image_memory": noise, "image_template": good_source, "vibration_memory": few},
        defective,
        margin=0.02,
    )
    assert chosen == ["image_template", "vibration_memory"]
    # a sensor's last source stays, even when it only adds noise on these parts: a defect kind
    # never labeled may show on that sensor alone
    kept = select_sources(
        {"image_template": good_source, "spectrum_memory": noise}, defective, 0.02
    )
    assert kept == ["image_template", "spectrum_memory"]
    # without both kinds of parts there is nothing to judge by: everything stays
    everything = {"a": noise, "b": few}
    assert select_sources(everything, torch.zeros(50, dtype=torch.bool), 0.02) == ["a", "b"]


def test_anomaly_fusion_ignores_the_classifier_vote_but_still_names_the_class(
    small_backbone_32: InspectBackbone,
) -> None:
    from models.line_model import LineModelSettings

    backbone = small_backbone_32
    logits = torch.tensor([[5.0, 0.0, 1.0], [-5.0, 2.0, 0.0]])  # confident ok / confident defect
    z = torch.tensor([0.0, 0.0])
    plain = LineModel(backbone, LineModelSettings(classes=["a", "b"]))
    alone = LineModel(backbone, LineModelSettings(classes=["a", "b"], fusion="anomaly"))
    s_or, _ = plain.fuse(logits, z)
    s_alone, probs = alone.fuse(logits, z)
    assert s_or[1] > 0.9  # the noisy-OR lets the classifier fail the part
    assert torch.allclose(s_alone[0], s_alone[1])  # the anomaly score alone decides
    assert probs[1].argmax() == 0 and probs[0].argmax() == 1
    # max_z: the classifier's defect log-odds, in good-part spreads, join the anomaly score's max
    settings = LineModelSettings(classes=["a", "b"], fusion="max_z", classifier_scale=2.0)
    s_max, _ = LineModel(backbone, settings).fuse(logits, z)
    log_odds = torch.logsumexp(logits[:, 1:], -1) - logits[:, 0]
    expected = torch.sigmoid(1.5 * (torch.maximum(z, log_odds / 2.0) - 3.0))
    assert torch.allclose(s_max, expected)
    assert s_max[1] > 0.5 > s_max[0]
    with pytest.raises(ValueError, match="fusion must be one of"):
        LineModelSettings(fusion="vote")


def test_agree_z_adds_the_smaller_score_only_where_both_paths_see_a_defect(
    small_backbone_32: InspectBackbone,
) -> None:
    from models.line_model import LineModelSettings

    # classifier z = log-odds (logsumexp of the defect logits - the ok logit), scale 1
    logits = torch.tensor(
        [[0.0, 2.0, -9.0], [0.0, -3.0, -9.0], [0.0, 5.0, -9.0], [0.0, -2.0, -9.0]]
    )
    anomaly = torch.tensor([4.0, 4.0, -1.0, -1.0])
    log_odds = torch.logsumexp(logits[:, 1:], -1) - logits[:, 0]
    scores = {}
    for fusion in ("max_z", "agree_z"):
        settings = LineModelSettings(classes=["a", "b"], fusion=fusion)
        scores[fusion], _ = LineModel(small_backbone_32, settings).fuse(logits, anomaly)
    # both above a typical good part: the evidence adds; otherwise the larger decides alone
    z = torch.maximum(anomaly, log_odds) + torch.tensor([1.0, 0.0, 0.0, 0.0]) * log_odds
    torch.testing.assert_close(scores["agree_z"], torch.sigmoid(1.5 * (z - 3.0)))
    torch.testing.assert_close(scores["agree_z"][1:], scores["max_z"][1:])
    assert float(scores["agree_z"][0]) > float(scores["max_z"][0]) + 0.1
    # a defect kind the classifier calls good (row 2) keeps its anomaly score's full weight
    assert bool((scores["agree_z"] >= scores["max_z"]).all())


def test_a_dropped_source_is_not_computed_and_the_score_is_unchanged(
    small_backbone_32: InspectBackbone,
) -> None:
    from models.line_model import LineModelSettings

    settings = LineModelSettings(
        classes=["a"], image_template=True, anomaly_sources=["image_template", "spectrum_memory"]
    )
    model = LineModel(small_backbone_32, settings).eval()
    g = torch.Generator().manual_seed(0)
    image, spectrum = torch.randn(3, 3, SIZE, SIZE, generator=g), torch.randn(3, 2, 32, generator=g)
    with torch.no_grad():
        model.image_template.spread.fill_(0.5)  # type: ignore[union-attr]
        base = model.base_features(image, spectrum)
        every = model.anomaly_components(base, spectrum, None, None, image)
        score, patch = model.anomaly(base, spectrum, None, None, image)
    assert set(every) == {"image_memory", "image_template", "vibration_memory", "spectrum_memory"}
    chosen = torch.stack([every["image_template"].score, every["spectrum_memory"].score])
    assert torch.equal(score, chosen.max(0).values)
    assert torch.equal(patch, every["image_template"].patch_scores)
    calls: list[str] = []
    model.image_memory.register_forward_hook(lambda *_: calls.append("image_memory"))  # type: ignore[union-attr]
    with torch.no_grad():
        model.anomaly(base, spectrum, None, None, image)
    assert calls == []  # dropped at adapt time: no work at inspection time


def test_out_of_fold_template_scores_skip_good_parts_without_an_image(
    small_backbone_32: InspectBackbone,
) -> None:
    # the template is fitted on the good parts that have an image: its leave-out scores go to
    # those parts, in order; a part without an image stays absent
    from models.line_model import ABSENT_SCORE

    images = torch.cat([_parts(16, 0), _parts(8, 1, "stain")])
    labels = torch.tensor([0] * 16 + [1] * 8)
    present = torch.ones(24, dtype=torch.bool)
    present[3] = False
    inputs = ModelInputs(image=images, spectrum=None, image_present=present)
    cfg = AdaptConfig(
        method="linear", image_template=True, folds=3, select_sources=False, head_steps=20
    )
    result = adapt_line(small_backbone_32, AdaptData(inputs, labels, ["stain"], ["image"]), cfg)
    assert result.oof is not None
    model = result.model
    assert model.image_template is not None and model.image_memory is not None
    template, memory = model.image_template.leave_out, model.image_memory.leave_out
    assert template is not None and memory is not None
    assert template.numel() == 15 and memory.numel() == 16  # the memory keeps every good part
    good_with_image = torch.nonzero((labels == 0) & present).squeeze(1)
    expected = torch.maximum(template, memory[torch.arange(16) != 3])
    torch.testing.assert_close(result.oof.anomaly_score[good_with_image], expected)
    assert float(result.oof.anomaly_score[3]) == ABSENT_SCORE
    with torch.no_grad():
        final = model(**inputs.as_kwargs()).anomaly_score
    torch.testing.assert_close(result.oof.anomaly_score[16:], final[16:])
