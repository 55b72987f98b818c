"""Files of one series that share a SOPInstanceUID are refused (SEG/SR would mis-reference)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ct_slice_files import write_ct_slice
from pydicom.uid import generate_uid

from medsnowball.core.errors import InconsistentSeriesError
from medsnowball.io.dicom_headers import clear_header_cache, read_header
from medsnowball.io.dicom_loader import load_dicom_series

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "MRN-445566"
SERIES_UID = "1.2.826.0.1.3680043.8.498.77.1"


def _series(folder: Path, sop_uids: list[str]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"IM{k:04d}.dcm" for k in range(len(sop_uids))]
    for k, (path, uid) in enumerate(zip(paths, sop_uids, strict=True)):
        write_ct_slice(
            path,
            k,
            series_uid=SERIES_UID,
            study_uid="1.2.826.0.1.3680043.8.498.77",
            sop_uid=uid,
            patient=(PATIENT_NAME, PATIENT_ID),
            inner_hu=40 + k,  # every slice differs
        )
    clear_header_cache()
    return paths


def test_header_carries_the_sop_instance_uid(tmp_path: Path) -> None:
    uid = generate_uid()
    (path,) = _series(tmp_path / "s", [uid])
    assert read_header(path).sop_instance_uid == uid


def test_two_files_sharing_a_sop_instance_uid_are_refused(tmp_path: Path) -> None:
    uids = [generate_uid() for _ in range(4)]
    uids[2] = uids[1]  # slices 1 and 2: different positions and pixels, one UID
    paths = _series(tmp_path / "series", uids)
    with pytest.raises(InconsistentSeriesError) as info:
        load_dicom_series([str(p) for p in paths])
    msg = str(info.value)
    assert "SOPInstanceUID" in msg
    assert str(paths[1]) in msg
    assert str(paths[2]) in msg
    assert str(paths[0]) not in msg  # only the offending files are named
    assert "2 files" in msg
    assert "Re-export" in msg
    for secret in (PATIENT_NAME, PATIENT_ID, "Doe", "445566"):
        assert secret not in msg


def test_unique_uids_and_an_identical_copy_still_load(tmp_path: Path) -> None:
    paths = _series(tmp_path / "series", [generate_uid() for _ in range(4)])
    copy = tmp_path / "series" / "IM0001_copy.dcm"
    shutil.copyfile(paths[1], copy)  # same UID, position and pixels: a harmless duplicate
    clear_header_cache()
    vol = load_dicom_series([str(p) for p in [*paths, copy]], canonical=False)
    assert vol.shape[0] == 4
    assert any("duplicate" in w for w in vol.warnings)
    assert len(set(vol.source_files)) == 4
