"""Small, fast stand-ins for the CAD and report steps, to test the engine on its own.

Importable by worker processes (spawned children get the parent's ``sys.path``), so the
classes pickle by reference like real steps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.errors import CorruptFileError
from medsnowball.core.findings import Candidate
from medsnowball.core.quality import QualityFlag
from medsnowball.pipeline import Step, register_step
from medsnowball.pipeline.context import CaseContext
from medsnowball.pipeline.outputs import CANDIDATES_CSV, write_candidates_csv

#: A volume whose maximum equals this value makes the ``explode`` step fail.
POISON_HU = 1234.0


@dataclass(frozen=True)
class BrightBlobsConfig:
    """Options of the fake detector."""

    min_hu: float = 200.0


@register_step("bright_blobs")
class BrightBlobsStep(Step):
    """One candidate per connected bright region; score = mean HU / 2000."""

    config_class = BrightBlobsConfig
    requires = ("volume",)
    provides = ("candidates",)

    def run(self, ctx: CaseContext) -> None:
        volume = ctx.require_volume(self.label)
        arr = np.asarray(volume.array, dtype=np.float32)
        labels, n = ndimage.label(arr >= self.config.min_hu)
        cands = []
        for i in range(1, n + 1):
            idx = np.argwhere(labels == i).mean(axis=0)
            score = float(min(1.0, arr[labels == i].mean() / 2000.0))
            lps = volume.index_to_world(idx)
            cands.append(
                Candidate(
                    center_lps=tuple(float(v) for v in lps),  # type: ignore[arg-type]
                    center_zyx=tuple(float(v) for v in idx),  # type: ignore[arg-type]
                    score=score,
                    diameter_mm=5.0,
                    detector="fake",
                )
            )
        ctx.candidates = sorted(cands, key=lambda c: -c.score)


@register_step("explode")
class ExplodeStep(Step):
    """Fails on volumes whose maximum is POISON_HU (a corrupt case stand-in)."""

    requires = ("volume",)

    def run(self, ctx: CaseContext) -> None:
        if float(np.max(ctx.require_volume(self.label).array)) == POISON_HU:
            raise CorruptFileError(f"{ctx.source}: poisoned test volume")


@dataclass(frozen=True)
class ReviewFlagConfig:
    """Options of the fake quality check: the case ids it flags."""

    cases: tuple[str, ...] = ()


@register_step("review_flag")
class ReviewFlagStep(Step):
    """Adds a ``lungs_span_too_short`` flag of severity review to the configured cases."""

    config_class = ReviewFlagConfig
    requires = ("volume",)

    def run(self, ctx: CaseContext) -> None:
        if ctx.case_id in self.config.cases:
            ctx.quality.append(QualityFlag("lungs_span_too_short", "fake: lungs too short"))


@register_step("fake_report")
class FakeReportStep(Step):
    """Writes candidates.csv, then a minimal findings.json (last), like the real report."""

    requires = ("volume", "candidates")
    provides = ("outputs",)
    writes_outputs = True

    def run(self, ctx: CaseContext) -> None:
        out = ctx.options.out_dir
        assert out is not None
        write_candidates_csv(out / CANDIDATES_CSV, ctx.luna_uid or ctx.case_id, ctx.candidates)
        nodules = [
            {"id": i + 1, "center_mm": list(c.center_lps), "score": c.score}
            for i, c in enumerate(c for c in ctx.candidates if c.score >= ctx.threshold)
        ]
        findings = {
            "case_id": ctx.case_id,
            "series_uid": ctx.series_uid,
            "pipeline": ctx.pipeline_name,
            "nodules": nodules,
            "assessment": {"lung_rads": "2" if nodules else "1"},
            "timings_s": {k: 0.0 for k in ctx.timings_s},
        }
        result = ctx.to_result(keep_arrays=False)
        if result.quality:  # like the real report: status and quality block
            findings["status"] = result.status
            findings["quality"] = {
                "status": result.status,
                "flags": [f.to_dict() for f in result.quality],
            }
        atomic_write_text(out / "findings.json", json.dumps(findings, indent=1))
        ctx.outputs["json"] = out / "findings.json"


FAKE_PIPELINE = {
    "name": "fake",
    "threshold": 0.3,
    "steps": [
        {"step": "load"},
        {"step": "explode"},
        {"step": "bright_blobs", "config": {"min_hu": 200}},
        {"step": "fake_report"},
    ],
}


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def square_or_crash(task: tuple[int, str]) -> int:
    """Executor test task: ``(n, marker_dir)``. n < 0: the worker process dies once per
    marker (first attempt), n == -99: it dies every time; else returns n * n and the pid."""
    import os

    n, marker_dir = task
    if n == -99:
        os._exit(17)
    if n < 0:
        marker = Path(marker_dir) / f"crashed{n}"
        if not marker.exists():
            marker.write_text("x")
            os._exit(17)
        return -n * 1000
    return n * n


def thread_env_of_worker(_: object) -> str:
    """Executor test task: the OMP_NUM_THREADS a worker process was started with."""
    import os

    return os.environ.get("OMP_NUM_THREADS", "")
