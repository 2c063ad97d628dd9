"""Read-out prompts in a line model: one backbone pass, the memory's features unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.export import export_line_model
from models.inputs import ModelInputs
from models.line_model import LineModel, LineModelSettings

OUTPUTS = ("defect_score", "class_probs", "heatmap", "anomaly_score")


def _model(readout: bool, seed: int = 0) -> LineModel:
    torch.manual_seed(seed)
    backbone = InspectBackbone(BackboneConfig.named("tiny")).eval()
    settings = LineModelSettings(classes=["dent", "scratch"], prompt_readout=readout)
    model = LineModel(backbone, settings).eval()
    with torch.no_grad():
        assert model.prompt is not None
        model.prompt.normal_(0.0, 0.5)
        for memory in (model.image_memory, model.vibration_memory):
            assert memory is not None
            for buf in memory.buffers():
                buf.normal_()
    return model


def _count_passes(model: LineModel) -> list[int]:
    calls: list[int] = []
    original = model.backbone.forward_features

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    model.backbone.forward_features = counting  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("readout", [True, False])
def test_one_pass_with_readout_two_without(
    readout: bool, random_parts: Callable[..., ModelInputs]
) -> None:
    model = _model(readout)
    calls = _count_passes(model)
    with torch.no_grad():
        model(**random_parts(model.config, 2, 0).as_kwargs())
    assert len(calls) == (1 if readout else 2)
    assert model.head.in_features == (4 if readout else 3) * model.config.hidden_size


def test_readout_memory_sees_the_prompt_free_features(
    random_parts: Callable[..., ModelInputs],
) -> None:
    model = _model(True)
    parts = random_parts(model.config, 3, 1).as_kwargs()
    with torch.no_grad():
        one_pass, pooled = model.features(**parts)
        free = model.base_features(**parts)
        pred = model(**parts)
        anomaly, _ = model.anomaly(
            free,
            parts["spectrum"],
            parts["image_present"],
            parts["vibration_present"],
            parts["image"],  # the image memory also compares local colour
        )
    torch.testing.assert_close(one_pass.patch_features, free.patch_features, atol=1e-5, rtol=0)
    torch.testing.assert_close(one_pass.spectrum_tokens, free.spectrum_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(pred.anomaly_score, anomaly, atol=1e-4, rtol=1e-5)
    assert pooled.shape == (3, 4 * model.config.hidden_size)
    # the classifier does read the prompts: other prompts, other class probabilities
    other = torch.randn(3, model.settings.n_prompt_tokens, model.config.hidden_size)
    with torch.no_grad():
        swapped = model(**parts, prompt_tokens=other)
    assert not torch.allclose(swapped.class_probs, pred.class_probs, atol=1e-4)
    torch.testing.assert_close(swapped.anomaly_score, pred.anomaly_score)


def test_line_json_without_the_setting_loads_the_two_pass_form(
    tmp_path: Path, random_parts: Callable[..., ModelInputs]
) -> None:
    old = _model(False)
    old.save(tmp_path)
    saved = old.settings.to_dict()
    del saved["prompt_readout"]  # as line.json was written before the setting existed
    again = LineModel.load(tmp_path, saved, backbone=old.backbone)
    assert again.settings.prompt_readout is False and not again.readout
    parts = random_parts(old.config, 2, 3).as_kwargs()
    with torch.no_grad():
        torch.testing.assert_close(again(**parts).defect_score, old(**parts).defect_score)
    assert LineModelSettings().prompt_readout is True  # new line models: one pass


@pytest.mark.slow
@pytest.mark.parametrize("readout", [True, False])
def test_export_equals_torch_in_both_forms(
    tmp_path: Path, readout: bool, random_parts: Callable[..., ModelInputs]
) -> None:
    model = _model(readout, seed=2)
    path = tmp_path / "model.onnx"
    graph = export_line_model(model, random_parts(model.config, 2, 0).as_kwargs(), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parts = random_parts(model.config, 4, 1)
    prompt = graph.line_values["prompt_tokens"]
    feed = {k: v.numpy() for k, v in parts.as_kwargs().items() if v is not None}
    outs = session.run(list(OUTPUTS), {**feed, "prompt_tokens": prompt})
    got = dict(zip(OUTPUTS, outs, strict=True))
    with torch.no_grad():
        prompts = torch.from_numpy(prompt).unsqueeze(0).expand(4, -1, -1)
        pred = model(**parts.as_kwargs(), prompt_tokens=prompts)
    for name in OUTPUTS:
        want = getattr(pred, name).numpy()
        np.testing.assert_allclose(got[name], want, atol=1e-4, rtol=0, err_msg=name)
