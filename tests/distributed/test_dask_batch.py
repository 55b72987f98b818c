"""run_batch on a real local Dask cluster: same outputs as a local run, resume across
executors, worker processes killed mid-case."""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import threading
from pathlib import Path

import pytest
from dist_steps import attempts, wait_for, with_gate

from medsnowball.pipeline import (
    CaseTask,
    LocalExecutor,
    Pipeline,
    ProgressEvent,
    RunOptions,
    run_batch,
)
from medsnowball.pipeline.dask_executor import DaskExecutor

FORMATS = "json,csv"
_TIMINGS = re.compile(rb'("timings_s": \{)[^}]*(\})')
_SECONDS = re.compile(rb'"seconds": [-+0-9.eE]+')


def case_files(out: Path) -> dict[str, bytes]:
    """Bytes of every per-case file; wall times (findings timings_s, status seconds) blanked."""
    files: dict[str, bytes] = {}
    for path in sorted(out.glob("*/*")):
        data = path.read_bytes()
        if path.name == "findings.json":
            data = _TIMINGS.sub(rb"\1\2", data)
        elif path.name == "status.json":
            data = _SECONDS.sub(b'"seconds": 0', data)
        files[str(path.relative_to(out))] = data
    return files


def summary_rows(out: Path) -> list[list[str]]:
    """summary.csv without its seconds column."""
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("seconds")
    return [r[:col] + r[col + 1 :] for r in rows]


def findings(out: Path, case_id: str) -> dict[str, object]:
    data = json.loads((out / case_id / "findings.json").read_text())
    for volatile in ("timings_s", "pipeline"):
        data.pop(volatile)
    return data


@pytest.fixture(scope="module")
def local_out(
    tmp_path_factory: pytest.TempPathFactory, phantom_inputs: list[Path], cad_pipeline: Pipeline
) -> Path:
    """The reference: the same batch run in-process by the LocalExecutor."""
    out = tmp_path_factory.mktemp("local_out")
    summary = run_batch(
        phantom_inputs,
        out,
        pipeline=cad_pipeline,
        formats=FORMATS,
        executor=LocalExecutor(1),
        keep_names=True,
    )
    assert summary.n_ok + summary.n_needs_review == len(phantom_inputs)
    return out


def test_dask_outputs_equal_a_local_run(
    tmp_path: Path,
    phantom_inputs: list[Path],
    cad_pipeline: Pipeline,
    local_out: Path,
    dask_exe: DaskExecutor,
) -> None:
    events: list[ProgressEvent] = []
    summary = run_batch(
        phantom_inputs,
        tmp_path,
        pipeline=cad_pipeline,
        formats=FORMATS,
        executor=dask_exe,
        progress=events.append,
        keep_names=True,
    )
    assert summary.n_ok + summary.n_needs_review == 3
    assert summary.n_failed == 0
    expected = case_files(local_out)
    assert {"p1/findings.json", "p1/candidates.csv", "p1/status.json"} <= set(expected)
    got = case_files(tmp_path)
    assert sorted(got) == sorted(expected)
    for name, data in expected.items():
        assert got[name] == data, f"{name} differs between the local and the Dask run"
    assert summary_rows(tmp_path) == summary_rows(local_out)
    luna = "luna16_candidates.csv"
    assert (tmp_path / luna).read_bytes() == (local_out / luna).read_bytes()
    # Progress is fed by task completions: a start event, then one per finished case.
    assert [(e.done, e.total) for e in events] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert {e.outcome.case_id for e in events if e.outcome is not None} == {"p1", "p2", "p3"}
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_task_carries_paths_not_pixels(
    tmp_path: Path, phantom_inputs: list[Path], cad_pipeline: Pipeline
) -> None:
    from medsnowball.io import find_cases

    case = find_cases([phantom_inputs[0]]).cases[0]
    task = CaseTask(cad_pipeline, case, str(tmp_path), RunOptions(formats=("json",)))
    image_bytes = 48 * 96 * 96 * 2
    assert len(pickle.dumps(task)) < min(64_000, image_bytes // 10)


def test_resume_works_across_executors(
    tmp_path: Path, phantom_inputs: list[Path], cad_pipeline: Pipeline, dask_exe: DaskExecutor
) -> None:
    p1, p2, _ = phantom_inputs
    kw = {"pipeline": cad_pipeline, "formats": FORMATS, "resume": True, "keep_names": True}
    first = run_batch([p1, p2], tmp_path, executor=LocalExecutor(1), **kw)
    assert first.n_ok + first.n_needs_review == 2
    kept = {c: (tmp_path / c / "findings.json").stat().st_mtime_ns for c in ("p1", "p2")}

    # Local run first, then Dask: only the new case is computed.
    second = run_batch(phantom_inputs, tmp_path, executor=dask_exe, **kw)
    assert (second.n_ok + second.n_needs_review, second.n_reused) == (3, 2)
    assert {c: (tmp_path / c / "findings.json").stat().st_mtime_ns for c in kept} == kept

    # Dask first, then local: a case left unfinished by the Dask run is redone locally.
    (tmp_path / "p3" / "findings.json").unlink()
    (tmp_path / "p3" / "status.json").unlink()
    third = run_batch(phantom_inputs, tmp_path, executor=LocalExecutor(1), **kw)
    assert (third.n_ok + third.n_needs_review, third.n_reused) == (3, 2)
    assert [o.case_id for o in third.outcomes if not o.reused] == ["p3"]
    assert len(summary_rows(tmp_path)) == 4


def _kill_when_started(marker_dir: Path, case_id: str, worker_pids: set[int]) -> threading.Thread:
    """Start a thread that SIGKILLs the worker process once it runs ``case_id``."""

    def kill() -> None:
        if wait_for(lambda: attempts(marker_dir, case_id)):
            pid = attempts(marker_dir, case_id)[0]
            if pid in worker_pids:  # never anything but a Dask worker of this test
                os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_worker_killed_mid_case_is_retried_and_the_batch_completes(
    tmp_path: Path,
    phantom_inputs: list[Path],
    cad_pipeline: Pipeline,
    local_out: Path,
    dask_exe: DaskExecutor,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    gated = with_gate(cad_pipeline, marker_dir=str(markers), cases=["p2"], mode="pause_once")
    worker_pids = set(dask_exe.client.run(os.getpid).values())
    killer = _kill_when_started(markers, "p2", worker_pids)
    out = tmp_path / "out"
    summary = run_batch(
        phantom_inputs, out, pipeline=gated, formats=FORMATS, executor=dask_exe, keep_names=True
    )
    killer.join(timeout=5)

    pids = attempts(markers, "p2")
    assert len(pids) == 2, "the case must have been killed once and rerun once"
    assert pids[0] in worker_pids
    assert pids[0] not in set(dask_exe.client.run(os.getpid).values()), "worker not killed"
    # The small 2 mm test phantoms end needs_review (voxel size, lung volume): what
    # matters here is that every case finished, none failed.
    assert [(o.case_id, o.ok) for o in summary.outcomes] == [
        ("p1", True),
        ("p2", True),
        ("p3", True),
    ]
    for case_id in ("p1", "p2", "p3"):
        assert findings(out, case_id) == findings(local_out, case_id)
    assert not list(out.rglob(".tmp-*"))


def test_case_whose_worker_always_dies_is_reported_failed(
    tmp_path: Path, phantom_inputs: list[Path], cad_pipeline: Pipeline, dask_exe: DaskExecutor
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    gated = with_gate(cad_pipeline, marker_dir=str(markers), cases=["p3"], mode="die")
    out = tmp_path / "out"
    summary = run_batch(
        phantom_inputs, out, pipeline=gated, formats=FORMATS, executor=dask_exe, keep_names=True
    )

    assert dask_exe.retries == 2
    assert len(attempts(markers, "p3")) == 3, "one attempt and two retries"
    status = {o.case_id: o for o in summary.outcomes}
    assert sorted(status) == ["p1", "p2", "p3"], "every case is accounted for"
    assert status["p1"].ok
    assert status["p2"].ok
    assert not status["p3"].ok
    assert status["p3"].error.startswith(
        "WorkerLost: the worker process died 3 times while processing case p3"
    )
    assert summary.exit_code == 1
    on_disk = json.loads((out / "p3" / "status.json").read_text())
    assert on_disk["status"] == "failed"
    assert "died 3 times" in on_disk["error"]
    assert not (out / "p3" / "findings.json").exists()
    rows = summary_rows(out)
    assert [r[0] for r in rows[1:]] == ["p1", "p2", "p3"]
    # The cluster recovered: both workers are back for the next batch.
    assert wait_for(lambda: len(dask_exe.client.run(os.getpid)) == 2, timeout_s=30)
