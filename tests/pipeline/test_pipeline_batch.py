"""run_batch with a fast fake pipeline: failure recording, CSVs, resume, workers."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from pipeline_fake_steps import tree_digest

from medsnowball.core.errors import ConfigError, NoSeriesFoundError
from medsnowball.pipeline import (
    LUNA16_COLUMNS,
    SUMMARY_COLUMNS,
    Pipeline,
    ProgressEvent,
    run_batch,
)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh))


def test_batch_records_failure_and_goes_on(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    before = tree_digest(input_dir)
    events: list[ProgressEvent] = []
    out = tmp_path / "out"
    summary = run_batch(
        [input_dir], out, pipeline=fake_pipeline, progress=events.append, keep_names=True
    )

    assert tree_digest(input_dir) == before, "inputs must not be modified"
    assert [o.case_id for o in summary.outcomes] == ["alpha", "beta", "gamma"]
    assert (summary.n_ok, summary.n_failed, summary.exit_code) == (2, 1, 1)
    assert any("notes.txt" in s.path for s in summary.skipped_inputs)

    assert _header(out / "summary.csv") == list(SUMMARY_COLUMNS)
    rows = {r["case_id"]: r for r in _csv(out / "summary.csv")}
    assert rows["alpha"]["status"] == "ok"
    assert rows["alpha"]["n_nodules"] == "2"
    assert rows["alpha"]["lung_rads"] == "2"
    assert rows["alpha"]["series_uid"] == "alpha"
    assert rows["beta"]["n_nodules"] == "0"  # faint blob: 300 / 2000 < threshold 0.3
    gamma = rows["gamma"]
    assert gamma["status"] == "failed"
    assert gamma["n_nodules"] == ""
    assert gamma["lung_rads"] == ""
    assert gamma["error"].startswith("CorruptFileError in step 'explode': ")
    assert "poisoned test volume" in gamma["error"]
    assert json.loads((out / "gamma" / "status.json").read_text())["seconds"] > 0
    tb = (out / "gamma" / "error.txt").read_text()
    assert "Traceback" in tb
    assert "ExplodeStep" not in tb.splitlines()[0]
    assert not (out / "gamma" / "findings.json").exists()
    assert json.loads((out / "gamma" / "status.json").read_text())["status"] == "failed"

    # LUNA16 CSV: all candidates of ok cases, below-threshold ones included, in case order.
    assert _header(out / "luna16_candidates.csv") == list(LUNA16_COLUMNS)
    luna = _csv(out / "luna16_candidates.csv")
    assert [r["seriesuid"] for r in luna] == ["alpha", "alpha", "beta"]
    findings = json.loads((out / "alpha" / "findings.json").read_text())
    for nod, row in zip(findings["nodules"], luna[:2], strict=True):
        assert [float(row[k]) for k in ("coordX", "coordY", "coordZ")] == pytest.approx(
            nod["center_mm"], abs=1e-3
        )
        assert float(row["probability"]) == pytest.approx(nod["score"], abs=1e-6)
    # first blob of alpha: voxel (4, 5, 5) -> world x = -10 + 5*0.8, y = 20 + 5*0.8, z = -30 + 4*2
    assert [float(luna[0][k]) for k in ("coordX", "coordY", "coordZ")] == pytest.approx(
        [-6.0, 24.0, -22.0]
    )
    assert float(luna[2]["probability"]) == pytest.approx(0.15)

    assert [(e.done, e.total) for e in events] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert events[0].outcome is None


def test_resume_redoes_only_unfinished_cases(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_batch([input_dir], out, pipeline=fake_pipeline, keep_names=True)
    first_rows = {r["case_id"]: r for r in _csv(out / "summary.csv")}
    alpha_mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "alpha").iterdir()}
    # Simulate a run killed while writing beta: findings.json missing, a temp file left.
    (out / "beta" / "findings.json").unlink()
    (out / "beta" / "status.json").unlink()
    (out / "beta" / ".tmp-abc-findings.json").write_text('{"case_id": "be')
    (out / "summary.csv").unlink()

    events: list[ProgressEvent] = []
    second = run_batch(
        [input_dir],
        out,
        pipeline=fake_pipeline,
        resume=True,
        progress=events.append,
        keep_names=True,
    )

    assert events[0].done == 1  # alpha counted as done from the start
    by_id = {o.case_id: o for o in second.outcomes}
    assert by_id["alpha"].reused
    assert not by_id["beta"].reused
    assert not by_id["gamma"].reused
    assert second.n_reused == 1
    assert (second.n_ok, second.n_failed) == (first.n_ok, first.n_failed)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "alpha").iterdir()} == alpha_mtimes
    assert not list((out / "beta").glob(".tmp-*"))
    assert (out / "beta" / "findings.json").is_file()
    rows = {r["case_id"]: r for r in _csv(out / "summary.csv")}
    for case_id, row in rows.items():
        same = {k: v for k, v in row.items() if k != "seconds"}
        assert same == {k: v for k, v in first_rows[case_id].items() if k != "seconds"}
    assert rows["alpha"]["seconds"] == first_rows["alpha"]["seconds"]


def test_resume_after_status_lost_uses_findings(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_batch([input_dir / "alpha.nii.gz"], out, pipeline=fake_pipeline, keep_names=True)
    (out / "alpha" / "status.json").unlink()  # killed between findings.json and status.json
    summary = run_batch(
        [input_dir / "alpha.nii.gz"], out, pipeline=fake_pipeline, resume=True, keep_names=True
    )
    assert summary.outcomes[0].reused
    assert summary.outcomes[0].n_nodules == 2


def test_rerun_without_resume_replaces_stale_findings(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "gamma").mkdir(parents=True)
    (out / "gamma" / "findings.json").write_text(json.dumps({"case_id": "gamma", "nodules": []}))
    summary = run_batch([input_dir / "gamma.mha"], out, pipeline=fake_pipeline, keep_names=True)
    assert summary.outcomes[0].status == "failed"
    assert not (out / "gamma" / "findings.json").exists(), (
        "a stale findings.json would mark it done"
    )


def test_two_workers_give_the_same_outputs(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    one = run_batch(
        [input_dir], tmp_path / "w1", pipeline=fake_pipeline, workers=1, keep_names=True
    )
    two = run_batch(
        [input_dir], tmp_path / "w2", pipeline=fake_pipeline, workers=2, keep_names=True
    )
    assert [(o.case_id, o.status, o.n_nodules, o.error) for o in one.outcomes] == [
        (o.case_id, o.status, o.n_nodules, o.error) for o in two.outcomes
    ]
    assert (tmp_path / "w1" / "luna16_candidates.csv").read_bytes() == (
        tmp_path / "w2" / "luna16_candidates.csv"
    ).read_bytes()
    for case in ("alpha", "beta"):
        assert (tmp_path / "w1" / case / "findings.json").read_bytes() == (
            tmp_path / "w2" / case / "findings.json"
        ).read_bytes()


def test_output_folder_inside_input_is_not_analysed(
    input_dir: Path, fake_pipeline: Pipeline
) -> None:
    out = input_dir / "results"
    run_batch([input_dir / "alpha.nii.gz"], out, pipeline=fake_pipeline, keep_names=True)
    (out / "alpha" / "copy.nii.gz").write_bytes((input_dir / "alpha.nii.gz").read_bytes())
    summary = run_batch([input_dir], out, pipeline=fake_pipeline, resume=True, keep_names=True)
    assert [o.case_id for o in summary.outcomes] == ["alpha", "beta", "gamma"]


def test_batch_usage_errors(input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path) -> None:
    no_report = Pipeline.from_dict({"name": "x", "steps": ["load"]})
    with pytest.raises(ConfigError, match="no step that writes outputs"):
        run_batch([input_dir], tmp_path / "o", pipeline=no_report)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    with pytest.raises(NoSeriesFoundError, match="no CT case found"):
        run_batch([empty], tmp_path / "o", pipeline=fake_pipeline)
    with pytest.raises(ConfigError, match="workers"):
        run_batch([input_dir], tmp_path / "o", pipeline=fake_pipeline, workers=0)
    with pytest.raises(ConfigError, match="formats: unknown format"):
        run_batch([input_dir], tmp_path / "o", pipeline=fake_pipeline, formats="json,xml")


def test_threshold_override(input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path) -> None:
    summary = run_batch(
        [input_dir / "sub"], tmp_path / "o", pipeline=fake_pipeline, threshold=0.1, keep_names=True
    )
    assert summary.outcomes[0].n_nodules == 1


def test_cases_given_as_caseinputs(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    from medsnowball.io import find_cases

    cases = [c for c in find_cases([input_dir], keep_names=True).cases if c.case_id != "gamma"]
    summary = run_batch(cases, tmp_path / "o", pipeline=fake_pipeline)
    assert [o.case_id for o in summary.outcomes] == ["alpha", "beta"]
    with pytest.raises(ConfigError, match="case ids must be unique; repeated: alpha"):
        run_batch([cases[0], cases[0]], tmp_path / "o", pipeline=fake_pipeline)


def test_run_writes_nothing_without_out_dir(
    input_dir: Path, fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = fake_pipeline.run(input_dir / "alpha.nii.gz")
    finally:
        os.chdir(cwd)
    assert result.status == "ok"
    assert len(result.candidates) == 2
    assert "fake_report" not in result.timings_s
    assert set(result.timings_s) == {"load", "explode", "bright_blobs"}
    assert not list(tmp_path.glob("alpha*"))
