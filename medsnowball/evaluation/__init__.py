"""Evaluation: LUNA16-style matching, FROC / CPM, sensitivity by group, Dice and errors.

Public API::

    from medsnowball.evaluation import (
        match_candidates, froc, cpm, FROCResult, dice, volume_error, evaluate_cases,
    )
"""

from __future__ import annotations

from medsnowball.evaluation.cases import (
    DEFAULT_SIZE_BANDS_MM,
    EvalCase,
    EvaluationReport,
    GroupSummary,
    NoduleEval,
    evaluate_cases,
)
from medsnowball.evaluation.froc import LUNA16_FP_RATES, FROCResult, cpm, froc
from medsnowball.evaluation.matching import (
    CaseMatch,
    Prediction,
    TruthNodule,
    as_prediction,
    as_truth,
    match_candidates,
)
from medsnowball.evaluation.metrics import (
    diameter_error,
    dice,
    mask_volume_mm3,
    segmentation_dice,
    volume_error,
)

__all__ = [
    "DEFAULT_SIZE_BANDS_MM",
    "LUNA16_FP_RATES",
    "CaseMatch",
    "EvalCase",
    "EvaluationReport",
    "FROCResult",
    "GroupSummary",
    "NoduleEval",
    "Prediction",
    "TruthNodule",
    "as_prediction",
    "as_truth",
    "cpm",
    "diameter_error",
    "dice",
    "evaluate_cases",
    "froc",
    "mask_volume_mm3",
    "match_candidates",
    "segmentation_dice",
    "volume_error",
]
