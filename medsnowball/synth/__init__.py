"""Synthetic chest CT phantoms with exact ground truth (see docs/synth.md).

Example::

    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

    ph = generate_phantom(PhantomConfig(seed=1, nodules=(NoduleSpec(8.0, "solid", "parenchymal"),)))
    ph.volume          # CTVolume (HU), ph.lung_labels, ph.nodule_labels, ph.truth
"""

from __future__ import annotations

from medsnowball.synth.generator import Phantom, generate_phantom
from medsnowball.synth.specs import (
    LUNA16_DIAMETER_QUANTILES_MM,
    NoduleSpec,
    NoduleTruth,
    PhantomConfig,
    PhantomTruth,
    random_nodule_specs,
)
from medsnowball.synth.tissues import Tissue

__all__ = [
    "LUNA16_DIAMETER_QUANTILES_MM",
    "NoduleSpec",
    "NoduleTruth",
    "Phantom",
    "PhantomConfig",
    "PhantomTruth",
    "Tissue",
    "generate_phantom",
    "random_nodule_specs",
    "write_phantom",
]


def __getattr__(name: str) -> object:
    if name == "write_phantom":
        from medsnowball.synth.writer import write_phantom

        return write_phantom
    raise AttributeError(name)
