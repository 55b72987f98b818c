"""discover / find_cases / describe: grouping, selection rules and their reasons."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medsnowball.core import (
    CorruptFileError,
    InconsistentSeriesError,
    NoSeriesFoundError,
    UnsupportedModalityError,
)
from medsnowball.io import (
    describe,
    discover,
    find_cases,
    format_table,
    load_case,
    load_ct,
    write_dicom_series,
    write_image,
)


@pytest.fixture
def mixed_study(tmp_path, make_volume):
    """One study: thin series (shuffled names, nested), 5 mm reconstruction, localizer, junk."""
    root = tmp_path / "export"
    study = pydicom.uid.generate_uid()
    thin = make_volume(shape=(24, 40, 48), spacing=(1.25, 0.8, 0.7))
    write_dicom_series(
        thin,
        root / "a" / "b" / "c",
        study_uid=study,
        file_names="shuffled",
        series_description="thin 1.25",
        series_number=2,
        patient_name="DOE^JANE",
        patient_id="PID-12345",
    )
    thick_arr = thin.array[::4]
    thick = make_volume(shape=thick_arr.shape, spacing=(5.0, 0.8, 0.7), array=thick_arr)
    write_dicom_series(
        thick,
        root / "a" / "thick",
        study_uid=study,
        file_names="uid",
        series_description="thick 5mm",
        series_number=3,
        patient_name="DOE^JANE",
    )
    loc = make_volume(shape=(1, 40, 48), spacing=(1.0, 0.8, 0.7))
    write_dicom_series(
        loc,
        root / "loc",
        study_uid=study,
        series_description="scout",
        series_number=1,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        patient_name="DOE^JANE",
    )
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "empty").write_bytes(b"")
    (root / "a" / "b" / "noise.dcm").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 32)
    return root, thin


def test_discover_groups_series_and_skips_junk(mixed_study):
    root, _thin = mixed_study
    disc = discover(root)
    assert sorted(s.n_slices for s in disc.series) == [1, 6, 24]
    skipped = {p.split("/")[-1]: why for p, why in disc.skipped}
    assert set(skipped) == {"notes.txt", "empty", "noise.dcm", "DICOMDIR"}
    assert "0 bytes" in skipped["empty"]
    assert "DICM" in skipped["notes.txt"]
    assert disc.images == []


def test_selection_picks_thin_series_with_reasons(mixed_study, sitk_series):
    root, thin = mixed_study
    found = find_cases(root)
    assert len(found.cases) == 1
    case = found.cases[0]
    assert case.kind == "dicom"
    assert case.n_slices == 24
    assert case.description == "thin 1.25"
    assert case.case_id == "ct_" + hashlib.sha256(case.series_uid.encode()).hexdigest()[:12]
    assert case.luna_uid == case.series_uid
    reasons = {r.description: r for r in found.rows}
    assert reasons["thin 1.25"].selected
    assert not reasons["thick 5mm"].selected
    assert "thicker" in reasons["thick 5mm"].reason
    assert reasons["thick 5mm"].code == "not_preferred"
    assert reasons["scout"].code == "localizer"
    assert not reasons["scout"].selected
    assert {r.study for r in found.rows} == {reasons["thin 1.25"].study}
    vol = load_case(case)
    np.testing.assert_array_equal(vol.array, thin.array)
    assert vol.geometry == thin.geometry
    _, image = sitk_series(root / "a" / "b" / "c")
    np.testing.assert_allclose(image.GetOrigin(), vol.origin_lps, atol=1e-5)
    np.testing.assert_allclose(image.GetSpacing(), vol.geometry.spacing_xyz, rtol=1e-6)


def test_describe_table_has_no_patient_identifiers(mixed_study):
    root, _ = mixed_study
    rows = describe(root)
    text = format_table(rows) + repr(rows)
    assert "DOE" not in text
    assert "PID-12345" not in text
    assert "localizer" in text
    assert "yes" in text
    assert all(r.study.startswith("st_") for r in rows)


def test_load_ct_folder_selects_best(mixed_study):
    root, thin = mixed_study
    vol = load_ct(root)
    assert vol.shape == thin.shape
    assert vol.patient.name == "DOE^JANE"  # kept, but hidden from repr
    assert "DOE" not in repr(vol)


def test_one_case_per_study_and_image_files(tmp_path, make_volume):
    for k in range(2):
        write_dicom_series(make_volume(shape=(4, 8, 8), seed=k), tmp_path / f"study{k}")
    vol = make_volume(shape=(4, 8, 8))
    write_image(vol, tmp_path / "x" / "scan one.nii.gz")
    write_image(vol, tmp_path / "y" / "scan one.mha")
    write_image(vol, tmp_path / "z" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.1.mhd")
    found = find_cases(tmp_path)
    kinds = sorted(c.kind for c in found.cases)
    assert kinds == ["dicom", "dicom", "metaimage", "metaimage", "nifti"]
    ids = [c.case_id for c in found.cases]
    assert len(set(ids)) == len(ids)
    files = [c for c in found.cases if c.kind != "dicom"]
    assert [c.case_id for c in files] == [
        "img_" + hashlib.sha256(str(Path(c.source).resolve()).encode()).hexdigest()[:12]
        for c in files
    ], "image-file case ids are pseudonymous: a hash of the resolved path"
    assert found.cases == find_cases(tmp_path).cases, "stable across runs (--resume)"
    named = find_cases(tmp_path, keep_names=True)
    file_ids = sorted(c.case_id for c in named.cases if c.kind != "dicom")
    assert file_ids == ["1.3.6.1.4.1.14519.5.2.1.6279.6001.1", "scan_one", "scan_one_2"]
    assert [c.case_id for c in named.cases if c.kind == "dicom"] == [
        c.case_id for c in found.cases if c.kind == "dicom"
    ], "DICOM case ids are hashed with or without keep_names"
    mhd = next(c for c in found.cases if c.source.endswith(".mhd"))
    assert mhd.luna_uid == "1.3.6.1.4.1.14519.5.2.1.6279.6001.1" == mhd.series_uid
    assert not any(r.source.endswith(".zraw") for r in found.rows)
    assert all(c.n_slices == 4 for c in found.cases)


def test_rejects_non_ct_secondary_capture_coronal(tmp_path, make_volume, rot):
    study = pydicom.uid.generate_uid()
    vol = make_volume(shape=(4, 8, 8))
    write_dicom_series(vol, tmp_path / "mr", study_uid=study, modality="MR")
    write_dicom_series(
        vol,
        tmp_path / "sc",
        study_uid=study,
        extra_tags={"SOPClassUID": pydicom.uid.SecondaryCaptureImageStorage},
    )
    write_dicom_series(
        make_volume(shape=(4, 8, 8), direction=rot("x", 90.0)), tmp_path / "cor", study_uid=study
    )
    rows = {r.source.split("/")[-1]: r for r in describe(tmp_path)}
    assert rows["mr"].code == "modality"
    assert "MR" in rows["mr"].reason
    assert rows["sc"].code == "secondary_capture"
    assert rows["cor"].code == "not_axial"
    assert rows["cor"].orientation == "coronal"
    assert not find_cases(tmp_path).cases


def test_axial_tolerance(tmp_path, make_volume, rot):
    write_dicom_series(make_volume(shape=(4, 8, 8), direction=rot("x", 25.0)), tmp_path / "a")
    write_dicom_series(make_volume(shape=(4, 8, 8), direction=rot("x", 35.0)), tmp_path / "b")
    rows = {r.source.split("/")[-1]: r for r in describe(tmp_path)}
    assert rows["a"].selected
    assert rows["a"].orientation == "axial"
    assert rows["b"].code == "not_axial"
    assert rows["b"].orientation == "oblique"


def test_tie_breaks_most_slices(tmp_path, make_volume):
    study = pydicom.uid.generate_uid()
    write_dicom_series(make_volume(shape=(30, 8, 8)), tmp_path / "short", study_uid=study)
    write_dicom_series(make_volume(shape=(40, 8, 8)), tmp_path / "long", study_uid=study)
    found = find_cases(tmp_path)
    assert found.cases[0].n_slices == 40
    loser = next(r for r in found.rows if not r.selected)
    assert "fewer slices (30 vs 40)" in loser.reason


def test_missing_modality_rule(tmp_path, make_volume, caplog):
    ct_like = make_volume(shape=(4, 40, 48))
    write_dicom_series(ct_like, tmp_path / "ct", extra_tags={"Modality": None})
    mr_like = make_volume(shape=(4, 40, 48), array=np.full((4, 40, 48), 300, np.int16))
    write_dicom_series(mr_like, tmp_path / "mr", extra_tags={"Modality": None})
    with caplog.at_level(logging.WARNING, logger="medsnowball.io"):
        found = find_cases(tmp_path)
    rows = {r.source.split("/")[-1]: r for r in found.rows}
    assert rows["ct"].selected
    assert rows["ct"].modality == "?"
    assert rows["mr"].code == "no_modality_not_ct"
    assert "no Modality tag" in caplog.text
    vol = load_case(found.cases[0])
    assert any("no Modality tag" in w for w in vol.warnings)


def test_error_classes_for_folders(tmp_path, make_volume):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoSeriesFoundError, match="empty"):
        load_ct(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("x")
    (junk / "b").write_bytes(b"")
    with pytest.raises(NoSeriesFoundError, match=r"a\.txt"):
        load_ct(junk)
    mr = tmp_path / "mr"
    write_dicom_series(make_volume(shape=(4, 8, 8)), mr, modality="MR")
    with pytest.raises(UnsupportedModalityError, match="MR"):
        load_ct(mr)
    single = tmp_path / "single"
    write_dicom_series(make_volume(shape=(1, 8, 8)), single)
    with pytest.raises(InconsistentSeriesError, match="slice"):
        load_ct(single)
    with pytest.raises(FileNotFoundError):
        load_ct(tmp_path / "nope")
    with pytest.raises(CorruptFileError, match="0 bytes"):
        load_ct(junk / "b")
    assert isinstance(NoSeriesFoundError("x"), FileNotFoundError)


def test_single_file_loads_its_series(tmp_path, make_volume):
    vol = make_volume(shape=(6, 8, 8))
    files = write_dicom_series(vol, tmp_path / "s", file_names="shuffled")
    write_dicom_series(make_volume(shape=(3, 8, 8), seed=2), tmp_path / "s", file_names="uid")
    loaded = load_ct(files[2])
    np.testing.assert_array_equal(loaded.array, vol.array)
    (tmp_path / "lonely").mkdir()
    shutil.copy(files[0], tmp_path / "lonely" / "x.dcm")
    with pytest.raises(InconsistentSeriesError, match="1 slice"):
        load_ct(tmp_path / "lonely" / "x.dcm")


def test_load_ct_across_studies_takes_best_ranked(tmp_path, make_volume):
    write_dicom_series(make_volume(shape=(30, 8, 8), spacing=(2.0, 1.0, 1.0)), tmp_path / "a")
    write_dicom_series(make_volume(shape=(24, 8, 8), spacing=(1.0, 1.0, 1.0)), tmp_path / "b")
    assert len(find_cases(tmp_path).cases) == 2
    assert load_ct(tmp_path).spacing_zyx[0] == pytest.approx(1.0)


def test_series_without_uids(shared_data):
    folder = shared_data / "real" / "abdomen_dicom_jpeg2000"
    case = find_cases(folder).cases[0]
    assert case.series_uid is None
    assert case.luna_uid == case.case_id
    assert case.case_id.startswith("ct_")
    assert len(case.case_id) == 15


def test_header_cache_sees_rewritten_files(tmp_path, make_volume):
    vol = make_volume(shape=(3, 8, 8))
    write_dicom_series(vol, tmp_path)
    assert discover(tmp_path).series[0].modality == "CT"
    write_dicom_series(vol, tmp_path, modality="MR")  # same names, replaced atomically
    assert {s.modality for s in discover(tmp_path).series} == {"MR"}
