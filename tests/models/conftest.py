"""Shared fixtures of the model tests: tiny configs that build and run fast on CPU."""

from __future__ import annotations

import pytest

from medsnowball.models.config import ModelConfig, PatchSpec


@pytest.fixture
def tiny_classifier_config() -> ModelConfig:
    """A 16^3 classifier at 1.5 mm (a few thousand parameters)."""
    return ModelConfig(
        kind="fp_classifier",
        patch=PatchSpec(size_zyx=(16, 16, 16), spacing_zyx=(1.5, 1.5, 1.5)),
        channels=(4, 8, 16),
        strides=(2, 2, 2),
        dropout=0.0,
    )


@pytest.fixture
def tiny_unet_config() -> ModelConfig:
    """A 16^3 U-Net at 1 mm."""
    return ModelConfig(
        kind="nodule_unet",
        patch=PatchSpec(size_zyx=(16, 16, 16), spacing_zyx=(1.0, 1.0, 1.0)),
        channels=(4, 8, 16),
        strides=(2, 2),
        dropout=0.0,
    )
