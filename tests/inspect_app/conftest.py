"""Fixtures shared by the inspect_app tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import inspect_app.teach as teach
from models.config import BackboneConfig
from models.line_model import random_backbone


@pytest.fixture
def small_teach_backbone(
    monkeypatch: pytest.MonkeyPatch, small_config_32: Callable[..., BackboneConfig]
) -> None:
    """`teach.get_backbone` gives a small seeded random backbone (32 px, 32 spectrum bins)
    instead of the shipped one: adapt runs in seconds."""

    def small(size: str = "tiny", warn: bool = True):  # type: ignore[no-untyped-def]
        backbone, spec = random_backbone(small_config_32(size_name="test"), seed=0)
        spec["sha256"] = teach.backbone_hash(backbone)
        return backbone, spec

    monkeypatch.setattr(teach, "get_backbone", small)
