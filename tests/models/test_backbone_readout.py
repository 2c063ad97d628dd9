"""Read-out prompts: the prompts read every token, no other token sees them."""

from __future__ import annotations

import pytest
import torch

from models.backbone import InspectBackbone
from models.config import BackboneConfig


@pytest.fixture(scope="module")
def model() -> InspectBackbone:
    torch.manual_seed(0)
    return InspectBackbone(BackboneConfig.named("tiny")).eval()


def _inputs(cfg: BackboneConfig, b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(b, 3, cfg.image_size, cfg.image_size, generator=g),
        "spectrum": torch.randn(b, 2, cfg.spectrum_bins, generator=g),
    }


@pytest.mark.parametrize("masked", [False, True])
def test_readout_leaves_every_other_token_as_the_prompt_free_pass(
    model: InspectBackbone, masked: bool
) -> None:
    cfg = model.config
    x = _inputs(cfg)
    if masked:  # a part without its camera, one without vibration
        x["image_present"] = torch.tensor([True, False, True])
        x["vibration_present"] = torch.tensor([True, True, False])
    prompts = torch.randn(3, 5, cfg.hidden_size)  # large random prompts: any leak would show
    with torch.no_grad():
        free = model.forward_features(**x)
        read = model.forward_features(**x, inputs_embeds=prompts, readout_prompts=True)
        plain = model.forward_features(**x, inputs_embeds=prompts)
    for name in ("cls", "image_tokens", "spectrum_tokens", "patch_features"):
        torch.testing.assert_close(getattr(read, name), getattr(free, name), atol=1e-5, rtol=0)
    assert read.prompt_tokens.shape == (3, 5, cfg.hidden_size)
    # without read-out the same prompts do change the other tokens (the test can fail)
    assert (plain.patch_features - free.patch_features).abs().max() > 1e-3
    # and the prompts' outputs depend on the part: they read it
    assert (read.prompt_tokens[0] - read.prompt_tokens[1]).abs().max() > 1e-3


def test_readout_prompts_get_gradients(model: InspectBackbone) -> None:
    cfg = model.config
    prompts = (torch.randn(2, 4, cfg.hidden_size) * 0.02).requires_grad_(True)
    out = model(**_inputs(cfg, 2), inputs_embeds=prompts, readout_prompts=True)
    out.prompt_tokens.mean(dim=1).pow(2).sum().backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0


def test_readout_through_peft_prompt_tuning() -> None:
    from peft import PromptTuningConfig, TaskType, get_peft_model

    torch.manual_seed(0)
    model = InspectBackbone(BackboneConfig.named("tiny")).eval()
    pcfg = PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=4)
    peft_model = get_peft_model(model, pcfg)
    x = _inputs(model.config, 2)
    empty = torch.zeros(2, 0, model.config.hidden_size)
    out = peft_model(inputs_embeds=empty, readout_prompts=True, **x)
    with torch.no_grad():
        free = model.forward_features(**x)
    torch.testing.assert_close(out.patch_features, free.patch_features, atol=1e-5, rtol=0)
    assert out.prompt_tokens.shape[1] == 4
    out.prompt_tokens.sum().backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "prompt_encoder" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
