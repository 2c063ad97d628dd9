"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from models.config import BackboneConfig


@pytest.fixture
def small_config_32() -> Callable[..., BackboneConfig]:
    """`small_config_32(**overrides)`: a backbone config at 32 px with 4x4 patches of 8 px,
    two blocks of width 32 and 4 experts: fast enough for adapt runs in tests."""

    def make(**overrides: Any) -> BackboneConfig:
        settings: dict[str, Any] = {
            "image_size": 32,
            "patch_size": 8,
            "spectrum_bins": 32,
            "spectrum_patch": 8,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "dense_intermediate_size": 64,
            "moe_intermediate_size": 16,
            "n_routed_experts": 4,
            "n_activated_experts": 2,
            "feature_layers": [0, 1],
        }
        return BackboneConfig(**{**settings, **overrides})

    return make
