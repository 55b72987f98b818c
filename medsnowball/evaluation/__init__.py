"""Evaluation: LUNA16-style matching, FROC / CPM, sensitivity by group, Dice and errors.

Public API::

    from medsnowball.evaluation import (
        match_candidates, froc, cpm, FROCResult, dice, volume_error, evaluate_cases,
    )

Reading inputs (LUNA16 CSVs, phantom truth JSON, run folders) is in
:mod:`medsnowball.evaluation.io`; the files of ``medsnowball eval`` (froc.csv, metrics.json,
froc.png) in :mod:`medsnowball.evaluation.files` and :mod:`medsnowball.evaluation.plots`.
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
from medsnowball.evaluation.files import (
    build_eval_cases,
    froc_csv_text,
    metrics_document,
    nodules_from_findings,
    write_eval_outputs,
)
from medsnowball.evaluation.froc import LUNA16_FP_RATES, FROCResult, cpm, froc
from medsnowball.evaluation.io import (
    Pairing,
    PredictionCase,
    TruthCase,
    pair_cases,
    read_luna16_candidates,
    read_luna16_truth,
    read_predictions,
    read_scan_list,
    read_truth,
    read_truth_json,
)
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
    "Pairing",
    "Prediction",
    "PredictionCase",
    "TruthCase",
    "TruthNodule",
    "as_prediction",
    "as_truth",
    "build_eval_cases",
    "cpm",
    "diameter_error",
    "dice",
    "evaluate_cases",
    "froc",
    "froc_csv_text",
    "mask_volume_mm3",
    "match_candidates",
    "metrics_document",
    "nodules_from_findings",
    "pair_cases",
    "read_luna16_candidates",
    "read_luna16_truth",
    "read_predictions",
    "read_scan_list",
    "read_truth",
    "read_truth_json",
    "segmentation_dice",
    "volume_error",
    "write_eval_outputs",
]
