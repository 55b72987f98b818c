"""Quality flags in the reports: findings.json block and schema, the HTML/PDF warning box,
nodules.csv unchanged, the Lung-RADS 0 of an incomplete exam."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import matplotlib
import pytest
from report_factories import make_case, make_nodule
from test_report_html_pdf import pdf_text

from medsnowball.core import CaseResult, CTVolume
from medsnowball.core.quality import QualityFlag, status_for
from medsnowball.report import InvalidFindingsError, findings_dict, validate_findings
from medsnowball.report.guidelines import assess
from medsnowball.report.tables import NODULE_CSV_COLUMNS
from medsnowball.report.writer import write_case_outputs

REVIEW = QualityFlag(
    "lung_volume_implausible", "Implausible lung volume (right lung 120 ml is below 300 ml)."
)
INFO = QualityFlag("input_reoriented", "The image was reoriented to the axial grid.", "info")


def _flagged(*flags: QualityFlag) -> tuple[CaseResult, CTVolume]:
    result, volume = make_case()
    return dataclasses.replace(result, quality=flags, status=status_for(flags)), volume


# findings.json ---------------------------------------------------------------------------
def test_findings_without_flags_say_ok_and_validate() -> None:
    result, _ = make_case()
    doc = findings_dict(result, medsnowball_version="1")
    validate_findings(doc)
    assert doc["status"] == "ok"
    assert doc["quality"] == {"status": "ok", "flags": []}


def test_findings_with_flags_list_them_in_order_and_validate() -> None:
    result, _ = _flagged(INFO, REVIEW)
    doc = findings_dict(result, medsnowball_version="1")
    validate_findings(doc)
    assert doc["status"] == "needs_review"
    assert doc["quality"] == {
        "status": "needs_review",
        "flags": [
            {"code": "input_reoriented", "severity": "info", "message": INFO.message},
            {"code": "lung_volume_implausible", "severity": "review", "message": REVIEW.message},
        ],
    }
    info_only = findings_dict(_flagged(INFO)[0], medsnowball_version="1")
    validate_findings(info_only)
    assert info_only["status"] == "ok"


def test_old_findings_without_quality_still_validate() -> None:
    doc = findings_dict(make_case()[0], medsnowball_version="1")
    del doc["status"], doc["quality"]
    validate_findings(doc)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: (d.update(status="ok"), d["quality"].update(status="ok")),
            "flags imply 'needs_review'",
        ),
        (lambda d: d.update(status="ok"), "differs from the top-level status"),
        (lambda d: d["quality"]["flags"][0].update(severity="fatal"), "$.quality.flags[0]"),
        (lambda d: d["quality"]["flags"][0].pop("message"), "$.quality.flags[0]"),
        (lambda d: d.update(status="failed"), "$.status"),
    ],
    ids=["status_vs_flags", "status_vs_quality", "severity", "message_missing", "failed"],
)
def test_inconsistent_or_malformed_quality_is_rejected(edit: object, message: str) -> None:
    doc = copy.deepcopy(findings_dict(_flagged(REVIEW)[0], medsnowball_version="1"))
    edit(doc)  # type: ignore[operator]
    with pytest.raises(InvalidFindingsError) as info:
        validate_findings(doc)
    assert message in str(info.value)


# HTML and PDF ----------------------------------------------------------------------------
def test_html_shows_the_quality_box_only_when_flagged(tmp_path: Path) -> None:
    result, volume = _flagged(REVIEW, INFO)
    html = write_case_outputs(result, volume, tmp_path / "f", formats=("html",))["html"]
    text = html.read_text(encoding="utf-8")
    assert text.count('<section id="quality" class="quality" role="alert">') == 1
    assert "Needs review: this result may be incomplete or unreliable" in text
    assert "right lung 120 ml is below 300 ml" in text
    assert "The image was reoriented to the axial grid." in text
    assert text.index('id="quality"') < text.index('id="case"'), "the box comes first"

    clean, volume = make_case()
    plain = write_case_outputs(clean, volume, tmp_path / "c", formats=("html",))["html"]
    plain_text = plain.read_text(encoding="utf-8")
    assert 'id="quality"' not in plain_text
    assert "Needs review" not in plain_text


def test_html_info_flags_only_are_quality_notes(tmp_path: Path) -> None:
    result, volume = _flagged(INFO)
    text = write_case_outputs(result, volume, tmp_path, formats=("html",))["html"].read_text()
    assert "Quality notes" in text
    assert "Needs review" not in text


def test_pdf_title_page_shows_the_flags_only_when_flagged(tmp_path: Path) -> None:
    result, volume = _flagged(REVIEW)
    clean, _ = make_case()
    with matplotlib.rc_context({"pdf.compression": 0}):
        flagged = write_case_outputs(result, volume, tmp_path / "f", formats=("pdf",))["pdf"]
        plain = write_case_outputs(clean, volume, tmp_path / "c", formats=("pdf",))["pdf"]
    text = pdf_text(flagged.read_bytes())
    assert "Needs review: this result may be incomplete or unreliable" in text
    assert "[lung_volume_implausible]" in text
    assert "Needs review" not in pdf_text(plain.read_bytes())


def test_nodules_csv_is_unchanged_by_flags(tmp_path: Path) -> None:
    result, volume = _flagged(REVIEW)
    flagged = write_case_outputs(result, volume, tmp_path / "f", formats=("csv",))["csv"]
    clean, _ = make_case()
    plain = write_case_outputs(clean, volume, tmp_path / "c", formats=("csv",))["csv"]
    assert flagged.read_bytes() == plain.read_bytes()
    assert flagged.read_text().splitlines()[0].split(",") == list(NODULE_CSV_COLUMNS)


# Lung-RADS 0 -----------------------------------------------------------------------------
def test_incomplete_exam_is_lung_rads_0_and_keeps_nodule_categories() -> None:
    nodules = [make_nodule(9.0, id=1), make_nodule(4.0, id=2)]
    a, categorized = assess(nodules, incomplete_reason="Lungs cut at the last slice.")
    assert a.lung_rads == "0"
    assert a.lung_rads_management.startswith("Additional lung cancer screening CT images")
    assert [n.lung_rads for n in categorized] == ["4A", "2"]
    assert a.most_suspicious_nodule == 1
    assert a.fleischner.endswith("Part or all of the lungs could not be evaluated.")
    assert any("highest nodule category 4A" in n and "last slice" in n for n in a.notes)
    complete, _ = assess(nodules)
    assert complete.lung_rads == "4A"
    assert "could not be evaluated" not in complete.fleischner
