"""write_case_outputs: files, atomicity, findings.json last, skips, privacy."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from report_factories import make_case

from medsnowball.core import CaseResult, ConfigError, CTVolume, PatientInfo
from medsnowball.report import (
    ALL_FORMATS,
    InvalidFindingsError,
    validate_findings,
    write_case_outputs,
)


def test_all_formats_for_a_non_dicom_input(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    result, volume = phantom_case
    out = tmp_path / "case_0001"
    outputs = write_case_outputs(result, volume, out, medsnowball_version="1.2.3")
    assert set(outputs) == {"json", "csv", "nifti", "nifti_nodules", "html", "pdf"}
    assert sorted(p.name for p in out.iterdir()) == [
        "findings.json",
        "lungs.nii.gz",
        "nodules.csv",
        "nodules.nii.gz",
        "report.html",
        "report.pdf",
    ]
    assert set(outputs.skipped) == {"seg", "sr"}
    assert "not a DICOM series" in outputs.skipped["seg"]
    doc = json.loads(outputs["json"].read_text(encoding="utf-8"))
    validate_findings(doc)
    assert doc["medsnowball_version"] == "1.2.3"
    assert doc["warnings"] == []  # expected skips are not warnings
    # findings.json is the last file to appear (the resume marker)
    others = [p for key, p in outputs.items() if key != "json"]
    assert all(outputs["json"].stat().st_mtime_ns >= p.stat().st_mtime_ns for p in others)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_label_maps_are_written_on_the_input_grid(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    result, volume = phantom_case
    outputs = write_case_outputs(result, volume, tmp_path, formats=("nifti",))
    assert result.lung_labels is not None
    assert result.nodule_labels is not None
    for key, expected in (("nifti", result.lung_labels), ("nifti_nodules", result.nodule_labels)):
        image = sitk.ReadImage(str(outputs[key]))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected)
        np.testing.assert_allclose(image.GetOrigin(), volume.origin_lps)
        np.testing.assert_allclose(image.GetSpacing(), volume.geometry.spacing_xyz)
    nodules = sitk.GetArrayFromImage(sitk.ReadImage(str(outputs["nifti_nodules"])))
    assert set(np.unique(nodules).tolist()) == {0, 1, 2}


def test_format_subset_and_json_always(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    result, volume = phantom_case
    outputs = write_case_outputs(result, volume, tmp_path, formats=["CSV"])
    assert set(outputs) == {"csv", "json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["findings.json", "nodules.csv"]


def test_unknown_format_is_a_config_error(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    with pytest.raises(ConfigError, match="docx"):
        write_case_outputs(*phantom_case, tmp_path, formats=("json", "docx"))
    assert not list(tmp_path.iterdir())


def test_bad_result_writes_nothing(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    result, volume = phantom_case
    wrong = dataclasses.replace(result, lung_labels=np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(InvalidFindingsError, match="lung_labels"):
        write_case_outputs(wrong, volume, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    bad = dataclasses.replace(result.nodules[0], diameter_mm=float("nan"))
    with pytest.raises(InvalidFindingsError):
        write_case_outputs(dataclasses.replace(result, nodules=(bad,)), volume, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_crash_before_the_end_leaves_no_findings_json(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk full")

    write_case_outputs(*phantom_case, tmp_path)  # an earlier, complete run
    monkeypatch.setattr("medsnowball.report.pdf.write_pdf", boom)
    (tmp_path / "report.pdf").unlink()
    with pytest.raises(RuntimeError, match="disk full"):
        write_case_outputs(*phantom_case, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "findings.json" not in names
    assert "report.pdf" not in names
    assert not [n for n in names if n.startswith(".tmp-")]


def test_missing_label_maps_are_warned_about(tmp_path: Path) -> None:
    result, volume = make_case(with_labels=False)
    outputs = write_case_outputs(result, volume, tmp_path, formats=("nifti", "html"))
    assert "nifti" not in outputs
    assert "nifti_nodules" not in outputs
    assert "lung_labels is None" in outputs.skipped["nifti"]
    doc = json.loads(outputs["json"].read_text(encoding="utf-8"))
    assert any(w.startswith("nifti output skipped") for w in doc["warnings"])
    assert "nifti output skipped" in outputs["html"].read_text(encoding="utf-8")


def test_two_runs_give_identical_files(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    result, volume = phantom_case
    a = write_case_outputs(result, volume, tmp_path / "a", formats=("csv", "html", "pdf"))
    b = write_case_outputs(result, volume, tmp_path / "b", formats=("csv", "html", "pdf"))
    for key in ("json", "csv", "html", "pdf"):
        assert a[key].read_bytes() == b[key].read_bytes(), key


def test_no_patient_identifiers_outside_the_opt_in_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    patient = PatientInfo(name="Doe^Jane", patient_id="PID778899", birth_date="19511231")
    result, volume = make_case(patient=patient)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = write_case_outputs(result, volume, tmp_path, formats=ALL_FORMATS)
    secrets = ("Doe", "Jane", "PID778899", "19511231")
    for key in ("json", "csv"):
        text = outputs[key].read_text(encoding="utf-8")
        assert not any(s in text for s in secrets), key
    for path in tmp_path.rglob("*"):
        assert not any(s in path.name for s in secrets)
    assert not any(s in caplog.text for s in secrets)
    assert not any(any(s in str(w.message) for s in secrets) for w in caught)


def test_output_folder_is_created(tmp_path: Path) -> None:
    result, volume = make_case(())
    out = tmp_path / "deep" / "case"
    outputs = write_case_outputs(result, volume, out, formats=("json",))
    assert outputs["json"] == out / "findings.json"
    assert os.path.isfile(out / "findings.json")
