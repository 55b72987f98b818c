"""Shared phantoms of the detection tests (generated once per session, about 128^3 voxels)."""

from __future__ import annotations

import pytest

from medsnowball.core import Candidate, LungSegmentation
from medsnowball.detection import detect_candidates
from medsnowball.lung import segment_lungs
from medsnowball.synth import NoduleSpec, Phantom, PhantomConfig, generate_phantom

#: 96 x 144 x 144 voxels (2.0 M, like 128^3) at 1.1 mm pixels: a 158 mm chest.
DET_SHAPE = (96, 144, 144)
DET_SPACING = (1.6, 1.1, 1.1)

FOUR_NODULES = (
    NoduleSpec(8.0, "solid", "parenchymal", side="right", zone="middle"),
    NoduleSpec(8.0, "solid", "juxtapleural", side="left", zone="middle"),
    NoduleSpec(8.0, "solid", "juxtavascular", side="right", zone="upper"),
    NoduleSpec(10.0, "ground_glass", "parenchymal", side="left", zone="upper"),
)


def _config(seed: int, nodules: tuple[NoduleSpec, ...]) -> PhantomConfig:
    return PhantomConfig(shape_zyx=DET_SHAPE, spacing_zyx=DET_SPACING, seed=seed, nodules=nodules)


@pytest.fixture(scope="session")
def nodule_phantom() -> Phantom:
    """Solid parenchymal, juxtapleural, juxtavascular and a ground-glass nodule."""
    return generate_phantom(_config(1, FOUR_NODULES))


@pytest.fixture(scope="session")
def nodule_lungs(nodule_phantom: Phantom) -> LungSegmentation:
    """Lungs of :func:`nodule_phantom`."""
    return segment_lungs(nodule_phantom.volume)


@pytest.fixture(scope="session")
def nodule_candidates(nodule_phantom: Phantom, nodule_lungs: LungSegmentation) -> list[Candidate]:
    """Candidates of :func:`nodule_phantom`."""
    return detect_candidates(nodule_phantom.volume, nodule_lungs)


@pytest.fixture(scope="session")
def empty_phantom() -> Phantom:
    """The same kind of chest without nodules."""
    return generate_phantom(_config(0, ()))
