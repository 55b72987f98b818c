"""Fit the combination of detector score and CNN probability on validation candidates.

The training recipe keeps every classical-detector candidate of its validation scans
(patch, detector score, hit label, and the scans' nodules) in ``validation_candidates.npz``.
:func:`fit_combiner` runs the trained classifier on those patches, fits a two-feature
logistic regression (``logit(detector_score)``, ``logit(fp_probability)``, small L2
penalty; by default the probability is the mean over the 8 axis flips of each patch) to
the LUNA16 hit labels, chooses the operating threshold at a target number of false
positives per scan, and reports the validation CPM of every combination rule;
:func:`fit_and_store_combiner` writes the result into the checkpoint's JSON config.

Re-run it when the detector's scorer changes (the CNN need not be retrained)::

    python -m medsnowball.training.stacking RUN_DIR/fp_classifier/best.safetensors \
        RUN_DIR/validation_candidates.npz [--install]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.models.combiner import ScoreCombiner, logit

logger = logging.getLogger(__name__)

#: L2 penalty on the two weights (the data are ~2,000 candidates; it only guards against
#: separable data).
L2_PENALTY = 1e-3
#: Default operating point: the threshold leaving this many false positives per scan on the
#: validation scans (the classical pipeline's threshold is also set at 0.5 FP per scan).
TARGET_FP_PER_SCAN = 0.5
#: Fit (and so run) the CNN with flip test-time augmentation by default.
FLIP_TTA = True
#: Operating points listed in the provenance (thresholds for other trade-offs).
LISTED_FP_RATES = (0.25, 0.5, 1.0, 2.0)

__all__ = [
    "fit_and_store_combiner",
    "fit_combiner",
    "fit_logistic",
    "threshold_at_fp_rate",
    "validation_cpm",
]


def fit_logistic(
    features: NDArray[np.float64], labels: NDArray[Any], l2: float = L2_PENALTY
) -> tuple[NDArray[np.float64], float]:
    """Maximum-likelihood logistic regression with an L2 penalty on the weights.

    Args:
        features: ``(n, k)`` inputs.
        labels: ``(n,)`` 0/1 targets.
        l2: Penalty ``l2 * |w|^2`` (the intercept is not penalised).

    Returns:
        ``(weights (k,), intercept)``.

    Raises:
        ConfigError: Only one class present.
    """
    from scipy.optimize import minimize

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64).ravel()
    if y.min() == y.max():
        raise ConfigError("logistic stacking needs both hits and false positives, found one class.")
    n, k = x.shape

    def loss(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        z = x @ theta[:k] + theta[k]
        # mean negative log-likelihood, numerically stable
        nll = float(np.mean(np.logaddexp(0.0, z) - y * z)) + l2 * float(theta[:k] @ theta[:k])
        r = (1.0 / (1.0 + np.exp(-z)) - y) / n
        grad = np.r_[x.T @ r + 2 * l2 * theta[:k], r.sum()]
        return nll, grad

    res = minimize(loss, np.zeros(k + 1), jac=True, method="L-BFGS-B")
    return np.asarray(res.x[:k]), float(res.x[k])


def threshold_at_fp_rate(fp_scores: NDArray[np.float64], n_scans: int, fp_per_scan: float) -> float:
    """Lowest-FP threshold leaving at most ``fp_per_scan`` false positives per scan.

    Returns the midpoint between the k-th and (k+1)-th highest false-positive scores
    (``k = floor(fp_per_scan * n_scans)``), so exactly ``k`` score at or above it.
    """
    fp = np.sort(np.asarray(fp_scores, dtype=np.float64))[::-1]
    k = int(np.floor(fp_per_scan * n_scans))
    if k >= len(fp):
        return 0.0
    upper = fp[k - 1] if k > 0 else 1.0
    return float(0.5 * (upper + fp[k]))


def _matches(data: Mapping[str, NDArray[Any]], scores: NDArray[np.float64]) -> list[Any]:
    from medsnowball.evaluation.matching import Prediction, TruthNodule, match_candidates

    n_cases = int(max(data["truth_case"].max(initial=-1), data["cand_case"].max(initial=-1))) + 1
    out = []
    for i in range(n_cases):
        ci = np.flatnonzero(data["cand_case"] == i)
        ti = np.flatnonzero(data["truth_case"] == i)
        preds = [Prediction(tuple(data["cand_lps"][j]), float(scores[j])) for j in ci]  # type: ignore[arg-type]
        truth = [
            TruthNodule(tuple(data["truth_lps"][j]), float(data["truth_diameter"][j]))  # type: ignore[arg-type]
            for j in ti
        ]
        out.append(match_candidates(preds, truth, min_diameter_mm=3.0))
    return out


def validation_cpm(data: Mapping[str, NDArray[Any]], scores: NDArray[np.float64]) -> dict[str, Any]:
    """LUNA16 CPM and sensitivity at 1 / 2 FP per scan of candidate ``scores``."""
    from medsnowball.evaluation.froc import froc

    r = froc(_matches(data, scores))
    s = dict(zip(r.fp_rates, r.sensitivities, strict=True))
    return {
        "cpm": round(r.cpm, 4),
        "sens_at_1fp": round(float(s.get(1.0, np.nan)), 4),
        "sens_at_2fp": round(float(s.get(2.0, np.nan)), 4),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fit_combiner(
    checkpoint: str | Path,
    candidates: str | Path | Mapping[str, NDArray[Any]],
    fp_per_scan: float = TARGET_FP_PER_SCAN,
    threads: int = 2,
    tta: bool = FLIP_TTA,
) -> tuple[ScoreCombiner, dict[str, Any]]:
    """Fit the logistic stacking on validation candidates.

    Args:
        checkpoint: The trained classifier.
        candidates: ``validation_candidates.npz`` (or its arrays): ``cand_x`` patches,
            ``cand_case``, ``cand_lps``, ``cand_score``, ``cand_hit``, ``truth_case``,
            ``truth_lps``, ``truth_diameter``.
        fp_per_scan: Operating point for the threshold.
        threads: torch CPU threads.
        tta: Fit on the CNN probability averaged over the 8 axis flips of each patch
            (recorded as ``flip_tta``: inference then averages the same way).

    Returns:
        ``(combiner, report)``: the report holds the validation CPM of the detector
        alone, the CNN alone, the geometric mean and the stacking.
    """
    import torch

    from medsnowball.models.inference import FPReducer

    torch.set_num_threads(max(1, threads))
    if isinstance(candidates, Mapping):
        data = dict(candidates)
    else:
        with np.load(candidates) as npz:
            data = {k: npz[k] for k in npz.files}
    reducer = FPReducer(checkpoint, device="cpu", combine="geometric", tta=tta)
    prob = reducer.patch_probabilities(data["cand_x"].astype(np.float32)).astype(np.float64)
    det = np.asarray(data["cand_score"], dtype=np.float64)
    y = np.asarray(data["cand_hit"]).astype(np.int64)
    x = np.stack([logit(det), logit(prob)], axis=1)
    w, b = fit_logistic(x, y)
    n_scans = int(data["truth_case"].max(initial=-1)) + 1
    base = ScoreCombiner(float(w[0]), float(w[1]), b)
    stacked = base(det, prob)
    thr = threshold_at_fp_rate(stacked[y == 0], n_scans, fp_per_scan)
    report = {
        "n_scans": n_scans,
        "n_candidates": len(y),
        "n_hits": int(y.sum()),
        "validation": {
            "classical": validation_cpm(data, det),
            "cnn": validation_cpm(data, prob),
            "geometric": validation_cpm(data, np.sqrt(det * prob)),
            "stacked": validation_cpm(data, stacked),
        },
    }
    found = _matches(data, stacked)
    hit_scores = np.concatenate([m.nodule_scores for m in found])
    report["threshold"] = {
        "value": round(thr, 4),
        "rule": f"<= {fp_per_scan:g} false positives per validation scan",
        "sensitivity": round(float(np.mean(hit_scores >= thr)), 4),
        "fp_per_scan": round(float(np.sum(stacked[y == 0] >= thr)) / max(1, n_scans), 3),
        "at_other_fp_rates": {
            f"{r:g}": round(threshold_at_fp_rate(stacked[y == 0], n_scans, r), 4)
            for r in LISTED_FP_RATES
        },
    }
    provenance = {
        "fitted_on": "classical-detector candidates of the recipe's validation scans",
        "classifier_sha256_16": _sha256(Path(checkpoint)),
        **report,
    }
    try:
        from medsnowball.detection.scorer import __file__ as scorer_file

        scorer_json = Path(scorer_file).with_name("scorer_classical.json")
        if scorer_json.is_file():
            provenance["detector_scorer_sha256_16"] = _sha256(scorer_json)
    except ImportError:  # pragma: no cover - detection is part of the package
        pass
    combiner = dataclasses.replace(
        base, threshold=round(thr, 4), provenance=provenance, flip_tta=bool(tta)
    )
    return combiner, report


def fit_and_store_combiner(
    checkpoint: str | Path,
    candidates: str | Path | Mapping[str, NDArray[Any]],
    fp_per_scan: float = TARGET_FP_PER_SCAN,
    threads: int = 2,
    tta: bool = FLIP_TTA,
) -> dict[str, Any]:
    """:func:`fit_combiner`, then rewrite ``checkpoint`` with ``extra["combiner"]`` set.

    Returns:
        The combiner record written (``ScoreCombiner.to_dict()``).
    """
    from medsnowball.models.checkpoint import load_checkpoint, save_checkpoint

    combiner, report = fit_combiner(checkpoint, candidates, fp_per_scan, threads, tta)
    ck = load_checkpoint(checkpoint)
    record = combiner.to_dict()
    cfg = dataclasses.replace(ck.config, extra={**ck.config.extra, "combiner": record})
    save_checkpoint(checkpoint, ck.state_dict, cfg)
    logger.info("score combiner: %s", json.dumps(report))
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m medsnowball.training.stacking CHECKPOINT CANDIDATES [--install]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("candidates", help="validation_candidates.npz of a recipe run")
    ap.add_argument("--fp-per-scan", type=float, default=TARGET_FP_PER_SCAN)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--install", action="store_true", help="copy the checkpoint into the package")
    ap.add_argument(
        "--no-tta",
        action="store_true",
        help="fit on the plain CNN probability (default: mean over 8 patch flips)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    record = fit_and_store_combiner(
        args.checkpoint, args.candidates, args.fp_per_scan, args.threads, not args.no_tta
    )
    sys.stdout.write(json.dumps(record, indent=1) + "\n")
    if args.install:
        from medsnowball.models.inference import DEFAULT_FP_WEIGHTS

        shutil.copyfile(args.checkpoint, DEFAULT_FP_WEIGHTS)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
