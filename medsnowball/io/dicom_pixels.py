"""Decode DICOM pixel data of one instance and convert it to Hounsfield units.

Uncompressed little-endian files take a fast path: the pixel bytes are read straight
from the offset recorded during header parsing (no second header parse). Everything else
(compressed transfer syntaxes, big-endian, odd layouts) goes through pydicom's pixel
handlers (pylibjpeg / openjpeg / libjpeg, pyjpegls, RLE, pillow).

HU conversion (:func:`to_hu`): ``HU = stored * RescaleSlope + RescaleIntercept`` per
frame; stored values equal to PixelPaddingValue (or inside the padding range) become air
(-1024); everything is clipped at -1024 from below (so the -2000/-3024 fill that
scanners put outside the reconstruction circle becomes air too).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pydicom
import pydicom.uid
from numpy.typing import NDArray

from medsnowball.core.errors import CorruptFileError, MissingCodecError
from medsnowball.io.dicom_headers import DicomHeader, FrameInfo

__all__ = [
    "AIR_HU",
    "INT16_MAX",
    "check_codec",
    "codec_available",
    "decode_frames",
    "raw_dtype",
    "to_hu",
]

AIR_HU = -1024
INT16_MAX = 32767
_INSTALL_HINT = 'pip install "medsnowball[dicom]"'


def codec_available(transfer_syntax: str) -> bool:
    """True when pydicom has a working decoder for ``transfer_syntax``.

    Uncompressed syntaxes are always available. Raises nothing: an unknown syntax is
    reported as unavailable.
    """
    uid = pydicom.uid.UID(transfer_syntax)
    if not uid.is_compressed:
        return True
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return False
    return bool(decoder.is_available)


def check_codec(header: DicomHeader) -> None:
    """Raise :class:`MissingCodecError` when the file's pixel data cannot be decoded here.

    Args:
        header: Header of the file to check.

    Raises:
        MissingCodecError: Names the transfer syntax, the file and the install command.
    """
    if codec_available(header.transfer_syntax):
        return
    uid = pydicom.uid.UID(header.transfer_syntax)
    raise MissingCodecError(
        f"{header.path}: pixel data use the '{uid.name}' transfer syntax ({uid}), which no "
        f"installed decoder handles. Install the DICOM decoders with: {_INSTALL_HINT} "
        "(pylibjpeg + openjpeg/libjpeg plugins and pyjpegls)."
    )


def raw_dtype(header: DicomHeader) -> np.dtype[Any]:
    """Numpy dtype of the stored pixel values (little-endian)."""
    if header.bits_allocated not in (8, 16, 32):
        raise CorruptFileError(
            f"{header.path}: BitsAllocated {header.bits_allocated} is not supported for CT "
            "(expected 8, 16 or 32)."
        )
    kind = "i" if header.pixel_representation else "u"
    return np.dtype(f"<{kind}{header.bits_allocated // 8}")


def _fix_bits(raw: NDArray[Any], header: DicomHeader) -> NDArray[Any]:
    """Sign-extend (signed) or mask (unsigned) values when BitsStored < BitsAllocated."""
    unused = header.bits_allocated - header.bits_stored
    if unused <= 0 or header.bits_stored <= 0:
        return raw
    if header.pixel_representation:
        return (raw << unused) >> unused
    mask = np.array((1 << header.bits_stored) - 1, dtype=raw.dtype)
    return raw & mask


def _read_native(header: DicomHeader) -> NDArray[Any]:
    """Read uncompressed frames from the recorded offset: array (frames, rows, cols)."""
    dtype = raw_dtype(header)
    n_values = header.number_of_frames * header.rows * header.columns
    expected = n_values * dtype.itemsize
    offset = header.pixel_data_offset
    if offset is None:
        raise CorruptFileError(f"{header.path}: no pixel data offset recorded.")
    implicit = header.transfer_syntax == pydicom.uid.ImplicitVRLittleEndian
    with open(header.path, "rb") as fh:
        fh.seek(offset)
        head = fh.read(8 if implicit else 12)
        if implicit:
            length = int.from_bytes(head[4:8], "little") if len(head) == 8 else -1
        elif len(head) == 12 and head[4:6] in (b"OW", b"OB"):
            length = int.from_bytes(head[8:12], "little")
        elif len(head) >= 8:
            length = int.from_bytes(head[6:8], "little")
            fh.seek(offset + 8)
        else:
            length = -1
        # An odd byte count is padded to even length (PS3.5 7.1.1): one extra byte is fine.
        # More bytes than the header's frames, size and BitsAllocated need means those
        # header values do not describe the data (e.g. BitsAllocated 8 on 16-bit pixels):
        # reading it anyway would make up an image.
        if length == 0xFFFFFFFF or length < expected or length > expected + (expected % 2):
            raise CorruptFileError(
                f"{header.path}: Pixel Data element holds {length} bytes, expected {expected} "
                f"for {header.number_of_frames} frame(s) of {header.rows}x{header.columns} "
                f"at {header.bits_allocated} bits. The header does not match the pixel data "
                "(damaged file or wrong BitsAllocated/Rows/Columns/NumberOfFrames); "
                "re-export it."
            )
        buf = np.empty(n_values, dtype=dtype)
        got = fh.readinto(buf.data.cast("B"))
    if got != expected:
        raise CorruptFileError(
            f"{header.path}: pixel data truncated ({got} of {expected} bytes present). "
            "The file was cut short (interrupted copy?); re-export or re-copy it."
        )
    return buf.reshape(header.number_of_frames, header.rows, header.columns)


def _read_with_pydicom(header: DicomHeader) -> NDArray[Any]:
    """Decode all frames through pydicom's pixel handlers: array (frames, rows, cols)."""
    check_codec(header)
    try:
        ds = pydicom.dcmread(header.path, force=True)
        arr = np.asarray(ds.pixel_array)
    except (ValueError, RuntimeError, EOFError, OSError, KeyError, AttributeError) as exc:
        if not codec_available(header.transfer_syntax):
            check_codec(header)
        raise CorruptFileError(
            f"{header.path}: pixel data cannot be decoded ({type(exc).__name__}: {exc}). "
            "The file is damaged or truncated; re-export it."
        ) from exc
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape != (header.number_of_frames, header.rows, header.columns):
        raise CorruptFileError(
            f"{header.path}: decoded pixel array has shape {arr.shape}, expected "
            f"({header.number_of_frames}, {header.rows}, {header.columns})."
        )
    return arr


def decode_frames(header: DicomHeader) -> NDArray[Any]:
    """Decode the stored (not yet rescaled) pixel values of one instance.

    Args:
        header: Header of the instance, from :func:`~medsnowball.io.dicom_headers.read_header`.

    Returns:
        Array ``(frames, rows, cols)`` of stored values (integer dtype).

    Raises:
        MissingCodecError: No decoder for the file's transfer syntax.
        CorruptFileError: Pixel data missing, truncated or undecodable (names the file).
    """
    if header.samples_per_pixel != 1:
        raise CorruptFileError(
            f"{header.path}: {header.samples_per_pixel} samples per pixel (colour image); "
            "CT images are greyscale."
        )
    if os.path.getsize(header.path) == 0:
        raise CorruptFileError(f"{header.path} is empty (0 bytes).")
    if header.is_native and header.pixel_data_offset is not None:
        raw = _read_native(header)
        return _fix_bits(raw, header)
    return _read_with_pydicom(header)


def _padding_mask(raw: NDArray[Any], header: DicomHeader) -> NDArray[np.bool_] | None:
    if header.padding_value is None:
        return None
    bits = raw.dtype.itemsize * 8

    def wrap(v: int) -> int:
        if raw.dtype.kind == "i" and v >= 1 << (bits - 1):
            return v - (1 << bits)
        if raw.dtype.kind == "u" and v < 0:
            return v + (1 << bits)
        return v

    pad = wrap(header.padding_value)
    if header.padding_range_limit is None:
        return np.asarray(raw == pad)
    lo, hi = sorted((pad, wrap(header.padding_range_limit)))
    return np.asarray((raw >= lo) & (raw <= hi))


def to_hu(raw: NDArray[Any], frame: FrameInfo, header: DicomHeader, out: NDArray[Any]) -> None:
    """Convert one frame of stored values to HU, writing into ``out``.

    Args:
        raw: Stored values ``(rows, cols)``.
        frame: The frame's rescale parameters.
        header: The instance header (padding value, pixel representation).
        out: Destination ``(rows, cols)``, int16 (only when slope is 1 and the intercept
            is integral) or float32. int16 results are clipped to ``[-1024, 32767]``.
    """
    pad = _padding_mask(raw, header)
    if out.dtype == np.int16:
        tmp = np.add(raw, np.int32(np.rint(frame.intercept)), dtype=np.int32)
        np.clip(tmp, AIR_HU, INT16_MAX, out=out, casting="unsafe")
        if pad is not None:
            out[pad] = AIR_HU
        return
    np.multiply(raw, np.float32(frame.slope), out=out, dtype=np.float32)
    out += np.float32(frame.intercept)
    np.maximum(out, np.float32(AIR_HU), out=out)
    if pad is not None:
        out[pad] = AIR_HU
