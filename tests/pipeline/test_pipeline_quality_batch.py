"""Batch bookkeeping of the needs_review status: summary.csv, status.json, resume, exit
code, evaluation of needs_review cases, old findings.json without a quality block."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from pipeline_fake_steps import FAKE_PIPELINE

from medsnowball.evaluation.io import read_run_predictions
from medsnowball.pipeline import SUMMARY_COLUMNS, Pipeline, run_batch
from medsnowball.pipeline.outputs import (
    CaseOutcome,
    csv_safe,
    read_outcome,
    write_summary_csv,
)
from medsnowball.pipeline.quality import EXIT_NEEDS_REVIEW


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def _flagging(*cases: str) -> Pipeline:
    data: dict[str, Any] = json.loads(json.dumps(FAKE_PIPELINE))
    data["steps"].insert(-1, {"step": "review_flag", "config": {"cases": list(cases)}})
    return Pipeline.from_dict(data, origin="fake_flagging")


def _ok_cases(input_dir: Path) -> list[Any]:
    from medsnowball.io import find_cases

    return [c for c in find_cases([input_dir], keep_names=True).cases if c.case_id != "gamma"]


def test_flagged_case_needs_review_in_summary_and_status(input_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_batch(_ok_cases(input_dir), out, pipeline=_flagging("beta"))

    assert (summary.n_ok, summary.n_needs_review, summary.n_failed) == (1, 1, 0)
    assert summary.exit_code == EXIT_NEEDS_REVIEW == 3
    assert list(SUMMARY_COLUMNS)[-1] == "warnings"
    with open(out / "summary.csv", newline="") as fh:
        assert next(csv.reader(fh)) == list(SUMMARY_COLUMNS)
    rows = _rows(out / "summary.csv")
    assert rows["beta"]["status"] == "needs_review"
    assert rows["beta"]["warnings"] == "lungs_span_too_short"
    assert rows["alpha"]["status"] == "ok"
    assert rows["alpha"]["warnings"] == ""
    status = json.loads((out / "beta" / "status.json").read_text())
    assert status["status"] == "needs_review"
    assert status["flags"] == ["lungs_span_too_short"]
    findings = json.loads((out / "beta" / "findings.json").read_text())
    assert findings["quality"]["flags"][0]["code"] == "lungs_span_too_short"
    with open(out / "luna16_candidates.csv", newline="") as fh:
        uids = {r["seriesuid"] for r in csv.DictReader(fh)}
    assert uids == {"alpha", "beta"}, "candidates of needs_review cases are kept"


def test_failed_wins_over_needs_review_and_all_ok_exits_0(input_dir: Path, tmp_path: Path) -> None:
    mixed = run_batch([input_dir], tmp_path / "m", pipeline=_flagging("alpha"), keep_names=True)
    assert (mixed.n_ok, mixed.n_needs_review, mixed.n_failed) == (1, 1, 1)
    assert mixed.exit_code == 1
    clean = run_batch(_ok_cases(input_dir), tmp_path / "c", pipeline=_flagging())
    assert (clean.n_ok, clean.n_needs_review, clean.exit_code) == (2, 0, 0)


def test_resume_keeps_needs_review_cases(input_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pipe = _flagging("beta")
    run_batch(_ok_cases(input_dir), out, pipeline=pipe)
    before = (out / "beta" / "findings.json").stat().st_mtime_ns
    second = run_batch(_ok_cases(input_dir), out, pipeline=pipe, resume=True)
    assert second.n_reused == 2
    assert (out / "beta" / "findings.json").stat().st_mtime_ns == before
    assert {o.case_id: o.status for o in second.outcomes} == {
        "alpha": "ok",
        "beta": "needs_review",
    }
    assert second.exit_code == EXIT_NEEDS_REVIEW
    assert _rows(out / "summary.csv")["beta"]["warnings"] == "lungs_span_too_short"


def test_eval_reads_needs_review_cases(input_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_batch(_ok_cases(input_dir), out, pipeline=_flagging("alpha", "beta"))
    cases = {p.case_id: p for p in read_run_predictions(out) if p.case_id}
    assert set(cases) == {"alpha", "beta"}
    assert len(cases["alpha"].predictions) == 2


def test_read_outcome_of_old_and_new_findings(tmp_path: Path) -> None:
    old = {"case_id": "c", "nodules": [{}], "assessment": {"lung_rads": "2"}, "timings_s": {}}
    (tmp_path / "findings.json").write_text(json.dumps(old))
    outcome = read_outcome(tmp_path, "c", "src", "uid")
    assert outcome is not None
    assert (outcome.status, outcome.flags, outcome.n_nodules) == ("ok", (), 1)

    flags = [
        {"code": "lungs_touch_fov_edge", "severity": "review", "message": "right"},
        {"code": "lungs_touch_fov_edge", "severity": "review", "message": "left"},
        {"code": "input_reoriented", "severity": "info", "message": "m"},
    ]
    new = {**old, "status": "needs_review", "quality": {"status": "needs_review", "flags": flags}}
    (tmp_path / "findings.json").write_text(json.dumps(new))
    outcome = read_outcome(tmp_path, "c", "src", "uid")
    assert outcome is not None
    assert outcome.status == "needs_review"
    assert outcome.flags == ("lungs_touch_fov_edge", "input_reoriented")


@pytest.mark.parametrize(
    ("text", "safe"),
    [("=cmd", "'=cmd"), ("+1", "'+1"), ("-x", "'-x"), ("@a", "'@a"), ("ok_code", "ok_code"),
     ("", "")],
)  # fmt: skip
def test_csv_safe_neutralises_formula_prefixes(text: str, safe: str) -> None:
    assert csv_safe(text) == safe


def test_summary_warnings_column_joins_codes(tmp_path: Path) -> None:
    outcome = CaseOutcome("a", "s", "u", "needs_review", flags=("x_y", "z"), n_nodules=0)
    write_summary_csv(tmp_path / "summary.csv", [outcome])
    row = _rows(tmp_path / "summary.csv")["a"]
    assert row["warnings"] == "x_y;z"
    assert row["status"] == "needs_review"
    assert outcome.ok
    assert outcome.needs_review
