"""The shipped pretrained checkpoint: loads through importlib.resources, small, with a recipe."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch

from models.backbone import InspectBackbone, load_pretrained


def test_tiny_checkpoint_loads_and_runs() -> None:
    model = load_pretrained("tiny")
    assert isinstance(model, InspectBackbone) and not model.training
    assert model.config.size_name == "tiny"
    out = model(image=torch.zeros(1, 3, 128, 128), spectrum=torch.zeros(1, 2, 128))
    assert torch.isfinite(out.cls).all()
    # trained: the routing biases moved away from their zero start
    assert any(float(g.routing_bias.abs().sum()) > 0 for g in model.moe_gates())


def test_tiny_checkpoint_files() -> None:
    folder = resources.files("models") / "checkpoints" / "tiny"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "model.safetensors", "recipe.json"]
    with resources.as_file(folder / "model.safetensors") as path:
        assert path.stat().st_size <= 30 * 2**20
    recipe = json.loads(folder.joinpath("recipe.json").read_text())
    assert recipe["command"].startswith("inspect-app pretrain")
    assert {"seed", "steps", "data"} <= set(recipe)


def test_unknown_size_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="huge"):
        load_pretrained("huge")
