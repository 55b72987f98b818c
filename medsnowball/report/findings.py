"""The ``findings.json`` document: build it from a CaseResult, validate it, serialise it.

The format is documented in ``docs/findings.md`` and described by the JSON Schema
(Draft 2020-12) shipped as package data, ``medsnowball/report/findings.schema.json``.

Serialisation is deterministic: keys keep a fixed order (free-form maps such as
``timings_s`` are sorted), lengths are rounded to 0.01 mm, volumes to 0.01 mm3 / ml,
scores to 4 decimals, HU to 0.1 and seconds to 0.001, so the same result always gives a
byte-identical file.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from medsnowball.core.findings import Assessment, CaseResult, Nodule, NoduleType
from medsnowball.core.quality import SEVERITY_REVIEW, STATUS_NEEDS_REVIEW, STATUS_OK
from medsnowball.core.volume import ImageGeometry
from medsnowball.report.errors import InvalidFindingsError

FINDINGS_SCHEMA_VERSION = "1.0"
SCHEMA_RESOURCE = "findings.schema.json"

# Decimal places of each kind of number.
MM_DECIMALS = 2
SCORE_DECIMALS = 4
HU_DECIMALS = 1
ML_DECIMALS = 2
SECONDS_DECIMALS = 3


def _rounded(value: float, decimals: int) -> float:
    out = round(float(value), decimals)
    return out + 0.0  # turn -0.0 into 0.0


def _required(value: float, decimals: int, path: str) -> float:
    if value is None or not math.isfinite(float(value)):
        raise InvalidFindingsError(
            f"{path} is {value!r}; expected a finite number. The step that produced it "
            "returned an invalid measurement.",
            path=path,
        )
    return _rounded(value, decimals)


def _optional(value: float | None, decimals: int) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return _rounded(value, decimals)


def _enum_value(value: Any) -> Any:
    return None if value is None else getattr(value, "value", value)


def image_dict(geometry: ImageGeometry) -> dict[str, Any]:
    """The ``image`` block: shape, spacing (z, y, x) and origin (LPS x, y, z)."""
    return {
        "shape_zyx": [int(v) for v in geometry.shape_zyx],
        "spacing_zyx_mm": [_rounded(v, 6) for v in geometry.spacing_zyx],
        "origin_lps_mm": [_rounded(v, 4) for v in geometry.origin_lps],
    }


def nodule_dict(nodule: Nodule, index: int, assessment: Assessment | None = None) -> dict[str, Any]:
    """One entry of ``nodules``.

    Args:
        nodule: The nodule.
        index: Its position in the list (only used in error paths).
        assessment: Supplies the category when ``nodule.lung_rads`` is unset.

    Returns:
        The JSON-ready mapping.

    Raises:
        InvalidFindingsError: For a non-finite required measurement.
    """
    base = f"$.nodules[{index}]"
    category = nodule.lung_rads
    if category is None and assessment is not None:
        category = assessment.nodule_categories.get(nodule.id)
    return {
        "id": int(nodule.id),
        "center_mm": [
            _required(v, MM_DECIMALS, f"{base}.center_mm[{i}]")
            for i, v in enumerate(nodule.center_lps)
        ],
        "score": _required(nodule.score, SCORE_DECIMALS, f"{base}.score"),
        "diameter_mm": _required(nodule.diameter_mm, MM_DECIMALS, f"{base}.diameter_mm"),
        "long_axis_mm": _required(nodule.long_axis_mm, MM_DECIMALS, f"{base}.long_axis_mm"),
        "short_axis_mm": _required(nodule.short_axis_mm, MM_DECIMALS, f"{base}.short_axis_mm"),
        "volume_mm3": _required(nodule.volume_mm3, MM_DECIMALS, f"{base}.volume_mm3"),
        "type": NoduleType(nodule.type).value,
        "solid_component_mm": _required(
            nodule.solid_component_mm, MM_DECIMALS, f"{base}.solid_component_mm"
        ),
        "mean_hu": _optional(nodule.mean_hu, HU_DECIMALS),
        "location": {"side": _enum_value(nodule.side), "zone": _enum_value(nodule.zone)},
        "lung_rads": category,
        "juxtapleural": bool(nodule.juxtapleural),
        "calcified": bool(nodule.calcified),
    }


def assessment_dict(assessment: Assessment | None) -> dict[str, Any] | None:
    """The ``assessment`` block (``None`` when the case was not assessed)."""
    if assessment is None:
        return None
    return {
        "lung_rads": assessment.lung_rads,
        "lung_rads_version": assessment.lung_rads_version,
        "lung_rads_management": assessment.lung_rads_management,
        "fleischner": assessment.fleischner,
        "fleischner_version": assessment.fleischner_version,
        "most_suspicious_nodule": assessment.most_suspicious_nodule,
        "notes": [str(n) for n in assessment.notes],
    }


def quality_dict(result: CaseResult) -> dict[str, Any]:
    """The ``quality`` block: the case status and its quality flags, in pipeline order."""
    return {
        "status": result.status,
        "flags": [flag.to_dict() for flag in result.quality],
    }


def findings_dict(
    result: CaseResult,
    *,
    medsnowball_version: str | None = None,
    geometry: ImageGeometry | None = None,
    extra_warnings: Iterable[str] = (),
) -> dict[str, Any]:
    """Build the ``findings.json`` document of one case.

    Args:
        result: The case result (``nodules`` are those above the operating threshold).
        medsnowball_version: Version string to record; defaults to the installed one.
        geometry: Grid to describe when ``result.geometry`` is unset (e.g. the volume's).
        extra_warnings: Warnings to append to ``result.warnings`` (e.g. outputs skipped).

    Returns:
        A JSON-serialisable dict with the keys and order of the schema.

    Raises:
        InvalidFindingsError: For a non-finite required number.
    """
    if medsnowball_version is None:
        from medsnowball import __version__ as medsnowball_version
    geom = result.geometry if result.geometry is not None else geometry
    lungs = result.lungs_ml or {}
    timings = {
        str(k): _required(v, SECONDS_DECIMALS, f"$.timings_s.{k}")
        for k, v in sorted(result.timings_s.items())
    }
    return {
        "schema_version": FINDINGS_SCHEMA_VERSION,
        "case_id": result.case_id,
        "study_uid": result.study_uid,
        "series_uid": result.series_uid,
        "source": str(result.source),
        "pipeline": result.pipeline,
        "medsnowball_version": medsnowball_version,
        "status": result.status,
        "image": None if geom is None else image_dict(geom),
        "lungs": {
            "left_ml": _optional(lungs.get("left"), ML_DECIMALS),
            "right_ml": _optional(lungs.get("right"), ML_DECIMALS),
        },
        "nodules": [nodule_dict(n, i, result.assessment) for i, n in enumerate(result.nodules)],
        "assessment": assessment_dict(result.assessment),
        "quality": quality_dict(result),
        "warnings": [str(w) for w in (*result.warnings, *extra_warnings)],
        "timings_s": timings,
    }


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The findings JSON Schema (Draft 2020-12) shipped with the package."""
    text = resources.files("medsnowball.report").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema())


def _check_quality(document: Mapping[str, Any]) -> None:
    """The status agrees with the quality block and its flags (when the file has them)."""
    quality = document.get("quality")
    status = document.get("status")
    if quality is None:
        return
    if status is not None and status != quality["status"]:
        raise InvalidFindingsError(
            f"findings.json is invalid at $.quality.status: {quality['status']!r} differs "
            f"from the top-level status {status!r}.",
            path="$.quality.status",
        )
    review = any(f["severity"] == SEVERITY_REVIEW for f in quality["flags"])
    expected = STATUS_NEEDS_REVIEW if review else STATUS_OK
    if quality["status"] != expected:
        raise InvalidFindingsError(
            f"findings.json is invalid at $.quality.status: {quality['status']!r} but the "
            f"flags imply {expected!r} (a flag of severity 'review' means needs_review).",
            path="$.quality.status",
        )


def _check_semantics(document: Mapping[str, Any]) -> None:
    """Rules JSON Schema cannot express: unique nodule ids, a valid most-suspicious id,
    a status that agrees with the quality flags."""
    seen: set[int] = set()
    nodules: Sequence[Mapping[str, Any]] = document["nodules"]
    for i, nodule in enumerate(nodules):
        if nodule["id"] in seen:
            raise InvalidFindingsError(
                f"findings.json is invalid at $.nodules[{i}].id: nodule id {nodule['id']} "
                "appears twice; expected unique ids.",
                path=f"$.nodules[{i}].id",
            )
        seen.add(nodule["id"])
    assessment = document.get("assessment")
    if assessment is not None:
        ref = assessment["most_suspicious_nodule"]
        if ref is not None and ref not in seen:
            raise InvalidFindingsError(
                "findings.json is invalid at $.assessment.most_suspicious_nodule: "
                f"{ref} is not the id of a listed nodule (ids: {sorted(seen)}).",
                path="$.assessment.most_suspicious_nodule",
            )
    _check_quality(document)


def validate_findings(document: Mapping[str, Any]) -> None:
    """Check a findings document against the schema and the cross-field rules.

    Args:
        document: A parsed ``findings.json`` (or the output of :func:`findings_dict`).

    Raises:
        InvalidFindingsError: Naming the JSON path of the first bad field
            (``exc.path``, e.g. ``"$.nodules[0].score"``) and what was expected.
    """
    import jsonschema.exceptions

    errors = list(_validator().iter_errors(document))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise InvalidFindingsError(
            f"findings.json does not match schema {FINDINGS_SCHEMA_VERSION} at "
            f"{best.json_path}: {best.message}{more}.",
            path=best.json_path,
        )
    _check_semantics(document)


# A JSON array of numbers as json.dumps(indent=2) lays it out. The raw newlines make it
# structural: inside JSON strings newlines are always escaped.
_NUMBER_ARRAY = re.compile(r"\[\n\s+(-?[0-9][-+0-9.eE]*(?:,\n\s+-?[0-9][-+0-9.eE]*)*)\n\s*\]")


def dumps_findings(document: Mapping[str, Any]) -> str:
    """Serialise a findings document: 2-space indent, UTF-8, trailing newline, no NaN.

    Arrays of numbers (coordinates, shapes) are kept on one line.
    """
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    text = _NUMBER_ARRAY.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    return text + "\n"


__all__ = [
    "FINDINGS_SCHEMA_VERSION",
    "assessment_dict",
    "dumps_findings",
    "findings_dict",
    "image_dict",
    "load_schema",
    "nodule_dict",
    "quality_dict",
    "validate_findings",
]
