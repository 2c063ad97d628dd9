"""The image memory's local colour (models.anomaly.local_colour, LineModel.memory_patches).

The pretrained patch features ignore brightness (they were trained through photometric
augmentation); the memory of lines taught now also compares each patch's mean colour and
contrast, so a dark blotch on plain surface is no longer a good patch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models.anomaly import COLOUR_FEATURES, local_colour
from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.line_model import LineModel, LineModelSettings


def test_local_colour_reads_each_cells_mean_colour_and_contrast() -> None:
    image = torch.zeros(1, 3, 32, 32)
    image[0, 2, 8:16, 8:16] = -2.0  # one 8 px cell darker in blue
    out = local_colour(image, 8)  # (1, 16 cells, 4)
    assert out.shape == (1, 16, COLOUR_FEATURES)
    cell = out[0].view(4, 4, COLOUR_FEATURES)
    # 3x3 neighbourhood average: the dark cell (1, 1) and its neighbours move, far cells not
    assert cell[1, 1, 2] < 0.0 and cell[0, 0, 2] < 0.0 and cell[3, 3, 2] == 0.0
    assert torch.equal(cell[..., 0], torch.zeros(4, 4))  # red untouched
    assert torch.allclose(cell[3, 3, 3], torch.tensor(0.02))  # a flat cell: the contrast floor
    noisy = image + 0.5 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert (local_colour(noisy, 8)[..., 3] > 0.2).all()  # texture shows as contrast


def _line(colour: float) -> LineModel:
    torch.manual_seed(0)
    backbone = InspectBackbone(BackboneConfig.named("tiny")).eval()
    settings = LineModelSettings(modalities=["image"], method="linear", image_memory_colour=colour)
    return LineModel(backbone, settings).eval()


def test_a_darker_patch_with_the_same_features_stands_out_only_with_colour() -> None:
    """Fit the memory on good parts, then show it a part whose pretrained patch features are
    a good part's but whose image has one darker cell: only the colour can tell."""
    gen = torch.Generator().manual_seed(1)
    good_images = 0.3 * torch.randn(8, 3, 128, 128, generator=gen)
    scores = {}
    for colour in (0.0, 4.0):
        model = _line(colour)
        with torch.no_grad():
            base = model.base_features(good_images)
            patches = model.memory_patches(base.patch_features, good_images)
            assert patches is not None and model.image_memory is not None
            assert patches.shape[-1] == model.config.patch_feature_dim + (4 if colour else 0)
            model.image_memory.fit(patches)
            first = model.base_features(good_images[:1])
            dark = good_images[:1].clone()
            dark[:, :, 40:64, 40:64] -= 1.5
            only = {"image_memory"}
            parts = model.anomaly_components(first, None, None, None, dark, only=only)
            same = model.anomaly_components(first, None, None, None, good_images[:1], only=only)
        cell = 6 * 16 + 6  # token (6, 6): inside the darker square
        scores[colour] = float(parts["image_memory"].patch_scores[0, cell]) - float(
            same["image_memory"].patch_scores[0, cell]
        )
    assert scores[0.0] == 0.0  # without colour the memory cannot see it
    assert scores[4.0] > 3.0  # with colour: more than three patch spreads above


def test_a_line_saved_before_the_setting_keeps_its_features_only_memory(
    tmp_path: Path, random_parts: Callable[..., object]
) -> None:
    old = _line(0.0)
    old.save(tmp_path)
    saved = old.settings.to_dict()
    del saved["image_memory_colour"]  # as line.json was written before the setting existed
    again = LineModel.load(tmp_path, saved, backbone=old.backbone)
    assert again.settings.image_memory_colour == 0.0
    assert again.image_memory is not None
    assert again.image_memory.bank.shape[-1] == again.config.patch_feature_dim
    assert LineModelSettings().image_memory_colour == 0.0


def test_adapt_gives_colour_to_the_memory_of_lines_without_the_template(
    small_backbone_32: InspectBackbone,
) -> None:
    """Registered lines compare colour pixel by pixel in their template; the others get it in
    their memory (AdaptConfig.memory_colour)."""
    from models.adapt import AdaptConfig, AdaptData, adapt_line
    from models.inputs import ModelInputs

    gen = torch.Generator().manual_seed(0)
    images = 0.3 * torch.randn(12, 3, 32, 32, generator=gen)
    images[8:, :, 8:16, 8:16] -= 1.5  # four parts with a dark blotch
    labels = torch.tensor([0] * 8 + [1] * 4)
    present = torch.ones(12, dtype=torch.bool)
    inputs = ModelInputs(image=images, spectrum=None, image_present=present)
    data = AdaptData(inputs, labels, ["blotch"], ["image"])
    for template, weight in ((False, AdaptConfig().memory_colour), (True, 0.0)):
        cfg = AdaptConfig(method="linear", folds=0, image_template=template)
        model = adapt_line(small_backbone_32, data, cfg).model
        assert model.settings.image_memory_colour == weight
        assert model.image_memory is not None
        width = small_backbone_32.config.patch_feature_dim + (4 if weight else 0)
        assert model.image_memory.bank.shape[-1] == width
    assert AdaptConfig().memory_colour > 0


@pytest.mark.slow
def test_a_line_with_colour_exports_and_onnxruntime_equals_torch(
    tmp_path: Path, small_backbone_32: InspectBackbone
) -> None:
    import numpy as np
    import onnxruntime as ort

    from models.adapt import AdaptConfig, AdaptData, adapt_line
    from models.export import export_line_model
    from models.inputs import ModelInputs

    gen = torch.Generator().manual_seed(3)
    images = 0.3 * torch.randn(12, 3, 32, 32, generator=gen)
    images[8:, :, 8:16, 8:16] -= 1.5
    present = torch.ones(12, dtype=torch.bool)
    data = AdaptData(
        ModelInputs(image=images, spectrum=None, image_present=present),
        torch.tensor([0] * 8 + [1] * 4),
        ["blotch"],
        ["image"],
    )
    cfg = AdaptConfig(method="prompt", folds=0, epochs=1)
    model = adapt_line(small_backbone_32, data, cfg).model.eval()
    assert model.settings.image_memory_colour > 0
    example = ModelInputs(image=images[:2], spectrum=None, image_present=present[:2])
    graph = export_line_model(model, example.as_kwargs(), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    fresh = 0.3 * torch.randn(4, 3, 32, 32, generator=gen)  # parts the memory never saw
    fresh[2:, :, 16:24, 8:16] -= 1.5
    test = ModelInputs(image=fresh, spectrum=None, image_present=present[:4])
    feed = {k: v.numpy() for k, v in test.as_kwargs().items() if v is not None}
    got = session.run(["defect_score", "anomaly_score"], {**feed, **graph.line_values})
    with torch.no_grad():
        want = model(**test.as_kwargs())
    np.testing.assert_allclose(got[0], want.defect_score.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1], want.anomaly_score.numpy(), atol=1e-4, rtol=0)
    # the colour's pooling parses on the Jetson's TensorRT versions like the rest
    import json

    import onnx

    from models.export import check_graph

    ops_file = Path(__file__).resolve().parents[1] / "data" / "tensorrt_onnx_ops.json"
    lists = json.loads(ops_file.read_text(encoding="utf-8"))
    supported = [frozenset(lists[v]["supported"]) for v in ("tensorrt_8.5", "tensorrt_10.x")]
    report = check_graph(onnx.load(str(tmp_path / "m.onnx")), supported)
    assert report.ok, report.problems
