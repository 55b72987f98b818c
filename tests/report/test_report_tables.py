"""nodules.csv: documented columns, one row per nodule, same numbers as findings.json."""

from __future__ import annotations

import csv
import dataclasses
import io
import math

from report_factories import make_case

from medsnowball.core import CaseResult, CTVolume
from medsnowball.report import NODULE_CSV_COLUMNS, findings_dict, nodules_csv_text


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_columns_are_the_documented_ones() -> None:
    assert NODULE_CSV_COLUMNS == (
        "case_id",
        "nodule_id",
        "center_x_mm",
        "center_y_mm",
        "center_z_mm",
        "score",
        "diameter_mm",
        "long_axis_mm",
        "short_axis_mm",
        "volume_mm3",
        "equivalent_diameter_mm",
        "type",
        "solid_component_mm",
        "mean_hu",
        "side",
        "zone",
        "juxtapleural",
        "calcified",
        "lung_rads",
    )


def test_rows_match_findings_json(phantom_case: tuple[CaseResult, CTVolume]) -> None:
    result, _ = phantom_case
    text = nodules_csv_text(result)
    assert text.splitlines()[0] == ",".join(NODULE_CSV_COLUMNS)
    rows = _rows(text)
    doc = findings_dict(result)
    assert len(rows) == len(doc["nodules"]) == 2
    for row, entry in zip(rows, doc["nodules"], strict=True):
        assert row["case_id"] == "case_0001"
        assert int(row["nodule_id"]) == entry["id"]
        xyz = [float(row[f"center_{a}_mm"]) for a in "xyz"]
        assert xyz == entry["center_mm"]
        assert float(row["diameter_mm"]) == entry["diameter_mm"]
        assert float(row["score"]) == entry["score"]
        assert row["type"] == entry["type"]
        assert row["lung_rads"] == entry["lung_rads"]
        assert row["side"] == entry["location"]["side"]
        assert row["juxtapleural"] in ("true", "false")
    assert rows[0]["lung_rads"] == "4A"
    assert rows[1]["type"] == "ground_glass"
    assert "\r" not in text


def test_unknown_values_are_empty_cells(phantom_case: tuple[CaseResult, CTVolume]) -> None:
    result, _ = phantom_case
    nodule = dataclasses.replace(result.nodules[0], side=None, zone=None, mean_hu=math.nan)
    rows = _rows(nodules_csv_text(dataclasses.replace(result, nodules=(nodule,))))
    assert rows[0]["side"] == ""
    assert rows[0]["zone"] == ""
    assert rows[0]["mean_hu"] == ""


def test_case_without_nodules_has_only_the_header() -> None:
    result, _ = make_case(())
    assert nodules_csv_text(result) == ",".join(NODULE_CSV_COLUMNS) + "\n"


def test_case_id_from_the_inputs_cannot_become_a_formula() -> None:
    result, _ = make_case()
    assert result.nodules, "the phantom has nodules: rows to check"
    for case_id, cell in [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("ct_0123abcd4567", "ct_0123abcd4567"),
    ]:
        rows = _rows(nodules_csv_text(dataclasses.replace(result, case_id=case_id)))
        assert {r["case_id"] for r in rows} == {cell}
    rows = _rows(nodules_csv_text(result))
    coords = [float(r[c]) for r in rows for c in ("center_x_mm", "center_y_mm", "center_z_mm")]
    assert min(coords) < 0, "negative coordinates stay numbers (no quote prefix)"
