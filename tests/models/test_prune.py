"""Structured pruning: nothing pruned changes nothing, a pruned expert is never routed, a pruned
head contributes nothing, and the pruned line model exports with onnxruntime equal to torch."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.export import export_line_model
from models.inputs import ModelInputs
from models.line_model import LineModel
from models.moe import MoE
from models.prune import (
    PruneConfig,
    PrunedGatedAttention,
    measure_importance,
    prune_line_model,
    remove_experts,
    remove_heads,
)

OUTPUTS = ("defect_score", "class_probs", "heatmap", "anomaly_score")


@pytest.fixture(scope="module")
def line_model(tiny_line_model: Callable[..., LineModel]) -> LineModel:
    return tiny_line_model()


def _outputs(model: LineModel, parts: ModelInputs) -> list[torch.Tensor]:
    with torch.no_grad():
        pred = model(**parts.as_kwargs())
    return [getattr(pred, n) for n in OUTPUTS]


def test_pruning_nothing_changes_nothing(
    line_model: LineModel, random_parts: Callable[..., ModelInputs]
) -> None:
    cfg = line_model.config
    parts = random_parts(cfg, 2, 1)
    pruned = copy.deepcopy(line_model)
    report = prune_line_model(pruned, [parts.as_kwargs()], PruneConfig())
    assert report.experts == {} and report.heads == {}
    for a, b in zip(_outputs(pruned, parts), _outputs(line_model, parts), strict=True):
        assert torch.equal(a, b)
    assert sum(p.numel() for p in pruned.parameters()) == sum(
        p.numel() for p in line_model.parameters()
    )


def test_pruned_expert_is_never_routed_and_equals_masking_it(
    line_model: LineModel, random_parts: Callable[..., ModelInputs]
) -> None:
    cfg = line_model.config
    parts = random_parts(cfg, 2, 2)
    masked = copy.deepcopy(line_model)
    removed = copy.deepcopy(line_model)
    blocks = [i for i, b in enumerate(masked.backbone.layers) if isinstance(b.ffn, MoE)]
    pruned_ids = [1, 5]
    for i in blocks:
        masked.backbone.layers[i].ffn.gate.routing_bias[pruned_ids] = -1e9  # type: ignore[index]
        remove_experts(removed.backbone.layers[i].ffn, pruned_ids)  # type: ignore[arg-type]
    # the masked model never routes to them
    imp = measure_importance(masked, masked.backbone, [parts.as_kwargs()])
    for i in blocks:
        assert imp.experts[i][pruned_ids].sum() == 0
        assert imp.experts[i].sum() > 0
        moe = removed.backbone.layers[i].ffn
        assert isinstance(moe, MoE) and len(moe.experts) == cfg.n_routed_experts - 2
    # and removing them computes the same function with fewer weights
    for a, b in zip(_outputs(removed, parts), _outputs(masked, parts), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in removed.parameters()) < sum(
        p.numel() for p in masked.parameters()
    )


def test_removed_head_equals_zeroing_its_output(
    line_model: LineModel, random_parts: Callable[..., ModelInputs]
) -> None:
    cfg = line_model.config
    parts = random_parts(cfg, 2, 3)
    zeroed = copy.deepcopy(line_model)
    removed = copy.deepcopy(line_model)
    hd = cfg.hidden_size // cfg.num_attention_heads
    for i in range(cfg.num_hidden_layers):
        with torch.no_grad():
            zeroed.backbone.layers[i].attn.proj.weight[:, 2 * hd : 3 * hd] = 0.0
        remove_heads(removed.backbone.layers[i], [2])
        assert isinstance(removed.backbone.layers[i].attn, PrunedGatedAttention)
        assert removed.backbone.layers[i].attn.n_heads == cfg.num_attention_heads - 1
    for a, b in zip(_outputs(removed, parts), _outputs(zeroed, parts), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_prune_counts_are_refused(line_model: LineModel) -> None:
    pruned = copy.deepcopy(line_model)
    moe = pruned.backbone.layers[1].ffn
    assert isinstance(moe, MoE)
    with pytest.raises(ValueError, match="top-k"):
        remove_experts(moe, list(range(len(moe.experts) - 1)))
    with pytest.raises(ValueError, match="out of range"):
        remove_experts(moe, [99])
    with pytest.raises(ValueError, match="keep at least one"):
        remove_heads(pruned.backbone.layers[0], list(range(pruned.config.num_attention_heads)))


def test_pruned_model_exports_and_onnxruntime_equals_torch(
    line_model: LineModel, tmp_path: Path, random_parts: Callable[..., ModelInputs]
) -> None:
    cfg = line_model.config
    pruned = copy.deepcopy(line_model)
    report = prune_line_model(
        pruned,
        [random_parts(cfg, 4, 4).as_kwargs()],
        PruneConfig(experts_per_block=2, heads_per_block=1),
    )
    assert all(len(v) == 2 for v in report.experts.values()) and report.experts
    assert all(len(v) == 1 for v in report.heads.values()) and len(report.heads) == 4
    graph = export_line_model(pruned, random_parts(cfg, 2, 5).as_kwargs(), tmp_path / "pruned.onnx")
    full = export_line_model(
        line_model, random_parts(cfg, 2, 5).as_kwargs(), tmp_path / "full.onnx"
    )
    assert graph.path.stat().st_size < 0.9 * full.path.stat().st_size
    parts = random_parts(cfg, 4, 6)
    feed = {k: v.numpy() for k, v in parts.as_kwargs().items() if v is not None}
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    got = session.run(None, feed | graph.line_values)
    for a, b in zip(got, _outputs(pruned, parts), strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=0)


def test_narrowed_experts_keep_their_largest_units_and_load_into_a_narrower_backbone() -> None:
    """A wide backbone's experts narrowed to half: each keeps the units of largest weight
    product, in order; the result loads into a backbone of that width; the rest is untouched."""
    from models.backbone import InspectBackbone
    from models.config import BackboneConfig
    from models.prune import narrow_expert_state

    torch.manual_seed(0)
    wide = InspectBackbone(BackboneConfig.named("tiny", moe_intermediate_size=16))
    state = wide.state_dict()
    expert = "layers.1.ffn.experts.3."
    with torch.no_grad():  # make units 2 and 9 the two strongest of this expert
        for unit in (2, 9):
            state[expert + "w1.weight"][unit] *= 10
            state[expert + "w3.weight"][unit] *= 10
    narrow, width = narrow_expert_state(state, 8)
    assert width == 16
    kept = narrow[expert + "w1.weight"]
    assert kept.shape == (8, wide.config.hidden_size)
    rows = [int((state[expert + "w1.weight"] == r).all(dim=1).nonzero()) for r in kept]
    assert rows == sorted(rows) and {2, 9} <= set(rows)
    torch.testing.assert_close(narrow[expert + "w2.weight"], state[expert + "w2.weight"][:, rows])
    assert narrow["layers.1.ffn.shared_experts.w1.weight"].shape[0] == 8
    assert narrow["layers.0.ffn.w1.weight"].shape == state["layers.0.ffn.w1.weight"].shape
    small = InspectBackbone(BackboneConfig.named("tiny", moe_intermediate_size=8))
    small.load_state_dict(narrow)  # strict: every name and shape fits
    with pytest.raises(ValueError, match="cannot widen"):
        narrow_expert_state(state, 32)
