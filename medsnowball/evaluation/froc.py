"""FROC analysis and the LUNA16 competition performance metric (CPM).

The FROC curve plots sensitivity (fraction of relevant nodules hit) against the average
number of false positives per scan while the score threshold sweeps from high to low. It
is built from :class:`~medsnowball.evaluation.matching.CaseMatch` results of many scans:

* every distinct score is a threshold ``t``; at ``t`` a nodule counts as found when its
  best hit scores ``>= t``, and every false positive scoring ``>= t`` counts;
* the curve starts at ``(0, 0)`` (threshold above every score) and ends at the sensitivity
  reached with all predictions.

Reading the curve at a false-positive rate ``f`` (what LUNA16's evaluation script does with
``numpy.interp`` on its curve):

* between two curve points the sensitivity is interpolated linearly (this only matters
  where tied scores add true and false positives at once; otherwise the curve is a
  staircase);
* beyond the last point it stays at the final sensitivity (more false positives than the
  system produces cannot find more nodules);
* where the curve rises vertically exactly at ``f`` we take the top of the step: the
  sensitivity *reached* at ``f`` false positives per scan. LUNA16's script samples the curve
  on a 10,001-point grid between 1/8 and 8 and reads the sample at or just below each
  operating point, so at such exact steps it can report the value below the step;
  ``mode="luna16"`` reproduces that sampling when numbers must match published ones.

CPM is the mean of the sensitivities at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per
scan. An optional bootstrap over scans (resampled with replacement, seeded) gives
confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.evaluation.matching import CaseMatch

LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

ReadMode = Literal["exact", "luna16"]


@dataclass(frozen=True, eq=False)
class FROCResult:
    """A FROC curve with its operating points.

    Attributes:
        fps: Average false positives per scan at each curve point ``(n_points,)``,
            non-decreasing, starting at 0.
        sensitivity: Sensitivity at each curve point ``(n_points,)``, non-decreasing
            (NaN when there are no relevant nodules).
        thresholds: Score threshold of each point ``(n_points,)``; a prediction counts when
            its score is ``>=`` the threshold; the first point's threshold is ``+inf``.
        n_scans: Number of scans.
        n_nodules: Number of relevant reference nodules.
        n_detected: Relevant nodules hit by at least one prediction.
        n_false_positives: False positives over all scans (at the lowest threshold).
        fp_rates: The operating points (false positives per scan).
        sensitivities: Sensitivity at each operating point.
        cpm: Mean of ``sensitivities``.
        cpm_ci: Bootstrap confidence interval of the CPM, or ``None``.
        sensitivities_ci: Bootstrap interval at each operating point, or ``None``.
        n_bootstrap: Number of bootstrap samples (0: none).
        confidence: Confidence level of the intervals.
        mode: How the operating points were read off the curve ("exact" or "luna16").
    """

    fps: NDArray[np.float64]
    sensitivity: NDArray[np.float64]
    thresholds: NDArray[np.float64]
    n_scans: int
    n_nodules: int
    n_detected: int
    n_false_positives: int
    fp_rates: tuple[float, ...]
    sensitivities: tuple[float, ...]
    cpm: float
    cpm_ci: tuple[float, float] | None = None
    sensitivities_ci: tuple[tuple[float, float], ...] | None = None
    n_bootstrap: int = 0
    confidence: float = 0.95
    mode: ReadMode = "exact"

    def sensitivity_at(self, fp_rate: float) -> float:
        """Sensitivity at ``fp_rate`` false positives per scan (read as ``self.mode``)."""
        return float(
            _read_curve(self.fps, self.sensitivity, np.array([fp_rate]), self.mode, self.fp_rates)[
                0
            ]
        )

    def threshold_at(self, fp_rate: float) -> float:
        """Lowest score threshold whose average false positives per scan stay <= ``fp_rate``.

        Returns:
            The threshold (``+inf`` when even the highest score exceeds the budget).
        """
        ok = np.flatnonzero(self.fps <= fp_rate + 1e-12)
        return float(self.thresholds[ok[-1]]) if ok.size else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (the curve as lists)."""
        return {
            "n_scans": self.n_scans,
            "n_nodules": self.n_nodules,
            "n_detected": self.n_detected,
            "n_false_positives": self.n_false_positives,
            "cpm": _nan_to_none(self.cpm),
            "cpm_ci": None if self.cpm_ci is None else [_nan_to_none(v) for v in self.cpm_ci],
            "operating_points": [
                {
                    "fp_per_scan": f,
                    "sensitivity": _nan_to_none(s),
                    "ci": None
                    if self.sensitivities_ci is None
                    else [_nan_to_none(v) for v in self.sensitivities_ci[i]],
                }
                for i, (f, s) in enumerate(zip(self.fp_rates, self.sensitivities, strict=True))
            ],
            "n_bootstrap": self.n_bootstrap,
            "confidence": self.confidence,
            "mode": self.mode,
            "curve": {
                "fps": self.fps.tolist(),
                "sensitivity": [_nan_to_none(v) for v in self.sensitivity.tolist()],
                "thresholds": [
                    None if not np.isfinite(v) else float(v) for v in self.thresholds.tolist()
                ],
            },
        }


def _nan_to_none(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _curve(
    nodule_scores: NDArray[np.float64], fp_scores: NDArray[np.float64], n_scans: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """FROC points from pooled per-nodule best scores (``-inf`` = missed) and FP scores."""
    found = nodule_scores[np.isfinite(nodule_scores)]
    thr = np.unique(np.concatenate([found, fp_scores]))[::-1]  # descending
    nod_sorted = np.sort(found)
    fp_sorted = np.sort(fp_scores)
    tp = nod_sorted.size - np.searchsorted(nod_sorted, thr, side="left")
    fp = fp_sorted.size - np.searchsorted(fp_sorted, thr, side="left")
    n_nod = nodule_scores.size
    sens = tp / n_nod if n_nod else np.full(thr.size, np.nan)
    fps = fp / max(n_scans, 1)
    return (
        np.concatenate([[0.0], fps]).astype(np.float64),
        np.concatenate([[0.0 if n_nod else np.nan], sens]).astype(np.float64),
        np.concatenate([[np.inf], thr]).astype(np.float64),
    )


def _read_curve(
    fps: NDArray[np.float64],
    sens: NDArray[np.float64],
    at: NDArray[np.float64],
    mode: ReadMode,
    fp_rates: Sequence[float],
) -> NDArray[np.float64]:
    """Sensitivity of the curve at the false-positive rates ``at`` (see module doc)."""
    if mode == "luna16":
        lo, hi = float(min(fp_rates)), float(max(fp_rates))
        grid = np.linspace(lo, hi, 10001)
        span = hi - lo if hi > lo else 1.0
        idx = np.clip(((np.asarray(at) - lo) * 10000.0 / span).astype(int), 0, 10000)
        at = grid[idx]
        return np.interp(at, fps, sens)
    out = np.empty(len(at), dtype=np.float64)
    for n, f in enumerate(np.asarray(at, dtype=np.float64)):
        i = int(np.searchsorted(fps, f, side="right")) - 1  # last point with fps <= f
        if i < 0:
            out[n] = sens[0]
        elif i == fps.size - 1 or fps[i] == f:
            out[n] = sens[i]
        else:
            w = (f - fps[i]) / (fps[i + 1] - fps[i])
            out[n] = sens[i] + w * (sens[i + 1] - sens[i])
    return out


def _pool(matches: Sequence[CaseMatch]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    nod = [m.nodule_scores for m in matches]
    fp = [m.fp_scores for m in matches]
    return (
        np.concatenate(nod) if nod else np.zeros(0),
        np.concatenate(fp) if fp else np.zeros(0),
    )


def froc(
    matches: Sequence[CaseMatch],
    *,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    mode: ReadMode = "exact",
    n_bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
) -> FROCResult:
    """FROC curve, sensitivities at the operating points and CPM over many scans.

    Args:
        matches: One :class:`CaseMatch` per scan (scans without nodules or without
            predictions included: they count in the per-scan average).
        fp_rates: Operating points in false positives per scan.
        mode: "exact" or "luna16" (see module doc).
        n_bootstrap: Number of bootstrap samples over scans for confidence intervals
            (0: none; 1000 is customary).
        seed: Seed of the bootstrap resampling.
        confidence: Confidence level of the intervals.

    Returns:
        The FROC result.

    Raises:
        ConfigError: If there are no scans or the options are invalid.
    """
    if len(matches) == 0:
        raise ConfigError("froc() needs at least one scan's matches, got none.")
    if mode not in ("exact", "luna16"):
        raise ConfigError(f"froc() mode must be 'exact' or 'luna16', got {mode!r}.")
    if not 0.0 < confidence < 1.0 or n_bootstrap < 0 or len(fp_rates) == 0:
        raise ConfigError(
            "froc() needs 0 < confidence < 1, n_bootstrap >= 0 and at least one fp rate; "
            f"got {confidence}, {n_bootstrap}, {list(fp_rates)}."
        )
    rates = tuple(float(f) for f in fp_rates)
    at = np.asarray(rates)
    nod, fp = _pool(matches)
    fps, sens, thr = _curve(nod, fp, len(matches))
    s_at = _read_curve(fps, sens, at, mode, rates)
    cpm_value = float(np.mean(s_at))
    cpm_ci = None
    s_ci = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        per_nod = [m.nodule_scores for m in matches]
        per_fp = [m.fp_scores for m in matches]
        n = len(matches)
        samples = np.empty((n_bootstrap, at.size))
        for b in range(n_bootstrap):
            idx = rng.integers(0, n, size=n)
            bn = np.concatenate([per_nod[i] for i in idx])
            bf = np.concatenate([per_fp[i] for i in idx])
            f_b, s_b, _ = _curve(bn, bf, n)
            samples[b] = _read_curve(f_b, s_b, at, mode, rates)
        # A resample without relevant nodules has an undefined (NaN) curve: leave it out.
        valid = samples[np.isfinite(samples).all(axis=1)]
        if valid.shape[0]:
            q = [(1.0 - confidence) / 2.0 * 100.0, (1.0 + confidence) / 2.0 * 100.0]
            lo, hi = np.percentile(valid.mean(axis=1), q)
            cpm_ci = (float(lo), float(hi))
            per = np.percentile(valid, q, axis=0)  # (2, n_rates)
            s_ci = tuple((float(per[0, i]), float(per[1, i])) for i in range(at.size))
    return FROCResult(
        fps=fps,
        sensitivity=sens,
        thresholds=thr,
        n_scans=len(matches),
        n_nodules=int(nod.size),
        n_detected=int(np.isfinite(nod).sum()),
        n_false_positives=int(fp.size),
        fp_rates=rates,
        sensitivities=tuple(float(v) for v in s_at),
        cpm=cpm_value,
        cpm_ci=cpm_ci,
        sensitivities_ci=s_ci,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        mode=mode,
    )


def cpm(
    result: FROCResult | Sequence[CaseMatch],
    *,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    mode: ReadMode | None = None,
) -> float:
    """Competition performance metric: mean sensitivity at the given FP rates.

    Args:
        result: A :class:`FROCResult`, or the per-scan matches to build one from.
        fp_rates: Operating points (LUNA16's seven by default).
        mode: How to read the curve; defaults to the result's mode ("exact" for matches).

    Returns:
        The CPM in [0, 1] (NaN without relevant nodules).
    """
    if not isinstance(result, FROCResult):
        result = froc(result, fp_rates=fp_rates, mode=mode or "exact")
    m: ReadMode = mode or result.mode
    rates = tuple(float(f) for f in fp_rates)
    return float(np.mean(_read_curve(result.fps, result.sensitivity, np.asarray(rates), m, rates)))


__all__ = ["LUNA16_FP_RATES", "FROCResult", "cpm", "froc"]
