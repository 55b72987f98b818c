"""From paired inputs to evaluation cases, and the files ``medsnowball eval`` writes.

* :func:`build_eval_cases` turns a :class:`~medsnowball.evaluation.io.Pairing` into
  :class:`~medsnowball.evaluation.cases.EvalCase` objects, loading a run's measured
  nodules (``findings.json``) and the predicted / truth instance masks when both exist;
* :func:`froc_csv_text`, :func:`metrics_document` and :func:`write_eval_outputs` write
  ``froc.csv``, ``metrics.json`` and ``froc.png`` (atomically).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.findings import Nodule, NoduleType, Side, Zone
from medsnowball.evaluation.cases import EvalCase, EvaluationReport
from medsnowball.evaluation.froc import FROCResult
from medsnowball.evaluation.io import Pairing, PredictionCase, TruthCase

logger = logging.getLogger(__name__)

FROC_CSV = "froc.csv"
FROC_PNG = "froc.png"
METRICS_JSON = "metrics.json"


def nodules_from_findings(doc: Mapping[str, Any]) -> list[Nodule]:
    """Measured nodules of a ``findings.json`` document.

    Args:
        doc: The parsed document.

    Returns:
        One :class:`~medsnowball.core.Nodule` per entry of ``nodules`` (the equivalent
        diameter is recomputed from the volume).
    """
    out = []
    for n in doc.get("nodules", []):
        loc = n.get("location") or {}
        vol = float(n["volume_mm3"])
        mean_hu = n.get("mean_hu")
        out.append(
            Nodule(
                id=int(n["id"]),
                center_lps=tuple(float(v) for v in n["center_mm"]),  # type: ignore[arg-type]
                score=float(n["score"]),
                diameter_mm=float(n["diameter_mm"]),
                long_axis_mm=float(n["long_axis_mm"]),
                short_axis_mm=float(n["short_axis_mm"]),
                volume_mm3=vol,
                equivalent_diameter_mm=float((6.0 * vol / math.pi) ** (1.0 / 3.0)),
                type=NoduleType(n["type"]),
                solid_component_mm=float(n["solid_component_mm"]),
                mean_hu=float("nan") if mean_hu is None else float(mean_hu),
                side=Side(loc["side"]) if loc.get("side") else None,
                zone=Zone(loc["zone"]) if loc.get("zone") else None,
                juxtapleural=bool(n.get("juxtapleural", False)),
                calcified=bool(n.get("calcified", False)),
                lung_rads=n.get("lung_rads"),
            )
        )
    return out


def _labels(path: Path) -> tuple[NDArray[np.int32], tuple[float, float, float]]:
    from medsnowball.io import load_image

    vol = load_image(path)
    return np.asarray(vol.array).astype(np.int32), tuple(vol.spacing_zyx)  # type: ignore[return-value]


def _case(truth: TruthCase, pred: PredictionCase | None, notes: list[str]) -> EvalCase:
    name = pred.case_id if pred is not None and pred.case_id else truth.key
    if pred is None:
        return EvalCase(name, (), truth.nodules)
    nodules: list[Nodule] = []
    findings = pred.findings_path
    if findings is not None:
        try:
            nodules = nodules_from_findings(json.loads(findings.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            notes.append(f"{findings}: unreadable measured nodules ({exc}); segmentation skipped")
    pred_mask = pred.mask_path
    if not nodules or pred_mask is None or truth.mask_path is None:
        # Without masks, segmentation figures fall back to centres and volumes only.
        return EvalCase(name, pred.predictions, truth.nodules, nodules)
    pl, spacing = _labels(pred_mask)
    tl, _ = _labels(truth.mask_path)
    if pl.shape != tl.shape:
        notes.append(
            f"{name}: predicted mask {pl.shape} and truth mask {tl.shape} differ in shape; "
            "Dice skipped for this case"
        )
        return EvalCase(name, pred.predictions, truth.nodules, nodules)
    return EvalCase(name, pred.predictions, truth.nodules, nodules, pl, tl, spacing)


def build_eval_cases(pairing: Pairing) -> tuple[list[EvalCase], list[str]]:
    """Evaluation cases of every truth scan, with notes on what could not be used.

    Args:
        pairing: Output of :func:`~medsnowball.evaluation.io.pair_cases`.

    Returns:
        ``(cases, notes)``: one case per truth scan (no predictions = nothing detected).
    """
    notes: list[str] = []
    cases = [_case(t, p, notes) for t, p in pairing.pairs]
    return cases, notes


def froc_csv_text(result: FROCResult) -> str:
    """``fp_per_scan,sensitivity,threshold`` per curve point (threshold ``inf`` first)."""
    lines = ["fp_per_scan,sensitivity,threshold"]
    for f, s, t in zip(result.fps, result.sensitivity, result.thresholds, strict=True):
        lines.append(f"{f:.6g},{'' if not np.isfinite(s) else f'{s:.6g}'},{t:.6g}")
    return "\n".join(lines) + "\n"


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def metrics_document(
    report: EvaluationReport, *, inputs: Mapping[str, Any] | None = None, notes: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``metrics.json`` document.

    Keys: ``cpm``, ``cpm_ci``, ``operating_points`` (sensitivity and CI at each FROC
    operating point), ``n_scans``, ``n_nodules``, ``n_detected``, ``n_false_positives``,
    ``fp_rate`` / ``threshold`` / ``sensitivity`` (the operating point of the group
    figures), ``by_size`` / ``by_type`` / ``by_location`` (group summaries), ``nodules``
    (one row per relevant reference nodule, with Dice and volume error when masks
    exist), ``froc`` (the full curve), ``inputs`` and ``notes``.
    """
    fr = report.froc.to_dict()
    return _clean(
        {
            "cpm": fr["cpm"],
            "cpm_ci": fr["cpm_ci"],
            "confidence": fr["confidence"],
            "n_bootstrap": fr["n_bootstrap"],
            "operating_points": fr["operating_points"],
            "n_scans": fr["n_scans"],
            "n_nodules": fr["n_nodules"],
            "n_detected": fr["n_detected"],
            "n_false_positives": fr["n_false_positives"],
            "fp_rate": report.fp_rate,
            "threshold": report.threshold,
            "sensitivity": report.overall.sensitivity,
            "overall": report.overall.__dict__,
            "by_size": {k: g.__dict__ for k, g in report.groups.get("size", {}).items()},
            "by_type": {k: g.__dict__ for k, g in report.groups.get("type", {}).items()},
            "by_location": {k: g.__dict__ for k, g in report.groups.get("location", {}).items()},
            "seg_min_diameter_mm": report.seg_min_diameter_mm,
            "nodules": [n.__dict__ for n in report.nodules],
            "froc": fr["curve"],
            "inputs": dict(inputs or {}),
            "notes": list(notes),
        }
    )


def write_eval_outputs(
    report: EvaluationReport,
    out_dir: str | os.PathLike[str],
    *,
    inputs: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    plot: bool = True,
) -> dict[str, Path]:
    """Write ``froc.csv``, ``metrics.json`` and ``froc.png`` into ``out_dir`` (atomically).

    Returns:
        ``{"froc_csv": ..., "metrics": ..., "froc_png": ...}`` (no PNG when ``plot`` is off).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "froc_csv": atomic_write_text(out / FROC_CSV, froc_csv_text(report.froc)),
        "metrics": atomic_write_text(
            out / METRICS_JSON,
            json.dumps(metrics_document(report, inputs=inputs, notes=notes), indent=2) + "\n",
        ),
    }
    if plot:
        from medsnowball.evaluation.plots import plot_froc

        written["froc_png"] = plot_froc(report.froc, out / FROC_PNG)
    return written


__all__ = [
    "FROC_CSV",
    "FROC_PNG",
    "METRICS_JSON",
    "build_eval_cases",
    "froc_csv_text",
    "metrics_document",
    "nodules_from_findings",
    "write_eval_outputs",
]
