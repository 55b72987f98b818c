"""Shared phantoms for the synth tests (generated once per session, <= 128^3)."""

from __future__ import annotations

import pytest

from medsnowball.synth import NoduleSpec, Phantom, PhantomConfig, generate_phantom

#: One nodule of each location and type, sized so the 1.5 mm grid resolves them.
MIXED_NODULES = (
    NoduleSpec(9.0, "solid", "parenchymal", side="right", zone="middle"),
    NoduleSpec(8.0, "solid", "juxtapleural", side="left", zone="middle"),
    NoduleSpec(7.0, "solid", "juxtavascular", side="right", zone="upper"),
    NoduleSpec(12.0, "ground_glass", "parenchymal", side="left", zone="upper"),
    NoduleSpec(14.0, "part_solid", "parenchymal", solid_diameter_mm=7.0, side="right"),
    NoduleSpec(6.0, "solid", "parenchymal", calcified=True),
)


@pytest.fixture(scope="session")
def mixed_config() -> PhantomConfig:
    """Default 128^3 grid (2 x 1.5 x 1.5 mm) with six assorted nodules."""
    return PhantomConfig(seed=11, nodules=MIXED_NODULES)


@pytest.fixture(scope="session")
def mixed_phantom(mixed_config: PhantomConfig) -> Phantom:
    """The phantom of :func:`mixed_config`."""
    return generate_phantom(mixed_config)


@pytest.fixture(scope="session")
def clean_phantom() -> Phantom:
    """Same nodules, no noise and no blur: the pre-blur HU are directly visible."""
    return generate_phantom(
        PhantomConfig(seed=11, nodules=MIXED_NODULES, noise_hu=0.0, blur_mm=0.0)
    )
