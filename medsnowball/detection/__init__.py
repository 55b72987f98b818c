"""Nodule candidate detection (training-free blob filters + a calibrated feature scorer).

Public API::

    from medsnowball.detection import detect_candidates, CandidateScorer
"""

from __future__ import annotations

from medsnowball.detection.detect import compute_candidate_features, detect_candidates
from medsnowball.detection.features import FEATURE_NAMES
from medsnowball.detection.scorer import CandidateScorer

__all__ = ["FEATURE_NAMES", "CandidateScorer", "compute_candidate_features", "detect_candidates"]
