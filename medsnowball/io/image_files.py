"""Load NIfTI, MetaImage and NRRD files through SimpleITK (which converts NIfTI RAS to LPS).

Pixel types: integer images become int16 HU (clipped to ``[-1024, 32767]``), floating
point images float32 (clipped at -1024 from below), matching the DICOM loader.
The header is read first (``ReadImageInformation``) so that an absurd size is refused
with :class:`ImageTooLargeError` before any pixel buffer is allocated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medsnowball.core.errors import CorruptFileError, ImageTooLargeError, InconsistentSeriesError
from medsnowball.core.volume import CTVolume, ImageGeometry
from medsnowball.io.dicom_loader import DEFAULT_MAX_BYTES
from medsnowball.io.dicom_pixels import AIR_HU, INT16_MAX
from medsnowball.io.orient import to_canonical
from medsnowball.io.writers import image_suffix

__all__ = ["ImageInfo", "image_kind", "load_image", "probe_image"]

_KINDS = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mhd": "metaimage",
    ".mha": "metaimage",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}


def image_kind(path: str | os.PathLike[str]) -> str | None:
    """``"nifti"``, ``"metaimage"``, ``"nrrd"`` from the suffix, or None."""
    suffix = image_suffix(path)
    return _KINDS.get(suffix) if suffix else None


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of an image file (no pixels read).

    Attributes:
        size_xyz: Voxels along x, y, z (SimpleITK order; trailing 1s of 4-D kept out).
        spacing_xyz: Voxel size in mm along x, y, z.
        n_bytes: Bytes the decoded image would take in its stored pixel type.
        pixel_type: SimpleITK pixel type name.
    """

    size_xyz: tuple[int, ...]
    spacing_xyz: tuple[float, ...]
    n_bytes: int
    pixel_type: str


def _nifti_data_complete(path: Path) -> str | None:
    """Return why a NIfTI file's pixel data are incomplete, or None when they are complete.

    ITK's NIfTI reader silently zero-fills truncated files, so this is checked first:
    ``.nii`` by file size, ``.nii.gz`` by the gzip trailer (ISIZE) and, when that does not
    match (e.g. multi-member gzip), by streaming through the decompressed data.
    """
    import gzip
    import zlib

    import nibabel as nib

    try:
        header: Any = nib.load(str(path)).header
        offset = int(header.get_data_offset())
        shape = tuple(int(s) for s in header.get_data_shape())
        itemsize = int(header.get_data_dtype().itemsize)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        return f"header cannot be read ({exc})"
    expected = (
        max(offset, int(header.sizeof_hdr)) + int(np.prod(shape, dtype=np.float64)) * itemsize
    )
    if not path.name.lower().endswith(".gz"):
        size = path.stat().st_size
        return None if size >= expected else f"{size} bytes present, header needs {expected}"
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        if int.from_bytes(fh.read(4), "little") == expected % (1 << 32):
            return None
    total = 0
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        return f"compressed data end early ({exc})"
    return None if total >= expected else f"{total} bytes present, header needs {expected}"


def _reader(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected an image file.")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes); expected a NIfTI/MetaImage/NRRD image.")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise CorruptFileError(
            f"{path}: image header cannot be read ({str(exc).strip().splitlines()[-1]}). "
            "The file is damaged or not a NIfTI/MetaImage/NRRD image."
        ) from exc
    return reader


def probe_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Read an image file's header only.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptFileError: Empty or unreadable header.
    """
    reader = _reader(Path(path))
    size = tuple(int(s) for s in reader.GetSize())
    n_comp = int(reader.GetNumberOfComponents())
    pixel_id = reader.GetPixelID()
    n_bytes = int(np.prod(size, dtype=np.float64) * n_comp * _itemsize(pixel_id))
    return ImageInfo(
        size_xyz=size,
        spacing_xyz=tuple(float(s) for s in reader.GetSpacing()),
        n_bytes=n_bytes,
        pixel_type=sitk.GetPixelIDValueAsString(pixel_id),
    )


_UNSIGNED = frozenset({sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32, sitk.sitkUInt64})


def _itemsize(pixel_id: int) -> int:
    table = {
        sitk.sitkUInt8: 1,
        sitk.sitkInt8: 1,
        sitk.sitkUInt16: 2,
        sitk.sitkInt16: 2,
        sitk.sitkUInt32: 4,
        sitk.sitkInt32: 4,
        sitk.sitkUInt64: 8,
        sitk.sitkInt64: 8,
        sitk.sitkFloat32: 4,
        sitk.sitkFloat64: 8,
    }
    return table.get(pixel_id, 8)


def load_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    warnings: tuple[str, ...] = (),
    canonical: bool = True,
) -> CTVolume:
    """Load a NIfTI / MetaImage / NRRD CT image as a :class:`CTVolume` in LPS.

    Args:
        path: ``.nii``, ``.nii.gz``, ``.mhd``, ``.mha``, ``.nrrd`` or ``.nhdr`` file.
        max_bytes: Refuse images whose header claims more bytes than this.
        warnings: Notes to carry into ``CTVolume.warnings``.
        canonical: Bring the image onto the canonical axial LPS grid
            (:func:`medsnowball.io.orient.to_canonical`; unsigned-integer images are taken
            for label maps: nearest neighbour if resampled); False keeps the stored grid.

    Returns:
        The volume (``series_uid`` = file stem, ``study_uid`` None), array ``(z, y, x)``;
        when reoriented, ``stored_geometry`` is the file's grid.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptFileError: Empty, truncated or unreadable file.
        ImageTooLargeError: The header claims more than ``max_bytes``.
        InconsistentSeriesError: Not a 3-D scalar image.
        ObliqueImageError: ``canonical`` and the image is tilted more than
            :data:`~medsnowball.io.orient.MAX_OBLIQUE_DEG` from every axis.
    """
    from medsnowball.io.selection import stem_of

    p = Path(path)
    reader = _reader(p)
    size = tuple(int(s) for s in reader.GetSize())
    n_comp = int(reader.GetNumberOfComponents())
    need = float(np.prod(size, dtype=np.float64)) * n_comp * max(4, _itemsize(reader.GetPixelID()))
    if need > max_bytes:
        raise ImageTooLargeError(
            f"{p}: header claims {size} voxels ({need / 1024**3:.1f} GiB), above the "
            f"{max_bytes / 1024**3:.1f} GiB limit. The header is probably corrupt; if the "
            "image is real, raise max_bytes."
        )
    if image_kind(p) == "nifti":
        problem = _nifti_data_complete(p)
        if problem:
            raise CorruptFileError(
                f"{p}: NIfTI pixel data are incomplete ({problem}). The file was cut short; "
                "re-export or re-copy it."
            )
    dims = [s for s in size if s != 1] if len(size) > 3 else list(size)
    if n_comp != 1 or len(size) < 3 or len(dims) > 3:
        raise InconsistentSeriesError(
            f"{p}: expected a 3-D scalar image, found size {size} with {n_comp} component(s)."
        )
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise CorruptFileError(
            f"{p}: pixel data cannot be read ({str(exc).strip().splitlines()[-1]}). "
            "The file is probably truncated; re-export or re-copy it."
        ) from exc
    if image.GetDimension() > 3:
        image = sitk.Extract(image, [*size[:3], 0], [0] * image.GetDimension())
    pixel_id = image.GetPixelID()
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.integer):
        hu = np.empty(array.shape, dtype=np.int16)
        np.clip(array, AIR_HU, INT16_MAX, out=hu, casting="unsafe")
    else:
        hu = np.empty(array.shape, dtype=np.float32)
        np.maximum(array, AIR_HU, out=hu, casting="unsafe")
    geometry = ImageGeometry(
        shape_zyx=hu.shape,  # type: ignore[arg-type]
        spacing_zyx=tuple(reversed(image.GetSpacing())),  # type: ignore[arg-type]
        origin_lps=image.GetOrigin(),
        direction=np.reshape(image.GetDirection(), (3, 3)),
    )
    del array, image
    volume = CTVolume(
        array=hu,
        geometry=geometry,
        source=str(p),
        study_uid=None,
        series_uid=stem_of(p),
        modality="CT",
        warnings=warnings,
    )
    if not canonical:
        return volume
    # Unsigned pixels cannot hold air: a label map (e.g. a mask read for evaluation).
    return to_canonical(volume, labels=pixel_id in _UNSIGNED)
