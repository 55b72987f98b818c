"""Shared phantoms of the lung tests (generated once per session, <= 128^3)."""

from __future__ import annotations

import pytest

from medsnowball.core import LungSegmentation
from medsnowball.lung import segment_lungs
from medsnowball.synth import NoduleSpec, Phantom, PhantomConfig, generate_phantom

#: Grid of the lung phantoms: 205 mm in-plane field of view, 256 mm of z.
LUNG_SHAPE = (128, 128, 128)
LUNG_SPACING = (2.0, 1.6, 1.6)

JUXTAPLEURAL_NODULES = (
    NoduleSpec(8.0, "solid", "juxtapleural", side="right", zone="middle"),
    NoduleSpec(12.0, "solid", "juxtapleural", side="left", zone="lower"),
    NoduleSpec(10.0, "ground_glass", "juxtapleural", side="left", zone="upper"),
    NoduleSpec(9.0, "solid", "parenchymal", side="right", zone="upper"),
)


@pytest.fixture(scope="session")
def lung_phantom() -> Phantom:
    """A chest phantom with three juxtapleural nodules and one parenchymal nodule."""
    return generate_phantom(
        PhantomConfig(
            shape_zyx=LUNG_SHAPE, spacing_zyx=LUNG_SPACING, seed=3, nodules=JUXTAPLEURAL_NODULES
        )
    )


@pytest.fixture(scope="session")
def lung_seg(lung_phantom: Phantom) -> LungSegmentation:
    """Classical lung segmentation of :func:`lung_phantom`."""
    return segment_lungs(lung_phantom.volume)
