"""evaluate_cases and the segmentation metrics on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import ConfigError, Nodule, NoduleType
from medsnowball.evaluation import (
    EvalCase,
    dice,
    evaluate_cases,
    mask_volume_mm3,
    volume_error,
)
from medsnowball.measure import axial_axes


def test_dice_and_errors() -> None:
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, 0, :3] = True
    b[0, 0, 1:] = True
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    assert dice(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2), bool)) == 1.0
    assert volume_error(110.0, 100.0) == pytest.approx(0.1)
    assert mask_volume_mm3(a, (2.0, 0.5, 0.5)) == pytest.approx(1.5)
    with pytest.raises(ConfigError):
        dice(a, np.zeros((3, 3, 3), bool))
    with pytest.raises(ConfigError):
        volume_error(1.0, 0.0)


def _nodule(nid: int, center: tuple[float, float, float], diameter: float, volume: float) -> Nodule:
    return Nodule(
        id=nid,
        center_lps=center,
        score=0.9,
        diameter_mm=diameter,
        long_axis_mm=diameter,
        short_axis_mm=diameter,
        volume_mm3=volume,
        equivalent_diameter_mm=diameter,
        type=NoduleType.SOLID,
        solid_component_mm=diameter,
        mean_hu=20.0,
    )


def test_evaluate_cases_detection_and_segmentation_figures() -> None:
    # grid: 1 mm voxels, identity geometry; a 6x6x6 truth cube (id 1) and a prediction
    # covering 5 of its 6 slices plus nothing else -> Dice 2*180/(180+216)
    truth_labels = np.zeros((20, 20, 20), np.uint16)
    truth_labels[2:8, 2:8, 2:8] = 1
    truth_labels[12:16, 12:16, 12:16] = 2  # 4 mm, detected by nothing
    pred_labels = np.zeros_like(truth_labels)
    pred_labels[2:7, 2:8, 2:8] = 5
    truth = [
        {"id": 1, "center_lps": (4.5, 4.5, 4.5), "diameter_mm": 7.0, "type": "solid",
         "location": "juxtapleural", "volume_mm3": 216.0},
        {"id": 2, "center_lps": (13.5, 13.5, 13.5), "diameter_mm": 4.5, "type": "ground_glass",
         "location": "parenchymal", "volume_mm3": 64.0},
    ]  # fmt: skip
    preds = [((4.5, 4.5, 4.0), 0.9), ((30.0, 30.0, 30.0), 0.4)]
    nodules = [_nodule(5, (4.5, 4.5, 4.0), 6.0, 180.0)]
    case = EvalCase("a", preds, truth, nodules, pred_labels, truth_labels, (1.0, 1.0, 1.0))
    empty = EvalCase("b", [((0.0, 50.0, 0.0), 0.2)], [])
    rep = evaluate_cases([case, empty], fp_rate=1.0)
    assert rep.froc.n_nodules == 2
    assert rep.froc.n_false_positives == 2
    # <= 1 FP/scan allows both FPs: threshold 0.2; nodule 1 found, nodule 2 missed
    assert rep.threshold == pytest.approx(0.2)
    assert rep.overall.sensitivity == pytest.approx(0.5)
    row = next(r for r in rep.nodules if r.truth_id == 1)
    assert row.detected
    assert row.nodule_id == 5
    assert row.dice == pytest.approx(2 * 180 / (180 + 216))
    assert row.volume_error == pytest.approx(180 / 216 - 1)
    # the reference diameter is the truth mask measured by the Lung-RADS rule
    ref = axial_axes(truth_labels == 1, (1.0, 1.0, 1.0)).mean_diameter_mm
    assert row.truth_mean_diameter_mm == pytest.approx(ref)
    assert ref > 6.0  # a square's long axis is its diagonal
    assert row.diameter_error_mm == pytest.approx(6.0 - row.truth_mean_diameter_mm)
    assert rep.groups["type"]["solid"].sensitivity == 1.0
    assert rep.groups["type"]["ground_glass"].sensitivity == 0.0
    assert rep.groups["location"]["juxtapleural"].n_segmented == 1
    assert rep.groups["size"]["4-6 mm"].n == 1
    assert rep.overall.n_segmented == 1  # the 4.5 mm nodule is below 5 mm
    text = rep.format_table()
    assert "type: solid" in text
    assert "CPM" in text
    assert rep.to_dict()["overall"]["n"] == 2


def test_evaluate_cases_needs_cases() -> None:
    with pytest.raises(ConfigError):
        evaluate_cases([])
