"""peft on the backbone: prompt tuning through inputs_embeds (vocab_size=0) and LoRA."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

from models.backbone import InspectBackbone
from models.config import SIZES, BackboneConfig


@pytest.mark.parametrize("size", sorted(SIZES))
def test_prompt_tuning_trains_only_the_prompts(size: str) -> None:
    torch.manual_seed(0)
    cfg = BackboneConfig.named(size)
    base = InspectBackbone(cfg)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    peft_cfg = PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=4, token_dim=cfg.hidden_size
    )
    model = get_peft_model(base, peft_cfg)
    image = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    out = model(inputs_embeds=torch.zeros(2, 0, cfg.hidden_size), image=image)
    assert out.prompt_tokens.shape == (2, 4, cfg.hidden_size)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("prompt_encoder" in n for n in trainable), trainable
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    out.cls.pow(2).sum().backward()
    opt.step()
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k]), k
    after = model(inputs_embeds=torch.zeros(2, 0, cfg.hidden_size), image=image)
    assert not torch.allclose(after.cls, out.cls)


def test_lora_on_attention_projections() -> None:
    torch.manual_seed(0)
    cfg = BackboneConfig.named("tiny")
    model = get_peft_model(
        InspectBackbone(cfg),
        LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=4, target_modules=["qkv", "proj"]),
    )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    out = model(image=torch.randn(1, 3, cfg.image_size, cfg.image_size))
    out.cls.sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads)
