"""Segmentation + measurement of the nodules of a small synthetic chest phantom."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball import synth
from medsnowball.core import Candidate, LungSegmentation
from medsnowball.evaluation import segmentation_dice
from medsnowball.measure import measure_nodule
from medsnowball.segmentation import segment_nodule

SPECS = (
    ("solid", "parenchymal", 8.0, None),
    ("solid", "juxtapleural", 9.0, None),
    ("solid", "juxtavascular", 8.0, None),
    ("ground_glass", "parenchymal", 10.0, None),
    ("part_solid", "parenchymal", 12.0, 6.0),
)


@pytest.fixture(scope="module")
def phantom() -> object:
    specs = tuple(
        synth.NoduleSpec(d, kind, loc, solid_diameter_mm=sd)  # type: ignore[arg-type]
        for kind, loc, d, sd in SPECS
    )
    cfg = synth.PhantomConfig(
        shape_zyx=(80, 128, 128), spacing_zyx=(2.0, 1.1, 1.1), seed=22, nodules=specs
    )
    ph = synth.generate_phantom(cfg)
    # Seed 22 is fixed, so placement is deterministic: a missing nodule is a generator
    # regression, not bad luck.
    assert len(ph.truth.nodules) == len(SPECS), "the generator failed to place a nodule"
    return ph


def test_every_nodule_is_segmented_and_measured(phantom: object) -> None:
    ph = phantom
    vol = ph.volume  # type: ignore[attr-defined]
    truth = ph.truth  # type: ignore[attr-defined]
    lungs = LungSegmentation(
        ph.lung_labels,  # type: ignore[attr-defined]
        vol.geometry,
        truth.right_lung_ml,
        truth.left_lung_ml,
        zone_bounds_z=truth.zone_bounds_z,
    )
    for n in truth.nodules:
        cand = Candidate(n.center_lps, n.center_zyx, 0.9, n.diameter_mm)
        seg = segment_nodule(vol, cand, lungs)
        nod = measure_nodule(vol, seg, lungs, nodule_id=n.id, score=0.9)
        what = f"{n.type} {n.location} {n.diameter_mm} mm"
        labels = ph.nodule_labels == n.id  # type: ignore[attr-defined]
        assert segmentation_dice(seg, labels) >= 0.85, what
        assert nod.volume_mm3 == pytest.approx(n.volume_mm3, rel=0.2), what
        assert nod.type.value == n.type, what
        assert nod.juxtapleural is (n.location == "juxtapleural"), what
        assert nod.side is not None
        assert nod.side.value == n.side, what
        assert nod.zone is not None
        assert nod.zone.value == n.zone, what
        assert np.linalg.norm(np.subtract(nod.center_lps, n.center_lps)) < 1.5, what
