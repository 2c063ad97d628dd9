"""The shipped pretrained checkpoint: loads through importlib.resources, small, with a recipe."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch

from models.backbone import InspectBackbone, load_pretrained, shipped_checkpoints


def test_tiny_checkpoint_loads_and_runs() -> None:
    model = load_pretrained("tiny")
    assert isinstance(model, InspectBackbone) and not model.training
    assert model.config.size_name == "tiny"
    out = model(image=torch.zeros(1, 3, 128, 128), spectrum=torch.zeros(1, 2, 128))
    assert torch.isfinite(out.cls).all()
    # trained: the routing biases moved away from their zero start
    assert any(float(g.routing_bias.abs().sum()) > 0 for g in model.moe_gates())


def test_tiny_checkpoint_files() -> None:
    """The current checkpoint and the earlier ones kept for lines taught on them: each small, with
    the recipe that made it; the current recipe lists every stage from scratch."""
    assert shipped_checkpoints("tiny") == ["tiny", "tiny-stage2", "tiny-stage3"]
    for name in shipped_checkpoints("tiny"):
        folder = resources.files("models") / "checkpoints" / name
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["config.json", "model.safetensors", "recipe.json"]
        with resources.as_file(folder / "model.safetensors") as path:
            assert path.stat().st_size <= 30 * 2**20
        recipe = json.loads(folder.joinpath("recipe.json").read_text())
        assert recipe["command"].startswith("inspect-app pretrain")
        assert {"seed", "steps", "data"} <= set(recipe)
    current = json.loads(
        (resources.files("models") / "checkpoints" / "tiny" / "recipe.json").read_text()
    )
    assert len(current["stages"]) == 4 and current["stages"][-1]["command"] == current["command"]
    assert load_pretrained("tiny-stage2").config.size_name == "tiny"
    assert load_pretrained("tiny-stage3").config.moe_intermediate_size == 96  # before halving


@pytest.mark.parametrize(("name", "image_tokens"), [("tiny16", 64), ("tinym", 256)])
def test_cpu_sizes_ship_beside_tiny(name: str, image_tokens: int) -> None:
    """`tiny16` (16 px patches) and `tinym` (8 px tokens merged 2x2 after the second block)
    ship under their own names, with every stage from scratch in their recipes; neither is
    taken for an earlier stage of `tiny`. `tinym`'s image tokens come out on the 16x16 grid."""
    assert shipped_checkpoints(name) == [name]
    assert name not in shipped_checkpoints("tiny")
    model = load_pretrained(name)
    assert model.config.size_name == name
    assert (model.merge is not None) == (name == "tinym")
    out = model(image=torch.zeros(1, 3, 128, 128), spectrum=torch.zeros(1, 2, 128))
    assert out.image_tokens.shape == (1, image_tokens, 128) and torch.isfinite(out.cls).all()
    folder = resources.files("models") / "checkpoints" / name
    recipe = json.loads(folder.joinpath("recipe.json").read_text())
    assert recipe["config"] == name and recipe["stages"][-1]["command"] == recipe["command"]
    assert [s["config"] for s in recipe["stages"]] == ["tiny"] * 4 + [name]


def test_a_line_taught_on_the_earlier_checkpoint_finds_it() -> None:
    """A line's card records its backbone's hash; when the current checkpoint differs, the one
    it was taught on is found among the earlier ones kept; an unknown hash finds none."""
    from inspect_app.lines import _earlier_checkpoint, _weights_hash

    earlier = _weights_hash(load_pretrained("tiny-stage2"))
    assert _weights_hash(load_pretrained("tiny")) != earlier
    found = _earlier_checkpoint({"size": "tiny", "pretrained": True}, earlier)
    assert found is not None and _weights_hash(found) == earlier
    assert _earlier_checkpoint({"size": "tiny", "pretrained": True}, "0" * 64) is None
    assert _earlier_checkpoint({"size": "tiny", "pretrained": False}, earlier) is None


def test_unknown_size_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="huge"):
        load_pretrained("huge")
