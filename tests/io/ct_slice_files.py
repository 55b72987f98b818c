"""Tiny single-frame CT DICOM files (16 x 16, explicit VR little endian) for io tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_ct_slice(
    path: Path,
    k: int,
    *,
    series_uid: str,
    study_uid: str,
    sop_uid: str | None = None,
    z: float | None = None,
    thickness: float | None = 2.0,
    series_number: int | None = None,
    patient: tuple[str, str] | None = None,
    inner_hu: int = 40,
) -> None:
    """Write slice ``k`` of a series: air with a ``inner_hu`` square, at z = 2 k mm.

    Args:
        path: File to write.
        k: Slice index (InstanceNumber k + 1).
        series_uid: SeriesInstanceUID.
        study_uid: StudyInstanceUID.
        sop_uid: SOPInstanceUID (default: a new one).
        z: Slice position (default ``2 k``).
        thickness: SliceThickness, or ``None`` to leave it out.
        series_number: SeriesNumber, or ``None`` to leave it out.
        patient: ``(PatientName, PatientID)`` to write, or ``None``.
        inner_hu: Value of the 8 x 8 square in the middle.
    """
    sop = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    if patient is not None:
        ds.PatientName, ds.PatientID = patient
    ds.Modality = "CT"
    if series_number is not None:
        ds.SeriesNumber = series_number
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(2.0 * k if z is None else z)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    if thickness is not None:
        ds.SliceThickness = thickness
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    arr = np.full((16, 16), -1000, np.int16)
    arr[4:12, 4:12] = inner_hu
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
