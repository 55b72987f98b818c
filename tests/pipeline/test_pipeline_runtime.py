"""Pickling, device selection, run options, custom steps, per-case outputs."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from medsnowball.core import (
    Assessment,
    Candidate,
    CaseResult,
    ConfigError,
    CTVolume,
    ImageGeometry,
    Nodule,
    NoduleType,
    Side,
    Zone,
)
from medsnowball.pipeline import (
    CaseContext,
    FieldError,
    Pipeline,
    RunOptions,
    Step,
    available_steps,
    get_step_class,
    parse_formats,
    register_step,
    require,
    resolve_device,
)
from medsnowball.pipeline.outputs import CaseOutcome, candidate_row, read_outcome, write_status


def test_pipeline_pickles_and_keeps_step_caches_out() -> None:
    pipe = Pipeline.from_yaml("lung_nodule_screening").with_threshold(0.42)
    pipe.steps[3]._cache["model"] = object()  # e.g. a loaded network: not picklable
    clone = pickle.loads(pickle.dumps(pipe))
    assert clone == pipe
    assert clone.threshold == 0.42
    assert clone is not pipe
    assert clone.steps[3]._cache == {}
    assert clone.steps[3].config.max_candidates == 100


def test_case_result_pickles_with_arrays() -> None:
    geom = ImageGeometry((4, 5, 6), (2.0, 0.7, 0.7), (1.0, 2.0, 3.0), np.diag([1.0, -1.0, 1.0]))
    cand = Candidate((1.0, 2.0, 3.0), (0.5, 1.0, 2.0), 0.9, 6.0, {"blob": 1.5})
    nodule = Nodule(
        id=1,
        center_lps=(1.0, 2.0, 3.0),
        score=0.9,
        diameter_mm=6.1,
        long_axis_mm=7.0,
        short_axis_mm=5.2,
        volume_mm3=110.0,
        equivalent_diameter_mm=5.9,
        type=NoduleType.SOLID,
        solid_component_mm=6.1,
        mean_hu=20.0,
        side=Side.LEFT,
        zone=Zone.UPPER,
        lung_rads="3",
    )
    labels = np.zeros((4, 5, 6), np.uint16)
    labels[1, 2, 3] = 1
    result = CaseResult(
        case_id="c1",
        source="/x",
        geometry=geom,
        nodules=(nodule,),
        candidates=(cand,),
        assessment=Assessment("3", "Lung-RADS v2022", "6 months", "none", "Fleischner 2017", 1),
        lung_labels=labels.astype(np.uint8),
        nodule_labels=labels,
        timings_s={"load": 0.1},
    )
    clone = pickle.loads(pickle.dumps(result))
    assert clone.geometry == geom
    assert clone.nodules == (nodule,)
    assert clone.candidates[0].features == {"blob": 1.5}
    assert np.array_equal(clone.nodule_labels, labels)
    assert clone.assessment == result.assessment


def test_device_resolution_on_this_machine() -> None:
    assert resolve_device("cpu") == "cpu"
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda' was requested but"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected auto, cpu or cuda"):
        resolve_device("gpu")


def test_run_options_and_formats() -> None:
    assert parse_formats("csv, JSON,html") == ("json", "csv", "html")
    assert parse_formats(["pdf"]) == ("json", "pdf")
    assert parse_formats(None) is None
    with pytest.raises(ConfigError, match="unknown format"):
        parse_formats("json,docx")
    with pytest.raises(ConfigError, match="device"):
        RunOptions(device="tpu")  # type: ignore[arg-type]
    ctx = CaseContext(case_id="x", source="s", options=RunOptions(device="cpu"))
    assert ctx.device == "cpu"


@dataclass(frozen=True)
class ScaleConfig:
    factor: float = 2.0

    def __post_init__(self) -> None:
        require(self.factor > 0, "factor", f"expected > 0, found {self.factor}")


@register_step("test_scale")
class ScaleStep(Step):
    """Custom step used by the docs example: multiplies the volume."""

    config_class = ScaleConfig
    requires = ("volume",)
    provides = ("volume",)

    def run(self, ctx: CaseContext) -> None:
        vol = ctx.require_volume(self.label)
        ctx.volume = vol.with_array(vol.array * self.config.factor)
        ctx.extra["scaled_by"] = self.config.factor


def test_custom_step_in_yaml_on_a_volume() -> None:
    assert "test_scale" in available_steps()
    assert get_step_class("test_scale") is ScaleStep
    pipe = Pipeline.from_dict(
        {"name": "custom", "steps": ["load", {"step": "test_scale", "config": {"factor": 3}}]}
    )
    assert pipe.steps[1].config == ScaleConfig(3.0)
    vol = CTVolume(np.ones((3, 4, 5), np.float32), ImageGeometry((3, 4, 5), (1, 1, 1), (0, 0, 0)))
    result = pipe.run(vol, keep_arrays=False)
    assert result.extra["scaled_by"] == 3.0
    assert result.case_id == "case"
    assert set(result.timings_s) == {"load", "test_scale"}
    with pytest.raises(ConfigError, match=r"steps\[1\].config.factor: expected > 0, found -1"):
        Pipeline.from_dict(
            {"name": "c", "steps": ["load", {"step": "test_scale", "config": {"factor": -1}}]}
        )
    with pytest.raises(FieldError):
        ScaleConfig(0)


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_step("test_scale")
        class Other(Step):
            def run(self, ctx: CaseContext) -> None:
                pass


def test_candidate_rows_are_luna16_formatted() -> None:
    cand = Candidate((-0.00001, 12.34567, -200.5), (0, 0, 0), 0.1234567, 5.0)
    assert candidate_row("1.2.3", cand) == ["1.2.3", "0.000", "12.346", "-200.500", "0.123457"]


def test_outcome_from_files(tmp_path: Path) -> None:
    case_dir = tmp_path / "c"
    case_dir.mkdir()
    assert read_outcome(case_dir, "c", "src", "uid") is None
    write_status(case_dir, CaseOutcome("c", "src", "uid", "failed", "ValueError: bad", seconds=1.5))
    failed = read_outcome(case_dir, "c", "src", "uid")
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error == "ValueError: bad"
    (case_dir / "findings.json").write_text(json.dumps({"case_id": "other"}))
    assert read_outcome(case_dir, "c", "src", "uid").status == "failed"  # not this case's
    (case_dir / "findings.json").write_text('{"case_id": "c", "nod')  # truncated
    assert read_outcome(case_dir, "c", "src", "uid").status == "failed"
    findings = {
        "case_id": "c",
        "nodules": [{}, {}],
        "assessment": {"lung_rads": "4A"},
        "timings_s": {"a": 1.0, "b": 2.5},
    }
    (case_dir / "findings.json").write_text(json.dumps(findings))
    ok = read_outcome(case_dir, "c", "src", "uid")
    assert ok is not None
    assert (ok.status, ok.n_nodules, ok.lung_rads, ok.seconds) == (
        "ok",
        2,
        "4A",
        3.5,
    )
