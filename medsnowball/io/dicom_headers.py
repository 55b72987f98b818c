"""Header-only reading of DICOM files into small, identifier-free records.

:func:`read_header` parses one file up to (not including) its pixel data and returns a
:class:`DicomHeader`: the UIDs, geometry, pixel format and non-identifying acquisition
fields that discovery, selection and loading need. Patient names and IDs are never
copied into it.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pydicom.uid
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from medsnowball.core.errors import CorruptFileError

__all__ = [
    "CT_SOP_CLASSES",
    "HEADER_CACHE_SIZE",
    "SECONDARY_CAPTURE_PREFIX",
    "DicomHeader",
    "FrameInfo",
    "NotDicomError",
    "clear_header_cache",
    "read_header",
    "read_header_cached",
]

#: SOP classes that are CT images (single-frame, enhanced, legacy converted enhanced).
CT_SOP_CLASSES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.840.10008.5.1.4.1.1.2.1",
        "1.2.840.10008.5.1.4.1.1.2.2",
    }
)
#: All Secondary Capture Image Storage SOP classes start with this prefix.
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

_NATIVE_SYNTAXES = frozenset(
    {pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian}
)


class NotDicomError(ValueError):
    """Raised by :func:`read_header` for a file that is not DICOM at all (internal)."""


@dataclass(frozen=True)
class FrameInfo:
    """Position and rescale of one frame (a slice) of a DICOM instance.

    Attributes:
        position: ImagePositionPatient (LPS mm) or None when absent.
        orientation: ImageOrientationPatient (row cosines, then column cosines) or None.
        slope: RescaleSlope (1.0 when absent).
        intercept: RescaleIntercept (0.0 when absent).
        pixel_spacing: (row spacing, column spacing) in mm = (y, x), or None.
        thickness: SliceThickness in mm, or None.
    """

    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    slope: float
    intercept: float
    pixel_spacing: tuple[float, float] | None
    thickness: float | None


@dataclass(frozen=True)
class DicomHeader:
    """What medsnowball needs from one DICOM file's header (no patient identifiers).

    Attributes:
        path: File path.
        study_uid: StudyInstanceUID ("" when absent).
        series_uid: SeriesInstanceUID ("" when absent).
        sop_class_uid: SOPClassUID ("" when absent).
        modality: Modality, or None when the tag is missing or empty.
        image_type: ImageType values, upper-case.
        series_description: SeriesDescription ("" when absent).
        series_number: SeriesNumber or None.
        rows: Rows (0 for non-image objects).
        columns: Columns.
        number_of_frames: NumberOfFrames (1 for single-frame).
        frames: One :class:`FrameInfo` per frame (per-frame functional groups resolved).
        transfer_syntax: TransferSyntaxUID of the file.
        bits_allocated: BitsAllocated.
        bits_stored: BitsStored.
        pixel_representation: 0 unsigned, 1 signed.
        samples_per_pixel: SamplesPerPixel.
        photometric: PhotometricInterpretation.
        padding_value: PixelPaddingValue as stored (None when absent).
        padding_range_limit: PixelPaddingRangeLimit (None when absent).
        pixel_data_offset: File offset of the Pixel Data element for native (uncompressed)
            little-endian files, else None. Used by the fast decoding path.
        has_pixel_data: Whether a Pixel Data element follows the header.
        manufacturer: Manufacturer.
        model: ManufacturerModelName.
        kernel: ConvolutionKernel (first value).
        kvp: KVP.
        contrast: True when ContrastBolusAgent is set.
        sop_instance_uid: SOPInstanceUID ("" when absent).
    """

    path: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    modality: str | None
    image_type: tuple[str, ...]
    series_description: str
    series_number: int | None
    rows: int
    columns: int
    number_of_frames: int
    frames: tuple[FrameInfo, ...]
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    padding_value: int | None
    padding_range_limit: int | None
    pixel_data_offset: int | None
    has_pixel_data: bool
    manufacturer: str | None
    model: str | None
    kernel: str | None
    kvp: float | None
    contrast: bool | None
    sop_instance_uid: str = ""

    @property
    def is_native(self) -> bool:
        """True when the pixel data are uncompressed little-endian."""
        return self.transfer_syntax in _NATIVE_SYNTAXES

    @property
    def frame_bytes(self) -> int:
        """Bytes of one uncompressed frame."""
        return self.rows * self.columns * self.samples_per_pixel * (self.bits_allocated // 8)


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        return None
    return vals


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else ""
    text = str(value).strip()
    return text or None


def _seq_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    if seq is None or len(seq) == 0:
        return None
    item: Dataset = seq[0]
    return item


def _frame_from(groups: list[Dataset | None], top: Dataset) -> FrameInfo:
    """Resolve one frame's attributes from functional groups, falling back to ``top``."""

    def find(seq_kw: str, attr: str) -> Any:
        for g in groups:
            if g is None:
                continue
            item = _seq_item(g, seq_kw)
            if item is not None and attr in item:
                return item.get(attr)
        return top.get(attr)

    pos = _floats(find("PlanePositionSequence", "ImagePositionPatient"), 3)
    ori = _floats(find("PlaneOrientationSequence", "ImageOrientationPatient"), 6)
    sp = _floats(find("PixelMeasuresSequence", "PixelSpacing"), 2)
    slope = _float(find("PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _float(find("PixelValueTransformationSequence", "RescaleIntercept"))
    return FrameInfo(
        position=pos,  # type: ignore[arg-type]
        orientation=ori,  # type: ignore[arg-type]
        slope=1.0 if slope is None or slope == 0 else slope,
        intercept=0.0 if intercept is None else intercept,
        pixel_spacing=sp,  # type: ignore[arg-type]
        thickness=_float(find("PixelMeasuresSequence", "SliceThickness")),
    )


def _frames(ds: Dataset, n_frames: int) -> tuple[FrameInfo, ...]:
    shared = _seq_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) == n_frames:
        return tuple(_frame_from([item, shared], ds) for item in per_frame)
    one = _frame_from([shared], ds)
    return tuple(one for _ in range(n_frames))


#: What parsing a hostile header may raise: pydicom reads values lazily, so malformed
#: elements (unknown VR, odd value lengths, broken sequences) surface as any of these when
#: a value is first touched. Each becomes a :class:`CorruptFileError` naming the file.
_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError,
    BytesLengthException,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    NotImplementedError,
    OverflowError,
    RecursionError,
    UnicodeError,
    struct.error,
)
#: Smallest number of bytes one frame can take in a file (an encapsulated fragment's
#: item tag and length); a NumberOfFrames beyond ``file size / this`` is impossible.
_MIN_FRAME_BYTES = 8


def _frame_count(ds: Dataset, file_size: int, path: Path) -> int:
    """NumberOfFrames, checked against the file size before anything is allocated for it."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames < 1 or n_frames > max(1, file_size // _MIN_FRAME_BYTES):
        raise CorruptFileError(
            f"{path}: NumberOfFrames is {n_frames}, impossible for a file of {file_size} "
            "bytes; the header is corrupt. Re-export the series or remove this file."
        )
    return n_frames


def _looks_like_dicom(head: bytes) -> bool:
    """True for a Part-10 preamble or a raw little-endian data set starting at group 0002/0008."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00"


def read_header(path: str | os.PathLike[str]) -> DicomHeader:
    """Read the header of one DICOM file (pixel data are not read).

    Args:
        path: File to read.

    Returns:
        The parsed :class:`DicomHeader`.

    Raises:
        NotDicomError: The file is not DICOM (no ``DICM`` preamble, no plausible raw
            data set); the message is the reason to log.
        CorruptFileError: The file is empty, or is DICOM but its header cannot be parsed.
    """
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise CorruptFileError(f"{p} is empty (0 bytes); expected a DICOM file.")
    with open(p, "rb") as fh:
        head = fh.read(132)
        if not _looks_like_dicom(head):
            raise NotDicomError("not a DICOM file (no 'DICM' marker)")
        fh.seek(0)
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
        except _PARSE_ERRORS as exc:
            raise CorruptFileError(
                f"{p}: DICOM header cannot be parsed ({type(exc).__name__}: {exc})."
            ) from exc
        data_offset = fh.tell()
        tail = fh.read(4)
    try:
        return _parse_header(ds, p, size, data_offset, tail)
    except CorruptFileError:
        raise
    except _PARSE_ERRORS as exc:
        raise CorruptFileError(
            f"{p}: DICOM header has invalid values ({type(exc).__name__}: {exc})."
        ) from exc


def _parse_header(ds: Dataset, p: Path, size: int, data_offset: int, tail: bytes) -> DicomHeader:
    """The :class:`DicomHeader` of a parsed data set (may raise any of ``_PARSE_ERRORS``)."""
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts == pydicom.uid.DeflatedExplicitVRLittleEndian:
        has_pixels = True  # the file position is inside the deflated stream; assume pixels
    else:
        has_pixels = len(tail) == 4 and tail in (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00")
    if not ts:
        ts = pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else ""
        ts = ts or pydicom.uid.ExplicitVRLittleEndian
    n_frames = _frame_count(ds, size, p)
    rows = int(ds.get("Rows", 0) or 0)
    cols = int(ds.get("Columns", 0) or 0)
    frames = _frames(ds, n_frames) if rows and cols else ()
    series_number = ds.get("SeriesNumber")
    kernel = ds.get("ConvolutionKernel")
    pad = ds.get("PixelPaddingValue")
    pad_limit = ds.get("PixelPaddingRangeLimit")
    header = DicomHeader(
        path=str(p),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
        modality=_str(ds.get("Modality")),
        image_type=tuple(str(v).strip().upper() for v in (ds.get("ImageType") or [])),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        series_number=int(series_number) if series_number not in (None, "") else None,
        rows=rows,
        columns=cols,
        number_of_frames=n_frames,
        frames=frames,
        transfer_syntax=ts,
        bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16),
        pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2") or ""),
        padding_value=int(pad) if isinstance(pad, int | float) else None,
        padding_range_limit=int(pad_limit) if isinstance(pad_limit, int | float) else None,
        pixel_data_offset=data_offset if has_pixels and ts in _NATIVE_SYNTAXES else None,
        has_pixel_data=has_pixels,
        manufacturer=_str(ds.get("Manufacturer")),
        model=_str(ds.get("ManufacturerModelName")),
        kernel=_str(kernel),
        kvp=_float(ds.get("KVP")),
        contrast=bool(_str(ds.get("ContrastBolusAgent"))) or None,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
    )
    return header


#: Headers kept by :func:`read_header_cached` (least recently used dropped first).
HEADER_CACHE_SIZE = 50_000
_cache: OrderedDict[str, tuple[tuple[int, int, int], DicomHeader]] = OrderedDict()
_cache_lock = threading.Lock()


def read_header_cached(path: str | os.PathLike[str]) -> DicomHeader:
    """:func:`read_header` with an in-process cache keyed by path, size, mtime and inode.

    Discovery fills it, so loading a case right after :func:`find_cases` in the same
    process does not parse every header a second time. A file changed on disk (other
    size or modification time) is read again.

    Raises:
        NotDicomError, CorruptFileError: As :func:`read_header`.
    """
    key = os.path.abspath(path)
    st = os.stat(key)
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            _cache.move_to_end(key)
            return hit[1]
    header = read_header(path)
    with _cache_lock:
        _cache[key] = (stamp, header)
        while len(_cache) > HEADER_CACHE_SIZE:
            _cache.popitem(last=False)
    return header


def clear_header_cache() -> None:
    """Forget every header cached by :func:`read_header_cached`."""
    with _cache_lock:
        _cache.clear()
