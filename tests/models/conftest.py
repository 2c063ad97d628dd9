"""Model tests run single-threaded: on a small shared CPU, torch's thread pool only contends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.inputs import ModelInputs
from models.line_model import LineModel, LineModelSettings

torch.set_num_threads(1)


@pytest.fixture
def small_backbone_32(small_config_32: Callable[..., BackboneConfig]) -> InspectBackbone:
    """A seeded random backbone at 32 px with 4x4 patches of 8 px: fast enough for adapt runs."""
    torch.manual_seed(0)
    return InspectBackbone(small_config_32()).eval()


def _random_parts(cfg: BackboneConfig, n: int, seed: int) -> ModelInputs:
    """`n` (<= 4) random parts for `cfg`: the third lacks its image, the second its vibration."""
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    return ModelInputs(
        image=torch.randn(n, 3, s, s, generator=g),
        spectrum=torch.randn(n, 2, cfg.num_spectrum_tokens * cfg.spectrum_patch, generator=g),
        image_present=torch.tensor([True, True, False, True][:n]),
        vibration_present=torch.tensor([True, False, True, True][:n]),
    )


@pytest.fixture(scope="session")
def random_parts() -> Callable[..., ModelInputs]:
    """`random_parts(cfg, n, seed) -> ModelInputs`: seeded random parts, some sensors missing."""
    return _random_parts


def _tiny_line_model(
    image_template: bool = False, site_pool: bool = True, size: str = "tiny"
) -> LineModel:
    """A seeded `tiny` (or `size`) line model whose prompts, memories and templates hold
    random values; it pools at the defect site and joins its classifier to the anomaly score
    as lines taught now do (`site_pool=False`: the older form)."""
    torch.manual_seed(0)
    settings = LineModelSettings(
        classes=["dent", "scratch"],
        image_template=image_template,
        site_pool=site_pool,
        fusion="agree_z",
        spectrum_template=True,
    )
    model = LineModel(InspectBackbone(BackboneConfig.named(size)).eval(), settings).eval()
    with torch.no_grad():
        model.prompt.normal_(0.0, 0.5)  # type: ignore[union-attr]
        for memory in (model.image_memory, model.vibration_memory):
            assert memory is not None
            for buf in memory.buffers():
                buf.normal_()
        if model.image_template is not None:
            model.image_template.mean.normal_()
            model.image_template.spread.uniform_(0.5, 2.0)
        assert model.spectrum_template is not None
        model.spectrum_template.mean.normal_()
        model.spectrum_template.spread.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="session")
def tiny_line_model() -> Callable[..., LineModel]:
    """`tiny_line_model(image_template=False, site_pool=True, size="tiny") -> LineModel`:
    random but seeded line values."""
    return _tiny_line_model


def _separates_and_reloads(
    model: LineModel, test: torch.Tensor, n_good: int, folder: Path, backbone: InspectBackbone
) -> None:
    """The image-only `model` ranks every defective test part (after the first `n_good`) above
    every good one, and saved to `folder` then loaded back it gives the same scores."""
    from inspect_app.metrics import auroc

    present = torch.ones(test.shape[0], dtype=torch.bool)
    with torch.no_grad():
        pred = model(image=test, image_present=present)
    defective = [i >= n_good for i in range(test.shape[0])]
    assert auroc(pred.anomaly_score.numpy(), defective) == 1.0
    model.save(folder)
    again = LineModel.load(folder, model.settings.to_dict(), backbone)
    with torch.no_grad():
        assert torch.equal(pred.defect_score, again(image=test, image_present=present).defect_score)


@pytest.fixture(scope="session")
def separates_and_reloads() -> Callable[..., None]:
    """`separates_and_reloads(model, test, n_good, folder, backbone)`: the check above."""
    return _separates_and_reloads
