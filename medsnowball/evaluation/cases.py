"""Evaluate a CAD over many cases: FROC/CPM, sensitivity by group, segmentation agreement.

One call, :func:`evaluate_cases`, gives what the CAD benchmark and ``medsnowball eval``
report:

* detection: LUNA16 matching and FROC over all cases, CPM, the score threshold and the
  sensitivity at an operating point (default 2 false positives per scan), and sensitivity
  and CPM per size band, type and location (other nodules' hits are then ignored, not
  counted as false positives);
* segmentation (relevant nodules of at least ``seg_min_diameter_mm`` that a measured
  nodule matches): Dice against the truth mask, relative volume error, and the error of the
  Lung-RADS mean diameter against the truth mask's own mean diameter (measured by
  :func:`medsnowball.measure.axial_axes`, the same rule as for the prediction; the
  reference diameter is used when no truth mask is given); summaries per type, location
  and size band.

A measured nodule matches a truth nodule when its centre lies within the truth radius or,
with masks, when it overlaps the truth mask; among several, the one with the largest
overlap (else the highest score) is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import CaseResult, Nodule
from medsnowball.evaluation.froc import LUNA16_FP_RATES, FROCResult, froc
from medsnowball.evaluation.matching import CaseMatch, TruthNodule, as_truth, match_candidates
from medsnowball.evaluation.metrics import volume_error

DEFAULT_SIZE_BANDS_MM: tuple[tuple[float, float], ...] = (
    (3.0, 4.0),
    (4.0, 6.0),
    (6.0, 8.0),
    (8.0, 15.0),
    (15.0, 30.0),
    (30.0, float("inf")),
)


@dataclass(frozen=True, eq=False)
class EvalCase:
    """Predictions and truth of one case.

    Attributes:
        case_id: Case name.
        predictions: All scored detections (anything
            :func:`~medsnowball.evaluation.matching.as_prediction` accepts).
        truth: Reference nodules (anything :func:`~medsnowball.evaluation.matching.as_truth`
            accepts; give them ``id`` when ``truth_labels`` is used).
        nodules: Measured nodules (segmentation metrics need them).
        pred_labels: Optional instance mask ``(z, y, x)``, value = ``Nodule.id``.
        truth_labels: Optional instance mask ``(z, y, x)``, value = truth ``id``.
        spacing_zyx: Voxel size of the masks (for truth volumes and diameters).
    """

    case_id: str
    predictions: Sequence[Any]
    truth: Sequence[Any]
    nodules: Sequence[Nodule] = ()
    pred_labels: NDArray[np.integer] | None = None
    truth_labels: NDArray[np.integer] | None = None
    spacing_zyx: tuple[float, float, float] | None = None

    @classmethod
    def from_case_result(
        cls,
        result: CaseResult,
        truth: Sequence[Any],
        truth_labels: NDArray[np.integer] | None = None,
    ) -> EvalCase:
        """Build from a pipeline :class:`~medsnowball.core.CaseResult`.

        Args:
            result: The result (its ``candidates`` are the predictions).
            truth: Reference nodules.
            truth_labels: Optional truth instance mask on the result's grid.

        Returns:
            The evaluation case.
        """
        spacing = result.geometry.spacing_zyx if result.geometry is not None else None
        return cls(
            case_id=result.case_id,
            predictions=result.candidates,
            truth=truth,
            nodules=result.nodules,
            pred_labels=result.nodule_labels,
            truth_labels=truth_labels,
            spacing_zyx=spacing,
        )


@dataclass(frozen=True)
class NoduleEval:
    """Outcome for one relevant reference nodule.

    Attributes:
        case_id: Case name.
        truth_index: Index of the nodule in the case's truth list.
        truth_id: Its id, if any.
        diameter_mm: Reference diameter.
        type: Reference type (or ``None``).
        location: Reference location (or ``None``).
        size_band: Size band label, e.g. "4-6 mm".
        score: Best score among the predictions hitting it (``None``: missed).
        detected: Hit at or above the operating threshold.
        nodule_id: Matched measured nodule, if any.
        dice: Dice of the matched nodule's mask against the truth mask.
        volume_error: Relative volume error of the matched nodule.
        diameter_error_mm: Mean-diameter error of the matched nodule (mm).
        truth_mean_diameter_mm: Reference Lung-RADS mean diameter used for that error.
        predicted_type: Type of the matched nodule.
    """

    case_id: str
    truth_index: int
    truth_id: int | None
    diameter_mm: float
    type: str | None
    location: str | None
    size_band: str
    score: float | None
    detected: bool
    nodule_id: int | None = None
    dice: float | None = None
    volume_error: float | None = None
    diameter_error_mm: float | None = None
    truth_mean_diameter_mm: float | None = None
    predicted_type: str | None = None


@dataclass(frozen=True)
class GroupSummary:
    """Figures for one group of reference nodules.

    Attributes:
        name: Group label.
        n: Relevant nodules in the group.
        sensitivity: Fraction detected at the operating point.
        cpm: CPM of the group (other nodules' hits ignored).
        n_segmented: Nodules with a matched measured nodule (of at least the segmentation
            size).
        dice_mean: Mean Dice over those.
        dice_median: Median Dice.
        volume_error_median_abs: Median absolute relative volume error.
        diameter_error_median_abs_mm: Median absolute mean-diameter error (mm).
        type_accuracy: Fraction of matched nodules typed correctly (``None`` without types).
    """

    name: str
    n: int
    sensitivity: float | None = None
    cpm: float | None = None
    n_segmented: int = 0
    dice_mean: float | None = None
    dice_median: float | None = None
    volume_error_median_abs: float | None = None
    diameter_error_median_abs_mm: float | None = None
    type_accuracy: float | None = None


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """Everything :func:`evaluate_cases` measured.

    Attributes:
        froc: FROC over all cases.
        fp_rate: Operating point (false positives per scan).
        threshold: Score threshold of the operating point.
        overall: Summary over all relevant nodules.
        groups: ``{"size": {...}, "type": {...}, "location": {...}}`` summaries.
        nodules: One row per relevant reference nodule.
        seg_min_diameter_mm: Smallest reference diameter in the segmentation figures.
    """

    froc: FROCResult
    fp_rate: float
    threshold: float
    overall: GroupSummary
    groups: dict[str, dict[str, GroupSummary]]
    nodules: tuple[NoduleEval, ...]
    seg_min_diameter_mm: float
    matches: tuple[CaseMatch, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "froc": self.froc.to_dict(),
            "fp_rate": self.fp_rate,
            "threshold": None if not np.isfinite(self.threshold) else self.threshold,
            "overall": self.overall.__dict__,
            "groups": {k: {n: g.__dict__ for n, g in v.items()} for k, v in self.groups.items()},
            "nodules": [n.__dict__ for n in self.nodules],
            "seg_min_diameter_mm": self.seg_min_diameter_mm,
        }

    def format_table(self) -> str:
        """A plain-text table of the overall and per-group figures."""

        def f(v: float | None, fmt: str) -> str:
            return "-" if v is None or not np.isfinite(v) else format(v, fmt)

        head = (
            f"{'group':<24}{'n':>5}{'sens':>7}{'CPM':>7}{'n_seg':>7}{'Dice':>7}"
            f"{'Dice_md':>8}{'|dV|md':>8}{'|dD|md':>8}{'type':>6}"
        )
        lines = [
            f"CPM {f(self.froc.cpm, '.3f')}  sensitivity {f(self.overall.sensitivity, '.3f')} "
            f"at {self.fp_rate:g} FP/scan (threshold {f(self.threshold, '.3f')}), "
            f"{self.froc.n_scans} scans, {self.froc.n_nodules} nodules; segmentation on "
            f"nodules >= {self.seg_min_diameter_mm:g} mm",
            head,
        ]
        rows = [("all", self.overall)] + [
            (f"{k}: {n}", g) for k, v in self.groups.items() for n, g in v.items()
        ]
        for name, g in rows:
            lines.append(
                f"{name:<24}{g.n:>5}{f(g.sensitivity, '.3f'):>7}{f(g.cpm, '.3f'):>7}"
                f"{g.n_segmented:>7}{f(g.dice_mean, '.3f'):>7}{f(g.dice_median, '.3f'):>8}"
                f"{f(g.volume_error_median_abs, '.3f'):>8}"
                f"{f(g.diameter_error_median_abs_mm, '.2f'):>8}"
                f"{f(g.type_accuracy, '.2f'):>6}"
            )
        return "\n".join(lines)


def _band_label(d: float, bands: Sequence[tuple[float, float]]) -> str:
    for lo, hi in bands:
        if lo <= d < hi:
            return f">={lo:g} mm" if not np.isfinite(hi) else f"{lo:g}-{hi:g} mm"
    return "other"


@dataclass
class _CaseMasks:
    """Per-case lookups so that no full-volume comparison runs per nodule."""

    truth_labels: NDArray[np.integer] | None
    pred_labels: NDArray[np.integer] | None
    truth_slices: list[Any]
    pred_counts: NDArray[np.int64] | None

    @classmethod
    def build(cls, case: EvalCase) -> _CaseMasks:
        from scipy import ndimage as ndi

        tl, pl = case.truth_labels, case.pred_labels
        if tl is not None and pl is not None and tl.shape != pl.shape:
            raise ConfigError(
                f"Case {case.case_id}: truth labels {tl.shape} and predicted labels "
                f"{pl.shape} differ in shape; both must be on the CT's grid."
            )
        slices = ndi.find_objects(np.asarray(tl, dtype=np.int64)) if tl is not None else []
        counts = np.bincount(np.asarray(pl).ravel().astype(np.int64)) if pl is not None else None
        return cls(tl, pl, slices, counts)

    def truth_patch(self, tid: int | None) -> tuple[Any, NDArray[np.bool_]] | None:
        """``(slices, mask within them)`` of a truth id, or ``None``."""
        if self.truth_labels is None or tid is None or not 0 < tid <= len(self.truth_slices):
            return None
        sl = self.truth_slices[tid - 1]
        if sl is None:
            return None
        return sl, np.asarray(self.truth_labels[sl] == tid)

    def overlaps(self, tp: tuple[Any, NDArray[np.bool_]] | None) -> dict[int, int]:
        """Voxels of each predicted id inside a truth mask."""
        if tp is None or self.pred_labels is None:
            return {}
        sl, tmask = tp
        ids = np.asarray(self.pred_labels[sl])[tmask].astype(np.int64)
        counts = np.bincount(ids)
        return {int(i): int(c) for i, c in enumerate(counts) if i > 0 and c > 0}


def _match_nodule(
    t: TruthNodule, overlaps: dict[int, int], nodules: Sequence[Nodule]
) -> Nodule | None:
    best: Nodule | None = None
    best_key: tuple[float, float] = (-1.0, -np.inf)
    c = np.asarray(t.center_lps)
    for n in nodules:
        inside = float(np.linalg.norm(np.asarray(n.center_lps) - c)) <= t.diameter_mm / 2.0
        overlap = float(overlaps.get(int(n.id), 0))
        if not inside and overlap <= 0:
            continue
        key = (overlap, float(n.score))
        if key > best_key:
            best, best_key = n, key
    return best


def _summary(
    name: str, rows: Sequence[NoduleEval], cpm_value: float | None, seg_min: float
) -> GroupSummary:
    n = len(rows)
    sens = float(np.mean([r.detected for r in rows])) if n else None
    seg = [r for r in rows if r.nodule_id is not None and r.diameter_mm >= seg_min]
    dices = [r.dice for r in seg if r.dice is not None]
    verr = [abs(r.volume_error) for r in seg if r.volume_error is not None]
    derr = [abs(r.diameter_error_mm) for r in seg if r.diameter_error_mm is not None]
    typed = [r for r in seg if r.type is not None and r.predicted_type is not None]
    return GroupSummary(
        name=name,
        n=n,
        sensitivity=sens,
        cpm=cpm_value,
        n_segmented=len(seg),
        dice_mean=float(np.mean(dices)) if dices else None,
        dice_median=float(np.median(dices)) if dices else None,
        volume_error_median_abs=float(np.median(verr)) if verr else None,
        diameter_error_median_abs_mm=float(np.median(derr)) if derr else None,
        type_accuracy=float(np.mean([r.type == r.predicted_type for r in typed]))
        if typed
        else None,
    )


def _with_segmentation(
    row: NoduleEval,
    t: TruthNodule,
    nod: Nodule,
    tp: tuple[Any, NDArray[np.bool_]] | None,
    overlaps: dict[int, int],
    masks: _CaseMasks,
    spacing: tuple[float, float, float] | None,
) -> NoduleEval:
    from medsnowball.measure.axes import axial_axes

    d_val = None
    n_truth = int(tp[1].sum()) if tp is not None else 0
    if tp is not None and masks.pred_counts is not None:
        n_pred = int(masks.pred_counts[nod.id]) if nod.id < masks.pred_counts.size else 0
        inter = overlaps.get(int(nod.id), 0)
        d_val = 2.0 * inter / (n_pred + n_truth) if n_pred + n_truth else 1.0
    v_true = t.volume_mm3
    if v_true is None and tp is not None and spacing is not None:
        v_true = n_truth * float(np.prod(spacing))
    ref_d = t.diameter_mm
    if tp is not None and spacing is not None:
        ref_d = axial_axes(tp[1], spacing).mean_diameter_mm
    return NoduleEval(
        **{
            **row.__dict__,
            "nodule_id": nod.id,
            "dice": d_val,
            "volume_error": volume_error(nod.volume_mm3, v_true) if v_true else None,
            "diameter_error_mm": nod.diameter_mm - ref_d,
            "truth_mean_diameter_mm": ref_d,
            "predicted_type": getattr(nod.type, "value", str(nod.type)),
        }
    )


def evaluate_cases(
    cases: Sequence[EvalCase],
    *,
    min_diameter_mm: float = 4.0,
    seg_min_diameter_mm: float = 5.0,
    fp_rate: float = 2.0,
    size_bands_mm: Sequence[tuple[float, float]] = DEFAULT_SIZE_BANDS_MM,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> EvaluationReport:
    """Detection and segmentation figures over many cases (see module doc).

    Args:
        cases: The cases.
        min_diameter_mm: Reference nodules smaller than this are irrelevant (their hits
            are neither true nor false positives).
        seg_min_diameter_mm: Smallest reference diameter in the segmentation figures.
        fp_rate: Operating point (false positives per scan) for sensitivities.
        size_bands_mm: ``(low, high)`` diameter bands (low inclusive).
        fp_rates: FROC operating points of the CPM.
        n_bootstrap: Bootstrap samples for the overall CPM confidence interval.
        seed: Bootstrap seed.

    Returns:
        The report.

    Raises:
        ConfigError: If there are no cases.
    """
    if not cases:
        raise ConfigError("evaluate_cases() needs at least one case, got none.")

    matches = tuple(
        match_candidates(c.predictions, c.truth, min_diameter_mm=min_diameter_mm) for c in cases
    )
    overall_froc = froc(matches, fp_rates=fp_rates, n_bootstrap=n_bootstrap, seed=seed)
    threshold = overall_froc.threshold_at(fp_rate)
    rows: list[NoduleEval] = []
    for case, m in zip(cases, matches, strict=True):
        masks = _CaseMasks.build(case)
        for i, t in enumerate(m.truth):
            if not t.relevant:
                continue
            score = float(m.hit_score[i]) if np.isfinite(m.hit_score[i]) else None
            row = NoduleEval(
                case_id=case.case_id,
                truth_index=i,
                truth_id=t.id,
                diameter_mm=t.diameter_mm,
                type=t.type,
                location=t.location,
                size_band=_band_label(t.diameter_mm, size_bands_mm),
                score=score,
                detected=score is not None and score >= threshold,
            )
            if t.diameter_mm >= seg_min_diameter_mm and case.nodules:
                tp = masks.truth_patch(t.id)
                overlaps = masks.overlaps(tp)
                nod = _match_nodule(t, overlaps, case.nodules)
                if nod is not None:
                    row = _with_segmentation(row, t, nod, tp, overlaps, masks, case.spacing_zyx)
            rows.append(row)

    def group_cpm(pred: Any) -> float | None:
        sub = [
            match_candidates(c.predictions, c.truth, min_diameter_mm=min_diameter_mm, relevant=pred)
            for c in cases
        ]
        if sum(s.n_nodules for s in sub) == 0:
            return None
        return froc(sub, fp_rates=fp_rates).cpm

    groups: dict[str, dict[str, GroupSummary]] = {"size": {}, "type": {}, "location": {}}
    for lo, hi in size_bands_mm:
        label = _band_label(lo, [(lo, hi)])
        sel = [r for r in rows if r.size_band == label]
        if sel:
            groups["size"][label] = _summary(
                label,
                sel,
                group_cpm(lambda t, lo=lo, hi=hi: lo <= t.diameter_mm < hi),
                seg_min_diameter_mm,
            )
    for key in ("type", "location"):
        values = sorted({getattr(r, key) for r in rows if getattr(r, key) is not None})
        for v in values:
            sel = [r for r in rows if getattr(r, key) == v]
            groups[key][v] = _summary(
                v,
                sel,
                group_cpm(lambda t, key=key, v=v: getattr(t, key) == v),
                seg_min_diameter_mm,
            )
    return EvaluationReport(
        froc=overall_froc,
        fp_rate=fp_rate,
        threshold=threshold,
        overall=_summary("all", rows, overall_froc.cpm, seg_min_diameter_mm),
        groups=groups,
        nodules=tuple(rows),
        seg_min_diameter_mm=seg_min_diameter_mm,
        matches=matches,
    )


__all__ = [
    "DEFAULT_SIZE_BANDS_MM",
    "EvalCase",
    "EvaluationReport",
    "GroupSummary",
    "NoduleEval",
    "as_truth",
    "evaluate_cases",
]
