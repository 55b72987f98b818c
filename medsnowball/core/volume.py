"""The CT volume and its geometry: the one image type every stage consumes.

Coordinate conventions (used throughout medsnowball):

* **Arrays** are indexed ``(z, y, x)``: ``array[k, j, i]`` with ``k`` the slice index,
  ``j`` the row and ``i`` the column. Spacing tuples follow the same order
  (``spacing_zyx``).
* **World coordinates** are DICOM patient **LPS** millimetres, ordered ``(x, y, z)``:
  +x towards the patient's left, +y towards posterior, +z towards the head. This is what
  DICOM, SimpleITK and LUNA16 use. NIfTI's RAS is converted at the I/O boundary.
* ``origin_lps`` is the world position of the *centre* of voxel ``(0, 0, 0)``.
* ``direction`` is a 3x3 matrix in **SimpleITK's convention**: column ``c`` is the unit
  vector, in LPS, of index axis ``c`` where the index axes are ordered ``(i, j, k)`` =
  ``(x, y, z)``. It equals ``numpy.reshape(sitk_image.GetDirection(), (3, 3))``.

So the world position of voxel ``(k, j, i)`` is::

    origin_lps + direction @ ([i, j, k] * spacing_xyz)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsnowball.core.quality import QualityFlag

if TYPE_CHECKING:  # pragma: no cover
    from monai.data import MetaTensor

Vec3 = tuple[float, float, float]


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    view = a.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class ImageGeometry:
    """Where a ``(z, y, x)`` voxel grid lies in patient space.

    Attributes:
        shape_zyx: Number of voxels along z, y, x.
        spacing_zyx: Voxel size in millimetres along z, y, x (all > 0).
        origin_lps: World LPS position (x, y, z) in mm of the centre of voxel (0, 0, 0).
        direction: 3x3 direction cosines, SimpleITK convention (see module docstring).
    """

    shape_zyx: tuple[int, int, int]
    spacing_zyx: Vec3
    origin_lps: Vec3
    direction: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape_zyx", tuple(int(s) for s in self.shape_zyx))
        object.__setattr__(self, "spacing_zyx", tuple(float(s) for s in self.spacing_zyx))
        object.__setattr__(self, "origin_lps", tuple(float(s) for s in self.origin_lps))
        d = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        object.__setattr__(self, "direction", _readonly(d))
        if len(self.shape_zyx) != 3 or len(self.spacing_zyx) != 3 or len(self.origin_lps) != 3:
            raise ValueError("ImageGeometry needs 3 values each for shape, spacing and origin.")
        if min(self.spacing_zyx) <= 0 or not np.all(np.isfinite(self.spacing_zyx)):
            raise ValueError(f"Voxel spacing must be positive and finite, got {self.spacing_zyx}.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageGeometry):
            return NotImplemented
        return (
            self.shape_zyx == other.shape_zyx
            and np.allclose(self.spacing_zyx, other.spacing_zyx, atol=1e-5)
            and np.allclose(self.origin_lps, other.origin_lps, atol=1e-4)
            and np.allclose(self.direction, other.direction, atol=1e-5)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def spacing_xyz(self) -> Vec3:
        """Spacing reordered (x, y, z), as SimpleITK and NIfTI headers list it."""
        z, y, x = self.spacing_zyx
        return (x, y, z)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in cubic millimetres."""
        return float(np.prod(self.spacing_zyx))

    @property
    def affine(self) -> NDArray[np.float64]:
        """4x4 matrix: homogeneous ``(k, j, i, 1)`` (z, y, x index) -> ``(x, y, z, 1)`` LPS mm."""
        m = np.eye(4)
        scaled = self.direction * np.asarray(self.spacing_xyz)[None, :]  # columns i, j, k
        m[:3, 0] = scaled[:, 2]  # k (z index)
        m[:3, 1] = scaled[:, 1]  # j (y index)
        m[:3, 2] = scaled[:, 0]  # i (x index)
        m[:3, 3] = self.origin_lps
        return m

    def index_to_world(self, zyx: ArrayLike) -> NDArray[np.float64]:
        """Map voxel indices ``(..., 3)`` (z, y, x) to LPS mm ``(..., 3)`` (x, y, z)."""
        p = np.asarray(zyx, dtype=np.float64)
        return p @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, lps: ArrayLike) -> NDArray[np.float64]:
        """Map LPS mm points ``(..., 3)`` (x, y, z) to fractional indices ``(..., 3)`` (z, y, x)."""
        p = np.asarray(lps, dtype=np.float64) - self.affine[:3, 3]
        return p @ np.linalg.inv(self.affine[:3, :3]).T

    def contains_index(self, zyx: ArrayLike) -> bool:
        """True when the rounded index lies inside the grid."""
        idx = np.rint(np.asarray(zyx, dtype=np.float64))
        return bool(np.all(idx >= 0) and np.all(idx < np.asarray(self.shape_zyx)))


@dataclass(frozen=True)
class AcquisitionInfo:
    """Non-identifying acquisition metadata (any field may be unknown: ``None``)."""

    manufacturer: str | None = None
    model: str | None = None
    kernel: str | None = None
    slice_thickness_mm: float | None = None
    kvp: float | None = None
    contrast: bool | None = None


@dataclass(frozen=True)
class PatientInfo:
    """Identifying patient fields.

    Kept apart so they are never logged or written by default: ``repr`` hides them, and
    writers include them only when explicitly asked (``--include-patient-info``).
    """

    name: str | None = field(default=None, repr=False)
    patient_id: str | None = field(default=None, repr=False)
    birth_date: str | None = field(default=None, repr=False)
    sex: str | None = field(default=None, repr=False)
    age: str | None = field(default=None, repr=False)
    study_date: str | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class CTVolume:
    """A CT image in Hounsfield units with its geometry and provenance.

    Attributes:
        array: HU values, shape ``(z, y, x)``, float32 or int16, read-only. Air is about
            -1000; padding outside the scan circle has been mapped to air (-1024 or below
            is clipped to -1024 by the loaders).
        geometry: Grid placement in LPS millimetres (see :class:`ImageGeometry`).
        source: Path of the file or folder it was read from (or a description).
        study_uid: DICOM StudyInstanceUID, when known.
        series_uid: DICOM SeriesInstanceUID, when known.
        modality: "CT" for everything medsnowball analyses.
        acquisition: Non-identifying acquisition metadata.
        patient: Identifying patient fields (hidden from ``repr``).
        warnings: Human-readable notes about how the image was read (e.g. resampled
            onto a regular grid because a slice was missing).
        source_files: For DICOM series, the instance files in slice order (first = the
            slice at ``k = 0``); empty for other formats. Writers of DICOM SEG / SR use
            them to reference the source images.
        quality: Quality flags raised while reading (input reoriented to the canonical
            axial grid, slices resampled, gantry tilt corrected, ...).
        stored_geometry: When the loader brought the image to the canonical axial grid,
            the grid the file itself stores (masks are written back onto it); ``None``
            when the analysed grid is the stored one.
    """

    array: NDArray[Any]
    geometry: ImageGeometry
    source: str = ""
    study_uid: str | None = None
    series_uid: str | None = None
    modality: str = "CT"
    acquisition: AcquisitionInfo = field(default_factory=AcquisitionInfo)
    patient: PatientInfo = field(default_factory=PatientInfo, repr=False)
    warnings: tuple[str, ...] = ()
    source_files: tuple[str, ...] = ()
    quality: tuple[QualityFlag, ...] = ()
    stored_geometry: ImageGeometry | None = None

    def __post_init__(self) -> None:
        a = np.asarray(self.array)
        if a.ndim != 3:
            raise ValueError(f"CTVolume.array must be 3-D (z, y, x), got shape {a.shape}.")
        if tuple(a.shape) != self.geometry.shape_zyx:
            raise ValueError(
                f"CTVolume.array shape {a.shape} does not match geometry {self.geometry.shape_zyx}."
            )
        object.__setattr__(self, "array", _readonly(a))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "source_files", tuple(str(f) for f in self.source_files))
        object.__setattr__(self, "quality", tuple(self.quality))

    def __repr__(self) -> str:
        return (
            f"CTVolume(shape_zyx={self.shape}, spacing_zyx={self.spacing_zyx}, "
            f"origin_lps={self.origin_lps}, dtype={self.array.dtype}, source={self.source!r})"
        )

    # Convenience accessors -------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return self.geometry.shape_zyx

    @property
    def spacing_zyx(self) -> Vec3:
        """Voxel size in mm ``(z, y, x)``."""
        return self.geometry.spacing_zyx

    @property
    def origin_lps(self) -> Vec3:
        """World LPS position of the centre of voxel (0, 0, 0)."""
        return self.geometry.origin_lps

    @property
    def direction(self) -> NDArray[np.float64]:
        """Direction cosines, SimpleITK convention."""
        return self.geometry.direction

    @property
    def affine(self) -> NDArray[np.float64]:
        """(z, y, x) index -> LPS mm homogeneous matrix (see :attr:`ImageGeometry.affine`)."""
        return self.geometry.affine

    def index_to_world(self, zyx: ArrayLike) -> NDArray[np.float64]:
        """See :meth:`ImageGeometry.index_to_world`."""
        return self.geometry.index_to_world(zyx)

    def world_to_index(self, lps: ArrayLike) -> NDArray[np.float64]:
        """See :meth:`ImageGeometry.world_to_index`."""
        return self.geometry.world_to_index(lps)

    def with_array(self, array: NDArray[Any], **changes: Any) -> CTVolume:
        """A copy with another array of the same shape (and optionally other fields)."""
        return dataclasses.replace(self, array=array, **changes)

    # MONAI bridge (lazy: core does not import torch) ------------------------
    def to_metatensor(self) -> MetaTensor:
        """Return a channel-first MONAI ``MetaTensor`` ``(1, x, y, z)`` with a RAS affine.

        See :func:`medsnowball.io.monai_bridge.to_metatensor`.
        """
        from medsnowball.io.monai_bridge import to_metatensor

        return to_metatensor(self)

    @classmethod
    def from_metatensor(cls, tensor: MetaTensor, **fields: Any) -> CTVolume:
        """Inverse of :meth:`to_metatensor` (see ``medsnowball.io.monai_bridge``)."""
        from medsnowball.io.monai_bridge import from_metatensor

        return from_metatensor(tensor, **fields)


__all__ = ["AcquisitionInfo", "CTVolume", "ImageGeometry", "PatientInfo", "Vec3"]
