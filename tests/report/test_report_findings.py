"""findings.json: content, schema, validation errors naming the bad field, determinism."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import jsonschema
import numpy as np
import pytest
from report_factories import DEFAULT_SPHERES, make_case

from medsnowball.core import CaseResult, CTVolume
from medsnowball.report import (
    FINDINGS_SCHEMA_VERSION,
    InvalidFindingsError,
    dumps_findings,
    findings_dict,
    load_schema,
    validate_findings,
)

ISSUE_TOP_LEVEL_KEYS = [
    "schema_version",
    "case_id",
    "study_uid",
    "series_uid",
    "source",
    "pipeline",
    "medsnowball_version",
    "status",
    "image",
    "lungs",
    "nodules",
    "assessment",
    "quality",
    "warnings",
    "timings_s",
]
ISSUE_NODULE_KEYS = {
    "id",
    "center_mm",
    "score",
    "diameter_mm",
    "long_axis_mm",
    "short_axis_mm",
    "volume_mm3",
    "type",
    "solid_component_mm",
    "mean_hu",
    "location",
    "lung_rads",
}


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == FINDINGS_SCHEMA_VERSION


def test_document_has_the_issue_shape(phantom_case: tuple[CaseResult, CTVolume]) -> None:
    result, volume = phantom_case
    doc = findings_dict(result, medsnowball_version="9.9.9")
    validate_findings(doc)
    assert list(doc) == ISSUE_TOP_LEVEL_KEYS
    assert doc["medsnowball_version"] == "9.9.9"
    assert doc["image"] == {
        "shape_zyx": [40, 96, 96],
        "spacing_zyx_mm": [2.5, 0.8, 0.8],
        "origin_lps_mm": [-38.0, -40.0, -150.0],
    }
    assert set(doc["lungs"]) == {"left_ml", "right_ml"}
    assert doc["lungs"]["right_ml"] == pytest.approx(result.lungs_ml["right"], abs=0.01)
    assert len(doc["nodules"]) == 2
    for entry in doc["nodules"]:
        assert set(entry) >= ISSUE_NODULE_KEYS
        assert set(entry["location"]) == {"side", "zone"}
    first = doc["nodules"][0]
    # centre is world LPS [x, y, z] of the sphere centre index (z, y, x) = (20, 48, 28)
    expected = volume.geometry.index_to_world(DEFAULT_SPHERES[0].center_zyx)
    assert first["center_mm"] == pytest.approx(list(expected), abs=0.005)
    assert first["center_mm"][0] < 0  # right lung: smaller LPS x
    assert first["type"] == "solid"
    assert first["lung_rads"] == "4A"
    assert first["location"] == {"side": "right", "zone": "middle"}
    assert doc["nodules"][1]["type"] == "ground_glass"
    assessment = doc["assessment"]
    assert assessment["lung_rads"] == "4A"
    assert assessment["most_suspicious_nodule"] == 1
    assert assessment["lung_rads_version"] == "Lung-RADS v2022"
    assert assessment["fleischner_version"] == "Fleischner Society 2017"
    assert list(doc["timings_s"]) == ["detect", "load"]  # sorted


def test_numbers_are_rounded(phantom_case: tuple[CaseResult, CTVolume]) -> None:
    result, _ = phantom_case
    nodule = dataclasses.replace(
        result.nodules[0],
        center_lps=(1.23456, -0.0000001, 2.0),
        score=0.123456,
        volume_mm3=123.4567,
        mean_hu=-12.345,
    )
    doc = findings_dict(dataclasses.replace(result, nodules=(nodule,), timings_s={"x": 0.1234567}))
    entry = doc["nodules"][0]
    assert entry["center_mm"] == [1.23, 0.0, 2.0]
    assert math.copysign(1.0, entry["center_mm"][1]) == 1.0  # no "-0.0"
    assert entry["score"] == 0.1235
    assert entry["volume_mm3"] == 123.46
    assert entry["mean_hu"] == -12.3
    assert doc["timings_s"] == {"x": 0.123}


def test_serialisation_is_deterministic_and_compact(
    phantom_case: tuple[CaseResult, CTVolume],
) -> None:
    result, _ = phantom_case
    a = dumps_findings(findings_dict(result, medsnowball_version="1"))
    b = dumps_findings(findings_dict(result, medsnowball_version="1"))
    assert a == b
    assert a.endswith("}\n")
    assert '"shape_zyx": [40, 96, 96]' in a  # number arrays stay on one line
    assert json.loads(a) == findings_dict(result, medsnowball_version="1")


def test_arrays_inside_strings_are_left_alone(phantom_case: tuple[CaseResult, CTVolume]) -> None:
    result, _ = phantom_case
    odd = dataclasses.replace(result, warnings=("shape [\n  1,\n  2\n] and [ 3 ]",))
    text = dumps_findings(findings_dict(odd))
    assert json.loads(text)["warnings"] == ["shape [\n  1,\n  2\n] and [ 3 ]"]


def test_unknown_mean_hu_becomes_null(phantom_case: tuple[CaseResult, CTVolume]) -> None:
    result, _ = phantom_case
    nodule = dataclasses.replace(result.nodules[0], mean_hu=math.nan)
    doc = findings_dict(dataclasses.replace(result, nodules=(nodule,)))
    assert doc["nodules"][0]["mean_hu"] is None
    validate_findings(doc)
    assert "NaN" not in dumps_findings(doc)


def test_non_finite_required_number_names_its_path(
    phantom_case: tuple[CaseResult, CTVolume],
) -> None:
    result, _ = phantom_case
    bad = dataclasses.replace(result.nodules[1], score=math.inf)
    with pytest.raises(InvalidFindingsError) as info:
        findings_dict(dataclasses.replace(result, nodules=(result.nodules[0], bad)))
    assert info.value.path == "$.nodules[1].score"


def test_unassessed_case_without_geometry_is_valid() -> None:
    result = CaseResult(case_id="c1", source="x.nii.gz", series_uid="x")
    doc = findings_dict(result)
    assert doc["image"] is None
    assert doc["assessment"] is None
    assert doc["lungs"] == {"left_ml": None, "right_ml": None}
    validate_findings(doc)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


BROKEN = [
    (_set(["nodules", 0, "score"], 1.5), "$.nodules[0].score"),
    (_set(["nodules", 1, "center_mm"], [1.0, 2.0]), "$.nodules[1].center_mm"),
    (_set(["nodules", 1, "type"], "nodular"), "$.nodules[1].type"),
    (_set(["nodules", 0, "lung_rads"], "5"), "$.nodules[0].lung_rads"),
    (_set(["nodules", 0, "location", "side"], "middle"), "$.nodules[0].location.side"),
    (_set(["nodules", 0, "volume_mm3"], -3.0), "$.nodules[0].volume_mm3"),
    (_delete(["nodules", 0, "diameter_mm"]), "$.nodules[0]"),
    (_set(["image", "shape_zyx", 2], 0), "$.image.shape_zyx[2]"),
    (_set(["image", "spacing_zyx_mm"], [1, 1, 0]), "$.image.spacing_zyx_mm[2]"),
    (_set(["assessment", "lung_rads"], "4C"), "$.assessment.lung_rads"),
    (_set(["case_id"], "../escape"), "$.case_id"),
    (_set(["schema_version"], "0.9"), "$.schema_version"),
    (_set(["timings_s", "load"], -1), "$.timings_s.load"),
    (_set(["patient_name"], "Doe^John"), "$"),
    (_set(["nodules", 1, "id"], 1), "$.nodules[1].id"),
    (_set(["assessment", "most_suspicious_nodule"], 17), "$.assessment.most_suspicious_nodule"),
]


@pytest.mark.parametrize(("breaker", "path"), BROKEN)
def test_broken_documents_fail_naming_the_field(
    phantom_case: tuple[CaseResult, CTVolume],
    breaker: Callable[[dict[str, Any]], None],
    path: str,
) -> None:
    doc = copy.deepcopy(findings_dict(phantom_case[0]))
    validate_findings(doc)
    breaker(doc)
    with pytest.raises(InvalidFindingsError) as info:
        validate_findings(doc)
    assert info.value.path == path
    assert path in str(info.value)
    assert isinstance(info.value, ValueError)


def test_validation_reads_a_written_file_round_trip(
    phantom_case: tuple[CaseResult, CTVolume], tmp_path: Any
) -> None:
    path = tmp_path / "findings.json"
    path.write_text(dumps_findings(findings_dict(phantom_case[0])), encoding="utf-8")
    validate_findings(json.loads(path.read_text(encoding="utf-8")))


def test_zero_nodule_case() -> None:
    result, _ = make_case(())
    doc = findings_dict(result)
    validate_findings(doc)
    assert doc["nodules"] == []
    assert doc["assessment"]["lung_rads"] == "1"
    assert doc["assessment"]["most_suspicious_nodule"] is None
    assert np.isclose(doc["lungs"]["left_ml"], result.lungs_ml["left"], atol=0.01)
