"""Write CT volumes and label images: DICOM CT series, NIfTI, MetaImage, NRRD.

All writes are atomic (see :mod:`medsnowball.core.atomic`): a killed process never
leaves a truncated file under its final name.

Geometry conventions follow :mod:`medsnowball.core.volume`: arrays ``(z, y, x)``,
world LPS millimetres, ``direction`` in SimpleITK's convention (column ``c`` = LPS unit
vector of index axis ``c`` in ``(i, j, k)`` order).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
import pydicom.uid
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset

from medsnowball.core.atomic import atomic_path
from medsnowball.core.volume import CTVolume, ImageGeometry

__all__ = ["IMAGE_SUFFIXES", "image_suffix", "write_dicom_series", "write_image"]

#: File suffixes :func:`write_image` (and the loaders) understand, longest first.
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mhd", ".mha", ".nrrd", ".nhdr")

CT_IMAGE_STORAGE = pydicom.uid.CTImageStorage
FileNaming = Literal["instance", "uid", "shuffled"]


def image_suffix(path: str | os.PathLike[str]) -> str | None:
    """Return the image-format suffix of ``path`` (``".nii.gz"``, ``".mha"``, ...) or None."""
    name = Path(path).name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def _fmt_ds(value: float) -> str:
    """Format a float for a DS element (max 16 characters)."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.8g}"
    return text


def _stored_values(
    hu: NDArray[Any], slope: float, intercept: float, pixel_representation: int
) -> NDArray[Any]:
    """Convert HU to stored pixel values of the requested representation (clipped)."""
    info = np.iinfo(np.int16 if pixel_representation else np.uint16)
    raw = np.rint((hu.astype(np.float64) - intercept) / slope)
    return np.clip(raw, info.min, info.max).astype(np.int16 if pixel_representation else np.uint16)


def _base_dataset(
    volume: CTVolume,
    *,
    study_uid: str,
    series_uid: str,
    frame_uid: str,
    series_description: str,
    series_number: int,
    modality: str,
    image_type: tuple[str, ...],
    patient_name: str,
    patient_id: str,
    rescale_intercept: float,
    rescale_slope: float,
    pixel_representation: int,
) -> Dataset:
    """Build the attributes shared by every slice of the series."""
    geom = volume.geometry
    _, ny, nx = geom.shape_zyx
    sz, sy, sx = geom.spacing_zyx
    acq = volume.acquisition
    now = _dt.datetime.now()

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(image_type)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.SeriesDate = ds.StudyDate
    ds.ContentDate = ds.StudyDate
    ds.StudyTime = now.strftime("%H%M%S")
    ds.SeriesTime = ds.StudyTime
    ds.ContentTime = ds.StudyTime
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = acq.manufacturer or ""
    if acq.model:
        ds.ManufacturerModelName = acq.model
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.SliceThickness = _fmt_ds(acq.slice_thickness_mm or sz)
    ds.SpacingBetweenSlices = _fmt_ds(sz)
    if acq.kvp is not None:
        ds.KVP = _fmt_ds(acq.kvp)
    if acq.kernel:
        ds.ConvolutionKernel = acq.kernel
    if acq.contrast:
        ds.ContrastBolusAgent = "CONTRAST"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = int(series_number)
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    d = np.asarray(geom.direction, dtype=np.float64)
    ds.ImageOrientationPatient = [_fmt_ds(v) for v in (*d[:, 0], *d[:, 1])]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    ds.PixelSpacing = [_fmt_ds(sy), _fmt_ds(sx)]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = int(pixel_representation)
    ds.RescaleIntercept = _fmt_ds(rescale_intercept)
    ds.RescaleSlope = _fmt_ds(rescale_slope)
    ds.RescaleType = "HU"
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    return ds


def _file_names(n: int, sop_uids: list[str], file_names: FileNaming, seed: int | None) -> list[str]:
    if file_names == "instance":
        return [f"IM{k + 1:05d}.dcm" for k in range(n)]
    if file_names == "uid":
        return [f"{uid}.dcm" for uid in sop_uids]
    if file_names == "shuffled":
        rng = np.random.default_rng(seed)
        names: set[str] = set()
        out: list[str] = []
        while len(out) < n:
            name = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 10))
            if name not in names:
                names.add(name)
                out.append(name)
        return out
    raise ValueError(f"file_names must be 'instance', 'uid' or 'shuffled', got {file_names!r}.")


def write_dicom_series(
    volume: CTVolume,
    folder: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    study_uid: str | None = None,
    series_description: str = "",
    series_number: int = 1,
    modality: str = "CT",
    file_names: FileNaming = "instance",
    seed: int | None = 0,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    patient_name: str = "ANONYMOUS^",
    patient_id: str = "ANON",
    rescale_intercept: float = -1024.0,
    rescale_slope: float = 1.0,
    pixel_representation: int = 0,
    transfer_syntax: str = pydicom.uid.ExplicitVRLittleEndian,
    frame_of_reference_uid: str | None = None,
    extra_tags: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a volume as a CT Image Storage series, one file per z slice.

    Slice ``k`` (``volume.array[k]``, shape ``(y, x)``) is placed at
    ``origin_lps + direction[:, 2] * spacing_z * k``; ImageOrientationPatient is
    ``direction[:, 0]`` (row direction, +i) then ``direction[:, 1]`` (column direction, +j);
    PixelSpacing is ``spacing_y \\ spacing_x``. HU are stored as
    ``round((HU - intercept) / slope)``, clipped to the 16-bit range of
    ``pixel_representation`` (0 unsigned, 1 signed).

    Args:
        volume: The CT to write; its acquisition metadata fill KVP, Manufacturer,
            ConvolutionKernel and SliceThickness (else the z spacing).
        folder: Output folder (created if missing).
        series_uid: SeriesInstanceUID; generated if None.
        study_uid: StudyInstanceUID; generated if None.
        series_description: SeriesDescription.
        series_number: SeriesNumber.
        modality: Modality value (write e.g. ``"MR"`` to craft non-CT test input).
        file_names: ``"instance"`` (``IM00001.dcm``...), ``"uid"`` (``<SOPInstanceUID>.dcm``)
            or ``"shuffled"`` (random 10-character names without extension, unrelated to
            slice order; deterministic for a given ``seed``).
        seed: Seed of the ``"shuffled"`` names.
        image_type: ImageType values.
        patient_name: PatientName (keep the anonymous default unless testing).
        patient_id: PatientID.
        rescale_intercept: RescaleIntercept of every slice.
        rescale_slope: RescaleSlope of every slice.
        pixel_representation: 0 for unsigned, 1 for signed 16-bit pixels.
        transfer_syntax: Transfer syntax UID; compressed syntaxes (RLE Lossless, JPEG-LS,
            JPEG 2000) are encoded with pydicom's encoders (need pyjpegls / pylibjpeg;
            OpenJPEG needs at least 32 rows and columns).
        frame_of_reference_uid: FrameOfReferenceUID; generated if None.
        extra_tags: DICOM keywords set on every slice after the defaults, e.g.
            ``{"PixelPaddingValue": 0}``. A callable value is called with the slice index
            ``k`` and its result is used (e.g. to tilt ``ImagePositionPatient``); a value of
            ``None`` deletes the element.

    Returns:
        Paths of the written files, in slice order (``k = 0`` first).

    Raises:
        ValueError: For an unknown ``file_names`` mode or ``pixel_representation``.
    """
    if pixel_representation not in (0, 1):
        raise ValueError(f"pixel_representation must be 0 or 1, got {pixel_representation}.")
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    geom = volume.geometry
    nz = geom.shape_zyx[0]
    study_uid = study_uid or pydicom.uid.generate_uid()
    series_uid = series_uid or pydicom.uid.generate_uid()
    frame_uid = frame_of_reference_uid or pydicom.uid.generate_uid()
    base = _base_dataset(
        volume,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_uid=frame_uid,
        series_description=series_description,
        series_number=series_number,
        modality=modality,
        image_type=tuple(image_type),
        patient_name=patient_name,
        patient_id=patient_id,
        rescale_intercept=rescale_intercept,
        rescale_slope=rescale_slope,
        pixel_representation=pixel_representation,
    )
    sop_uids = [str(pydicom.uid.generate_uid()) for _ in range(nz)]
    names = _file_names(nz, sop_uids, file_names, seed)
    normal = np.asarray(geom.direction)[:, 2] * geom.spacing_zyx[0]
    origin = np.asarray(geom.origin_lps, dtype=np.float64)
    ts = pydicom.uid.UID(transfer_syntax)
    paths: list[Path] = []
    for k in range(nz):
        ds = Dataset()
        ds.update(base)
        ds.SOPInstanceUID = sop_uids[k]
        ds.InstanceNumber = k + 1
        pos = origin + normal * k
        ds.ImagePositionPatient = [_fmt_ds(v) for v in pos]
        ds.SliceLocation = _fmt_ds(float(pos[2]))
        pixels = _stored_values(
            np.asarray(volume.array[k]), rescale_slope, rescale_intercept, pixel_representation
        )
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        for key, value in (extra_tags or {}).items():
            v = value(k) if callable(value) else value
            if v is None:
                if key in ds:
                    delattr(ds, key)
            else:
                setattr(ds, key, v)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        if ts.is_compressed:
            ds.compress(ts, generate_instance_uid=False)
        elif ts != pydicom.uid.ExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ts
        target = out_dir / names[k]
        with atomic_path(target) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(target)
    return paths


def _to_sitk(array: NDArray[Any], geometry: ImageGeometry) -> Any:
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if tuple(a.shape) != geometry.shape_zyx:
        raise ValueError(
            f"Array shape {a.shape} does not match the geometry's shape {geometry.shape_zyx}."
        )
    img = sitk.GetImageFromArray(np.ascontiguousarray(a))
    img.SetSpacing(tuple(float(v) for v in geometry.spacing_xyz))
    img.SetOrigin(tuple(float(v) for v in geometry.origin_lps))
    img.SetDirection(tuple(float(v) for v in np.asarray(geometry.direction).ravel()))
    return img


def _write_metaimage_pair(image: Any, final: Path, compress: bool) -> None:
    """Write ``.mhd`` + data file so both appear atomically under their final names."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        staged = tmp_dir / final.name
        sitk.WriteImage(image, str(staged), useCompression=compress)
        for item in sorted(tmp_dir.iterdir(), key=lambda p: p.suffix.lower() == ".mhd"):
            os.replace(item, final.parent / item.name)  # data file first, header last
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_image(
    volume_or_array: CTVolume | NDArray[Any],
    path: str | os.PathLike[str],
    geometry: ImageGeometry | None = None,
    *,
    compress: bool = True,
) -> Path:
    """Write a CT volume or a label array as NIfTI, MetaImage or NRRD (by suffix).

    SimpleITK writes the file, so the LPS geometry is stored correctly in every format
    (NIfTI's RAS sform/qform included). The pixel type is kept (``bool`` becomes
    ``uint8``; ``uint8``/``uint16`` labels stay as they are).

    Args:
        volume_or_array: A :class:`CTVolume`, or an array ``(z, y, x)`` with ``geometry``.
        path: Output path ending in ``.nii``, ``.nii.gz``, ``.mhd``, ``.mha``, ``.nrrd``
            or ``.nhdr``. ``.mhd`` also writes its ``.raw``/``.zraw`` data file beside it.
        geometry: Required for a plain array; ignored for a CTVolume.
        compress: Compress the pixel data where the format allows (ignored for ``.nii``).

    Returns:
        The path written.

    Raises:
        ValueError: For an unknown suffix, a missing geometry or a shape mismatch.
    """
    target = Path(path)
    suffix = image_suffix(target)
    if suffix is None:
        raise ValueError(
            f"Cannot tell the image format of {target}: expected one of {IMAGE_SUFFIXES}."
        )
    if isinstance(volume_or_array, CTVolume):
        array: NDArray[Any] = np.asarray(volume_or_array.array)
        geom = volume_or_array.geometry
    else:
        if geometry is None:
            raise ValueError("write_image needs a geometry when given a plain array.")
        array = np.asarray(volume_or_array)
        geom = geometry
    image = _to_sitk(array, geom)
    if suffix in (".mhd", ".nhdr"):
        _write_metaimage_pair(image, target, compress)
        return target
    with atomic_path(target) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress and suffix != ".nii")
    return target
