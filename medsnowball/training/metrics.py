"""Validation metrics of the learned models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

#: False positives per scan at which the LUNA16 CPM averages sensitivity.
CPM_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, ties count one half).

    Returns NaN when one class is absent.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.r_[pos, neg], kind="mergesort")
    allv = np.r_[pos, neg][order]
    ranks = np.empty(len(allv))
    # average ranks of ties
    _, first, counts = np.unique(allv, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def patch_cpm(
    scores: ArrayLike,
    labels: ArrayLike,
    n_scans: int,
    fp_rates: Sequence[float] = CPM_FP_RATES,
) -> float:
    """CPM-style score of patch predictions: mean sensitivity at the FP/scan rates.

    Each positive patch counts as one nodule and each negative as one candidate, so
    when the negatives are all of a detector's unmatched candidates this is the LUNA16
    CPM of the re-scored candidate list; with sampled negatives it is an estimate.

    Args:
        scores: Predicted probabilities.
        labels: 1 nodule, 0 not.
        n_scans: Scans the patches come from.
        fp_rates: False positives per scan.

    Returns:
        Mean sensitivity in [0, 1] (NaN without positives).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if not y.any():
        return float("nan")
    neg = np.sort(s[~y])[::-1]
    pos = s[y]
    sens = []
    for rate in fp_rates:
        allowed = int(np.floor(rate * max(1, n_scans)))
        # threshold: strictly above the (allowed+1)-th highest negative
        thr = neg[allowed] if allowed < len(neg) else -np.inf
        sens.append(float(np.mean(pos > thr)))
    return float(np.mean(sens))


def dice(pred: ArrayLike, truth: ArrayLike) -> float:
    """Dice coefficient of two boolean arrays (1.0 when both are empty)."""
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return 1.0
    return 2.0 * float(np.logical_and(p, t).sum()) / total


__all__ = ["CPM_FP_RATES", "dice", "patch_cpm", "roc_auc"]
