"""Files of one series that share a SOPInstanceUID are refused (SEG/SR would mis-reference)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medsnowball.core.errors import InconsistentSeriesError
from medsnowball.io.dicom_headers import clear_header_cache, read_header
from medsnowball.io.dicom_loader import load_dicom_series

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "MRN-445566"
SERIES_UID = "1.2.826.0.1.3680043.8.498.77.1"


def _slice(path: Path, k: int, sop_uid: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    ds.SeriesInstanceUID = SERIES_UID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.Modality = "CT"
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 2.0
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    arr = np.full((16, 16), -1000, np.int16)
    arr[4:12, 4:12] = 40 + k  # every slice differs
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _series(folder: Path, sop_uids: list[str]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"IM{k:04d}.dcm" for k in range(len(sop_uids))]
    for k, (path, uid) in enumerate(zip(paths, sop_uids, strict=True)):
        _slice(path, k, uid)
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
