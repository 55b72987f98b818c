"""Pipeline YAML loading and validation: every error names its key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pipeline_edits import set_at

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline import Pipeline, shipped_pipelines
from medsnowball.pipeline.loader import DEFINITIONS_DIR
from medsnowball.pipeline.steps import DetectConfig, ReportConfig

REPO = Path(__file__).resolve().parents[2]


def _default() -> dict[str, Any]:
    # the training-free pipeline: its step indices (detect = 3, segment = 4, ...) are fixed
    return Pipeline.from_yaml("lung_nodule_classical").to_dict()


def test_shipped_pipelines_load_with_expected_steps() -> None:
    names = shipped_pipelines()
    assert {"lung_nodule_screening", "lung_nodule_classical"} <= set(names)
    pipe = Pipeline.from_yaml("lung_nodule_screening")
    assert pipe.labels == [
        "load",
        "preprocess",
        "lungs",
        "detect",
        "fp_reduce",
        "segment",
        "measure",
        "assess",
        "report",
    ]
    assert isinstance(pipe.steps[3].config, DetectConfig)
    assert pipe.steps[3].config.max_candidates == 100
    classical = Pipeline.from_yaml("lung_nodule_classical.yaml")
    assert classical.name == "lung_nodule_classical"
    assert classical.labels == [label for label in pipe.labels if label != "fp_reduce"]
    assert classical.steps[:4] == pipe.steps[:4]


def test_repo_pipelines_folder_mirrors_package_definitions() -> None:
    repo_dir = REPO / "pipelines"
    if not repo_dir.is_dir():
        pytest.skip("not a source checkout")
    shipped = {p.name: p.read_bytes() for p in DEFINITIONS_DIR.glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in repo_dir.glob("*.yaml")}
    assert copies == shipped, "pipelines/*.yaml must be copies of medsnowball/pipeline/definitions"


def test_load_from_path_and_round_trip(tmp_path: Path) -> None:
    pipe = Pipeline.from_yaml("lung_nodule_screening")
    path = tmp_path / "mine.yaml"
    path.write_text(pipe.with_threshold(0.7).to_yaml())
    mine = Pipeline.from_yaml(path)
    assert mine.threshold == 0.7
    assert mine.steps == pipe.steps
    assert mine.origin == str(path)


@pytest.mark.parametrize(
    ("modify", "expected"),
    [
        (
            set_at(("steps", 3, "config", "max_candidatez"), 5),
            "steps[3].config.max_candidatez: unknown key; did you mean max_candidates?",
        ),
        (
            set_at(("steps", 3, "config", "max_candidates"), "5"),
            "steps[3].config.max_candidates: expected an integer, found '5'",
        ),
        (
            set_at(("steps", 3, "config", "max_candidates"), 0),
            "steps[3].config.max_candidates: expected at least 1, found 0",
        ),
        (
            set_at(("steps", 3, "config", "max_diameter_mm"), 2.0),
            "steps[3].config.max_diameter_mm: expected more than min_diameter_mm",
        ),
        (
            set_at(("steps", 3, "step"), "detct"),
            "steps[3].step: unknown step 'detct'; did you mean detect?",
        ),
        (set_at(("treshold",), 0.3), "treshold: unknown key; did you mean threshold?"),
        (set_at(("threshold",), 1.5), "threshold: expected a number in [0, 1], found 1.5"),
        (set_at(("threshold",), True), "threshold: expected a number in [0, 1], found True"),
        (set_at(("name",), ""), "name: required"),
        (set_at(("format_version",), 2), "format_version: this medsnowball reads version 1"),
        (set_at(("steps",), []), "steps: required, expected a non-empty list"),
        (
            set_at(("steps", 2, "colour"), "red"),
            "steps[2].colour: unknown key (valid keys: step, name, config)",
        ),
        (
            set_at(("steps", 1, "config", "clip_hu"), [1, 2, 3]),
            "steps[1].config.clip_hu: expected a list of 2 values",
        ),
        (
            set_at(("steps", 1, "config", "clip_hu"), [5, -5]),
            "steps[1].config.clip_hu: expected [low, high] with low < high",
        ),
        (
            set_at(("steps", 6, "config", "high_risk"), "yes"),
            "steps[6].config.high_risk: expected true or false, found 'yes'",
        ),
        (
            set_at(("steps", 7, "config", "formats"), ["json", "pfd"]),
            "steps[7].config.formats: unknown format(s) pfd",
        ),
        (set_at(("steps", 7, "config"), [1, 2]), "steps[7].config: expected a mapping of options"),
        (
            set_at(("steps", 4, "name"), "lungs"),
            "steps[4].name: 'lungs' is already used by steps[2]",
        ),
        (set_at(("steps", 4, "name"), "9x"), "steps[4].name: expected letters"),
        (set_at(("steps", 0), 42), "steps[0]: expected a mapping with 'step', found 42"),
    ],
)
def test_validation_errors_name_the_key(modify: Any, expected: str) -> None:
    data = copy.deepcopy(_default())
    modify(data)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_dict(data, origin="my.yaml")
    assert str(info.value).startswith("my.yaml: ")
    assert expected in str(info.value)


def test_step_order_is_checked() -> None:
    data = _default()
    data["steps"].insert(0, data["steps"].pop(4))  # segment first
    with pytest.raises(
        ConfigError, match=r"steps\[0\] \(segment\): needs volume, lungs, candidates"
    ):
        Pipeline.from_dict(data)


def test_string_shorthand_for_steps_without_options() -> None:
    data = _default()
    data["steps"][0] = "load"
    assert Pipeline.from_dict(data).steps[0].label == "load"


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nthreshold: 0.5\nthreshold: 0.6\nsteps: [load]\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: duplicate key 'threshold' at line 3"):
        Pipeline.from_yaml(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a\nsteps: [load\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        Pipeline.from_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- load\n")
    with pytest.raises(ConfigError, match="expected a mapping with 'name' and 'steps', found list"):
        Pipeline.from_yaml(listy)


def test_unknown_pipeline_name_lists_shipped_ones() -> None:
    with pytest.raises(
        ConfigError, match="shipped pipelines: lung_nodule_classical, lung_nodule_screening"
    ):
        Pipeline.from_yaml("lung_nodule_screenin")


def test_with_step_config_validates_and_copies() -> None:
    pipe = Pipeline.from_yaml("lung_nodule_screening")
    changed = pipe.with_step_config("detect", max_candidates=7)
    assert changed.steps[3].config.max_candidates == 7
    assert pipe.steps[3].config.max_candidates == 100
    with pytest.raises(
        ConfigError, match=r"detect.config.max_candidatez: unknown key; did you mean"
    ):
        pipe.with_step_config("detect", max_candidatez=7)
    with pytest.raises(ConfigError, match="has no step 'detector'"):
        pipe.with_step_config("detector", max_candidates=7)


def test_report_formats_default_to_all() -> None:
    assert ReportConfig().formats == ("json", "csv", "nifti", "html", "pdf", "seg", "sr")
