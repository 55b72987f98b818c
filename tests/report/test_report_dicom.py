"""DICOM SEG and SR: read back with pydicom/highdicom, reference the right series."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from report_factories import DEFAULT_SPHERES, SphereSpec

from medsnowball.core import CaseResult, CTVolume, ImageGeometry
from medsnowball.report import write_case_outputs

MakeCase = Callable[..., tuple[CaseResult, CTVolume]]


def _source_uids(volume: CTVolume) -> list[str]:
    return [
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in volume.source_files
    ]


@pytest.fixture
def dicom_outputs(
    tmp_path: Path, make_dicom_case: MakeCase
) -> tuple[CaseResult, CTVolume, dict[str, Path]]:
    result, volume = make_dicom_case()
    outputs = write_case_outputs(result, volume, tmp_path / "out", formats=("seg", "sr"))
    return result, volume, dict(outputs)


def test_seg_references_the_source_series(
    dicom_outputs: tuple[CaseResult, CTVolume, dict[str, Path]],
) -> None:
    _result, volume, outputs = dicom_outputs
    seg = hd.seg.segread(outputs["seg"])
    assert seg.Modality == "SEG"
    assert seg.StudyInstanceUID == volume.study_uid
    assert seg.SeriesInstanceUID != volume.series_uid
    (ref_series,) = seg.ReferencedSeriesSequence
    assert ref_series.SeriesInstanceUID == volume.series_uid
    referenced = {item.ReferencedSOPInstanceUID for item in ref_series.ReferencedInstanceSequence}
    source = _source_uids(volume)
    assert referenced <= set(source)
    assert len(referenced) >= 30  # every slice with lung or nodule voxels
    labels = [(d.SegmentNumber, d.SegmentLabel) for d in seg.SegmentSequence]
    assert labels == [(1, "Right lung"), (2, "Left lung"), (3, "Nodule 1"), (4, "Nodule 2")]
    nodule_desc = seg.get_segment_description(3)
    assert nodule_desc.segmented_property_type.value == "27925004"  # SCT Nodule
    lung_desc = seg.SegmentSequence[0]
    assert lung_desc.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"  # right


def test_seg_pixels_match_the_label_maps(
    dicom_outputs: tuple[CaseResult, CTVolume, dict[str, Path]],
) -> None:
    result, volume, outputs = dicom_outputs
    seg = hd.seg.segread(outputs["seg"])
    source = _source_uids(volume)
    assert result.nodule_labels is not None
    assert result.lung_labels is not None
    k0 = 20  # centre slice of nodule 1
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[source[k0]],
        segment_numbers=[1, 3],
        ignore_spatial_locations=True,
    )
    nodule_1 = result.nodule_labels[k0] == 1
    assert nodule_1.sum() > 50
    np.testing.assert_array_equal(pixels[0, :, :, 1].astype(bool), nodule_1)
    # segments are exclusive: the right lung segment is the lung without the nodule
    right = (result.lung_labels[k0] == 1) & ~nodule_1
    np.testing.assert_array_equal(pixels[0, :, :, 0].astype(bool), right)


def test_sr_measurement_report(
    dicom_outputs: tuple[CaseResult, CTVolume, dict[str, Path]],
) -> None:
    result, volume, outputs = dicom_outputs
    sr = hd.sr.srread(outputs["sr"])
    seg = pydicom.dcmread(outputs["seg"])
    assert sr.StudyInstanceUID == volume.study_uid
    assert sr.VerificationFlag == "UNVERIFIED"
    assert sr.CompletionFlag == "COMPLETE"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = {
        series.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in series.ReferencedSOPSequence}
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
    }
    assert evidence[volume.series_uid] == set(_source_uids(volume))
    assert evidence[seg.SeriesInstanceUID] == {seg.SOPInstanceUID}
    groups = sr.content.get_volumetric_roi_measurement_groups()
    nodules = {str(g.tracking_identifier): g for g in groups if g.finding_type.value == "27925004"}
    assert set(nodules) == {"Nodule 1", "Nodule 2"}
    g1 = nodules["Nodule 1"]
    assert g1.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert g1.referenced_segment.referenced_segment_numbers == [3]
    values = {m.name.meaning: (m.value, m.unit.value) for m in g1.get_measurements()}
    assert values["Diameter"] == (9.0, "mm")
    assert values["Volume"][1] == "mm3"
    assert values["Volume"][0] == pytest.approx(result.nodules[0].volume_mm3, abs=0.01)
    evaluations = {q.name.meaning: q.value.meaning for q in g1.get_qualitative_evaluations()}
    assert evaluations["Lung-RADS v2022 category"] == "Lung-RADS 4A"
    assert evaluations["Nodule attenuation type"] == "Solid nodule"
    lungs = [g for g in groups if g.finding_type.value == "39607008"]
    assert len(lungs) == 2
    assert sr.content.get_planar_roi_measurement_groups() == []


def test_sr_without_seg_uses_planar_regions(tmp_path: Path, make_dicom_case: MakeCase) -> None:
    result, volume = make_dicom_case()
    outputs = write_case_outputs(result, volume, tmp_path / "out", formats=("sr",))
    assert "seg" not in outputs
    sr = hd.sr.srread(outputs["sr"])
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    planar = {str(g.tracking_identifier): g for g in sr.content.get_planar_roi_measurement_groups()}
    assert set(planar) == {"Nodule 1", "Nodule 2"}
    region = planar["Nodule 1"].roi
    assert region.ValueType == "SCOORD"
    assert region.GraphicType == "CIRCLE"
    centre, edge = np.asarray(region.value)
    # (column, row) of the voxel centre (28, 48): DICOM pixel centres sit at +0.5
    np.testing.assert_allclose(centre, [28.5, 48.5], atol=1e-3)
    np.testing.assert_allclose(edge - centre, [9.0 / 2 / 0.8, 0.0], atol=1e-3)  # radius in px
    source = _source_uids(volume)
    image_ref = region.ContentSequence[0].ReferencedSOPSequence[0]
    assert image_ref.ReferencedSOPInstanceUID == source[20]


def test_uids_are_stable_across_runs(tmp_path: Path, make_dicom_case: MakeCase) -> None:
    result, volume = make_dicom_case()
    a = write_case_outputs(result, volume, tmp_path / "a", formats=("seg", "sr"))
    b = write_case_outputs(result, volume, tmp_path / "b", formats=("seg", "sr"))
    for key in ("seg", "sr"):
        da, db = pydicom.dcmread(a[key]), pydicom.dcmread(b[key])
        assert da.SOPInstanceUID == db.SOPInstanceUID
        assert da.SeriesInstanceUID == db.SeriesInstanceUID
    changed = dataclasses.replace(
        result, nodules=(dataclasses.replace(result.nodules[0], diameter_mm=9.5),)
    )
    c = write_case_outputs(changed, volume, tmp_path / "c", formats=("seg",))
    assert pydicom.dcmread(c["seg"]).SOPInstanceUID != pydicom.dcmread(a["seg"]).SOPInstanceUID


def test_resampled_grid_skips_dicom_outputs_with_a_warning(
    tmp_path: Path, make_dicom_case: MakeCase
) -> None:
    result, volume = make_dicom_case()
    g = volume.geometry
    shifted = ImageGeometry(g.shape_zyx, g.spacing_zyx, (g.origin_lps[0], g.origin_lps[1], 0.7))
    moved = volume.with_array(volume.array, geometry=shifted)
    outputs = write_case_outputs(
        dataclasses.replace(result, geometry=shifted), moved, tmp_path, formats=("seg", "sr")
    )
    assert set(outputs) == {"json"}
    assert "not the source DICOM grid" in outputs.skipped["seg"]
    doc = json.loads(outputs["json"].read_text(encoding="utf-8"))
    assert any(w.startswith("seg output skipped") for w in doc["warnings"])
    assert any(w.startswith("sr output skipped") for w in doc["warnings"])


def test_dropped_slice_is_detected(tmp_path: Path, make_dicom_case: MakeCase) -> None:
    result, volume = make_dicom_case()
    fewer = dataclasses.replace(volume, source_files=volume.source_files[:-1])
    outputs = write_case_outputs(result, fewer, tmp_path, formats=("seg",))
    assert "source files" in outputs.skipped["seg"]


def test_no_segments_no_seg(tmp_path: Path, make_dicom_case: MakeCase) -> None:
    result, volume = make_dicom_case(with_labels=False)
    outputs = write_case_outputs(result, volume, tmp_path, formats=("seg", "sr"))
    assert "seg" not in outputs
    assert "no lung or nodule labels" in outputs.skipped["seg"]
    sr = hd.sr.srread(outputs["sr"])  # falls back to planar ROIs
    assert len(sr.content.get_planar_roi_measurement_groups()) == 2


def test_dicom_patient_fields_stay_out_of_logs_and_findings(
    tmp_path: Path, make_dicom_case: MakeCase, caplog: pytest.LogCaptureFixture
) -> None:
    name = "<script>alert(1)</script>"
    result, volume = make_dicom_case(patient_name=name, patient_id="PID4455")
    assert volume.patient.name == name
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = write_case_outputs(result, volume, tmp_path / "out", include_patient_info=True)
    assert name not in caplog.text
    assert "PID4455" not in caplog.text
    assert not [w for w in caught if "alert" in str(w.message) or "PID4455" in str(w.message)]
    for key in ("json", "csv"):
        text = outputs[key].read_text(encoding="utf-8")
        assert "alert" not in text
        assert "PID4455" not in text
    html = outputs["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    # SEG and SR carry the patient module of the source, as DICOM requires
    assert str(pydicom.dcmread(outputs["seg"]).PatientID) == "PID4455"
    assert str(pydicom.dcmread(outputs["sr"]).PatientID) == "PID4455"


def test_part_solid_nodule_round_trip(tmp_path: Path, make_dicom_case: MakeCase) -> None:
    from medsnowball.core import NoduleType, Side, Zone

    spheres = (
        *DEFAULT_SPHERES,
        SphereSpec(3, (28.0, 40.0, 70.0), 14.0, NoduleType.PART_SOLID, Side.LEFT, Zone.UPPER),
    )
    result, volume = make_dicom_case(spheres)
    outputs = write_case_outputs(result, volume, tmp_path, formats=("seg", "sr", "json"))
    sr = hd.sr.srread(outputs["sr"])
    groups = {
        str(g.tracking_identifier): g for g in sr.content.get_volumetric_roi_measurement_groups()
    }
    evaluations = {
        q.name.meaning: q.value.meaning for q in groups["Nodule 3"].get_qualitative_evaluations()
    }
    assert evaluations["Nodule attenuation type"] == "Part-solid nodule"
    assert evaluations["Lung-RADS v2022 category"] == "Lung-RADS 4A"  # solid part 7 mm
    sites = groups["Nodule 3"].finding_sites
    assert sites[0].value.meaning == "Upper zone of lung"


def test_highdicom_failure_is_a_redacted_skip(
    tmp_path: Path, make_dicom_case: MakeCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, volume = make_dicom_case(patient_name="Doe^Jane", patient_id="PID4455")

    def reject(*args: object, **kwargs: object) -> None:
        raise ValueError("PatientName 'Doe^Jane' (ID PID4455) is not acceptable")

    monkeypatch.setattr("medsnowball.report.dicom_seg.build_segmentation", reject)
    outputs = write_case_outputs(result, volume, tmp_path, formats=("seg", "sr"))
    reason = outputs.skipped["seg"]
    assert reason.startswith("highdicom rejected the source headers: ValueError")
    assert "Doe^Jane" not in reason
    assert "PID4455" not in reason
    assert "<redacted>" in reason
    assert "sr" in outputs  # the SR falls back to planar ROIs
    doc = json.loads(outputs["json"].read_text(encoding="utf-8"))
    assert not any("PID4455" in w for w in doc["warnings"])
