"""End to end: ``medsnowball run`` on a messy folder, resume after a kill, workers, errors."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import PATIENT_ID, PATIENT_NAME, copy_tree
from typer.testing import CliRunner

from medsnowball.cli import app
from medsnowball.pipeline import Pipeline

SUMMARY_HEADER = [
    "case_id",
    "source",
    "series_uid",
    "status",
    "error",
    "n_nodules",
    "lung_rads",
    "seconds",
    "warnings",
]
#: The messy folder's phantoms are small (lungs ~100 ml each) at 1.6 mm pixels.
PHANTOM_FLAGS = "lung_volume_implausible;voxel_size_out_of_range"
LUNA_HEADER = ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
OK_SERIES = {"1.2.826.0.1.3680043.8.498.1001.1", "1.2.826.0.1.3680043.8.498.2002.1"}
BAD_SERIES = "1.2.826.0.1.3680043.8.498.3003.1"
FORMATS = "json,csv,nifti,seg,sr"

runner = CliRunner()


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [dict(zip(header, r, strict=True)) for r in reader]


def _findings(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/findings.json"))}


@pytest.fixture(scope="module")
def messy_run(
    messy_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tree_digest: Callable[[Path], dict[str, str]],
) -> tuple[Path, int, str, dict[str, str]]:
    """One CLI run over the messy folder: (out, exit code, output, input digest before)."""
    before = tree_digest(messy_dir)
    out = tmp_path_factory.mktemp("run") / "out"
    result = runner.invoke(app, ["run", str(messy_dir), "--out", str(out), "--formats", FORMATS])
    return out, result.exit_code, result.output, before


def test_two_ok_one_failed_exit_1(messy_run: tuple[Path, int, str, dict[str, str]]) -> None:
    out, code, output, _ = messy_run
    assert code == 1, output
    header, rows = _rows(out / "summary.csv")
    assert header == SUMMARY_HEADER
    by_series = {r["series_uid"]: r for r in rows}
    assert set(by_series) == OK_SERIES | {BAD_SERIES}, "localizer and junk are not cases"
    assert [r["case_id"] for r in rows] == sorted(r["case_id"] for r in rows)
    for uid in OK_SERIES:
        row = by_series[uid]
        assert row["status"] == "needs_review"
        assert row["warnings"] == PHANTOM_FLAGS
        assert row["error"] == ""
        assert int(row["n_nodules"]) >= 1
        assert row["lung_rads"] in {"1", "2", "3", "4A", "4B", "4X"}
        assert float(row["seconds"]) > 0
    bad = by_series[BAD_SERIES]
    assert bad["status"] == "failed"
    assert bad["n_nodules"] == ""
    assert bad["lung_rads"] == ""
    assert bad["warnings"] == ""
    assert bad["error"].startswith("CorruptFileError in step 'load': ")
    assert "truncated" in bad["error"]
    assert "Traceback" in (out / bad["case_id"] / "error.txt").read_text()
    assert "0 ok, 2 need review, 1 failed" in output
    assert bad["case_id"] in output
    assert "needs review: lung_volume_implausible, voxel_size_out_of_range" in output


def test_inputs_are_not_modified(
    messy_dir: Path,
    messy_run: tuple[Path, int, str, dict[str, str]],
    tree_digest: Callable[[Path], dict[str, str]],
) -> None:
    assert tree_digest(messy_dir) == messy_run[3]


def test_findings_validate_and_match_luna16_csv(
    messy_run: tuple[Path, int, str, dict[str, str]],
) -> None:
    from medsnowball.report import validate_findings

    out = messy_run[0]
    findings = _findings(out)
    assert len(findings) == 2
    header, luna = _rows(out / "luna16_candidates.csv")
    assert header == LUNA_HEADER
    assert {r["seriesuid"] for r in luna} == OK_SERIES
    for case_id, doc in findings.items():
        validate_findings(doc)
        assert doc["case_id"] == case_id
        assert doc["series_uid"] in OK_SERIES
        assert doc["pipeline"] == "lung_nodule_screening"
        threshold = Pipeline.from_yaml("lung_nodule_screening").threshold
        # the case's candidates.csv is exactly its block of the batch CSV
        _, own = _rows(out / case_id / "candidates.csv")
        assert own == [r for r in luna if r["seriesuid"] == doc["series_uid"]]
        assert len(own) >= len(doc["nodules"])
        for nodule in doc["nodules"]:
            # each reported nodule comes from a candidate with the same score, nearby
            near = [
                r
                for r in own
                if math.isclose(float(r["probability"]), nodule["score"], abs_tol=5e-5)
                and math.dist(
                    [float(r[k]) for k in ("coordX", "coordY", "coordZ")], nodule["center_mm"]
                )
                <= max(nodule["diameter_mm"], 5.0)
            ]
            assert near, f"no luna16 row for nodule {nodule['id']} of {case_id}"
            assert nodule["score"] >= threshold  # the pipeline's operating threshold
    scores = [float(r["probability"]) for r in luna]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_no_patient_identifiers_outside_reports(
    messy_run: tuple[Path, int, str, dict[str, str]],
) -> None:
    out = messy_run[0]
    for path in out.rglob("*"):
        assert "Doe" not in path.name
        assert PATIENT_ID not in path.name
        if path.is_file() and path.suffix in {".csv", ".json", ".log", ".txt"}:
            text = path.read_text(errors="replace")
            assert "Doe^Jane" not in text, path
            assert PATIENT_ID not in text, path
    assert PATIENT_NAME not in messy_run[2]


def test_dicom_outputs_reference_the_source_series(
    messy_run: tuple[Path, int, str, dict[str, str]],
) -> None:
    import pydicom

    out = messy_run[0]
    for case_id, doc in _findings(out).items():
        for name in ("seg.dcm", "sr.dcm"):
            path = out / case_id / name
            if not path.exists():
                pytest.fail(f"{path} missing although --formats has seg,sr for a DICOM input")
            ds = pydicom.dcmread(path)
            refs = {
                item.SeriesInstanceUID for item in getattr(ds, "ReferencedSeriesSequence", [])
            } | {
                s.SeriesInstanceUID
                for ev in getattr(ds, "CurrentRequestedProcedureEvidenceSequence", [])
                for s in ev.ReferencedSeriesSequence
            }
            assert doc["series_uid"] in refs, f"{name} of {case_id} does not reference its CT"


def test_two_workers_give_the_same_findings(
    messy_dir: Path,
    messy_run: tuple[Path, int, str, dict[str, str]],
    tmp_path: Path,
) -> None:
    out2 = tmp_path / "out2"
    result = runner.invoke(
        app, ["run", str(messy_dir), "-o", str(out2), "--formats", "json", "--workers", "2"]
    )
    assert result.exit_code == 1, result.output

    def strip(doc: dict) -> dict:
        return {k: v for k, v in doc.items() if k != "timings_s"}

    one, two = _findings(messy_run[0]), _findings(out2)
    assert {k: strip(v) for k, v in one.items()} == {k: strip(v) for k, v in two.items()}
    assert (messy_run[0] / "luna16_candidates.csv").read_bytes() == (
        out2 / "luna16_candidates.csv"
    ).read_bytes()
    drop = ("seconds",)
    rows1 = [
        {k: v for k, v in r.items() if k not in drop}
        for r in _rows(messy_run[0] / "summary.csv")[1]
    ]
    rows2 = [{k: v for k, v in r.items() if k not in drop} for r in _rows(out2 / "summary.csv")[1]]
    assert rows1 == rows2


def test_resume_after_kill_finishes_and_keeps_finished_cases(
    messy_dir: Path,
    tmp_path: Path,
) -> None:
    inputs = copy_tree(messy_dir, tmp_path / "in")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "medsnowball.cli",
        "run",
        str(inputs),
        "-o",
        str(out),
        "--formats",
        "json,csv",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    try:
        while not list(out.glob("*/findings.json")):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"first case never finished (exit {proc.returncode})")
            time.sleep(0.05)
    finally:
        finished = proc.poll() is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if finished:
        pytest.skip("the whole batch finished before it could be killed")
    done_before = {p.parent.name for p in out.glob("*/findings.json")}
    mtimes = {c: {p.name: p.stat().st_mtime_ns for p in (out / c).iterdir()} for c in done_before}
    result = runner.invoke(
        app, ["run", str(inputs), "-o", str(out), "--formats", "json,csv", "--resume"]
    )
    assert result.exit_code == 1, result.output
    _, rows = _rows(out / "summary.csv")
    assert sorted(r["status"] for r in rows) == ["failed", "needs_review", "needs_review"]
    assert f"{len(done_before)} reused" in result.output
    for case_id in done_before:
        now = {p.name: p.stat().st_mtime_ns for p in (out / case_id).iterdir()}
        assert now == mtimes[case_id], f"finished case {case_id} was redone"
    assert not list(out.glob("*/.tmp-*"))
    assert len(_findings(out)) == 2


def test_skipped_inputs_are_listed_and_counted(
    messy_run: tuple[Path, int, str, dict[str, str]],
) -> None:
    out, code, output, _ = messy_run
    header, rows = _rows(out / "skipped.csv")
    assert header == ["path", "series_uid", "code", "not_analysed", "reason"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"scout", "README.txt", "image.dcm", "notes.pdf"}, "hidden: not walked"
    scout = by_name["scout"]
    assert (scout["code"], scout["not_analysed"]) == ("localizer", "false")
    assert scout["series_uid"] == "1.2.826.0.1.3680043.8.498.1001.9"
    assert (by_name["image.dcm"]["code"], by_name["image.dcm"]["not_analysed"]) == (
        "corrupt_file",
        "true",
    ), "a .dcm file that is not DICOM is a lost input"
    for name in ("README.txt", "notes.pdf"):
        assert by_name[name]["not_analysed"] == "false", name
    assert "0 ok, 2 need review, 1 failed, 1 inputs not analysed (skipped.csv)" in _flat(output)
    assert code == 1, "a failed case wins over inputs not analysed"
    assert PATIENT_NAME not in (out / "skipped.csv").read_text()


def _flat(text: str) -> str:
    return " ".join(text.split())
