"""Coarse working grids: block-mean downsampling and smooth mapping back to the source grid.

Lung segmentation and parts of candidate detection run on a coarser grid than the CT (about
1.5 mm in-plane, 2 mm between slices) for speed. The working grid is an integer block
subdivision of the source grid, so the mapping between both is exact:

* source voxel ``i`` lies at working-grid fractional index ``(i - (f - 1) / 2) / f`` along an
  axis with block factor ``f``;
* working voxel ``c`` is the mean of source voxels ``c * f ... c * f + f - 1`` (the last block
  of an axis may be partial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.volume import ImageGeometry


def block_factors(
    spacing_zyx: tuple[float, float, float],
    target_zyx: tuple[float, float, float],
    shape_zyx: tuple[int, int, int] | None = None,
) -> tuple[int, int, int]:
    """Integer block factors that bring ``spacing_zyx`` closest to ``target_zyx``.

    Args:
        spacing_zyx: Source voxel size in mm (z, y, x).
        target_zyx: Wanted working voxel size in mm (z, y, x).
        shape_zyx: Source shape; a factor never exceeds the axis length.

    Returns:
        Factors ``(fz, fy, fx)``, each >= 1.
    """
    out = []
    for axis, (s, t) in enumerate(zip(spacing_zyx, target_zyx, strict=True)):
        f = max(1, round(t / s))
        if shape_zyx is not None:
            f = min(f, max(1, shape_zyx[axis]))
        out.append(f)
    return (out[0], out[1], out[2])


@dataclass(frozen=True, eq=False)
class WorkingGrid:
    """A block-subdivided coarse grid of a source image grid.

    Attributes:
        source: Geometry of the source image.
        factors_zyx: Integer block sizes (z, y, x).
        geometry: Geometry of the working grid (same direction; voxel centres at block centres).
    """

    source: ImageGeometry
    factors_zyx: tuple[int, int, int]
    geometry: ImageGeometry

    @classmethod
    def create(
        cls, source: ImageGeometry, target_spacing_zyx: tuple[float, float, float]
    ) -> WorkingGrid:
        """Build the working grid closest to ``target_spacing_zyx`` (never finer than source).

        Args:
            source: Geometry of the source image.
            target_spacing_zyx: Wanted voxel size in mm (z, y, x).

        Returns:
            The working grid.
        """
        f = block_factors(source.spacing_zyx, target_spacing_zyx, source.shape_zyx)
        shape = tuple(-(-n // k) for n, k in zip(source.shape_zyx, f, strict=True))
        spacing = tuple(s * k for s, k in zip(source.spacing_zyx, f, strict=True))
        origin = source.index_to_world([(k - 1) / 2.0 for k in f])
        geom = ImageGeometry(
            shape_zyx=shape,  # type: ignore[arg-type]
            spacing_zyx=spacing,  # type: ignore[arg-type]
            origin_lps=(float(origin[0]), float(origin[1]), float(origin[2])),
            direction=np.array(source.direction),
        )
        return cls(source=source, factors_zyx=f, geometry=geom)

    @property
    def is_identity(self) -> bool:
        """True when every block factor is 1."""
        return self.factors_zyx == (1, 1, 1)

    # ------------------------------------------------------------------ downsampling
    def downsample(
        self,
        array: NDArray[Any],
        dtype: type = np.float32,
        clip: tuple[float, float] | None = None,
    ) -> NDArray[Any]:
        """Block mean of a source-grid array (chunked over z to bound memory).

        Args:
            array: Source-grid array ``(z, y, x)`` (numeric or boolean).
            dtype: Output dtype.
            clip: Optional value range applied to the source values before averaging.

        Returns:
            Working-grid array ``geometry.shape_zyx`` of block means.
        """
        fz, fy, fx = self.factors_zyx
        nz, ny, nx = self.source.shape_zyx
        wz, wy, wx = self.geometry.shape_zyx
        out: NDArray[Any] = np.empty((wz, wy, wx), dtype=dtype)
        py, px = wy * fy - ny, wx * fx - nx
        for c in range(wz):
            block = np.asarray(array[c * fz : min(nz, (c + 1) * fz)], dtype=np.float32)
            if clip is not None:
                block = np.clip(block, clip[0], clip[1])
            plane = block.mean(axis=0) if block.shape[0] > 1 else block[0]
            if py or px:
                plane = np.pad(plane, ((0, py), (0, px)), mode="edge")
            out[c] = plane.reshape(wy, fy, wx, fx).mean(axis=(1, 3))
        return out

    # ------------------------------------------------------------------ upsampling
    def _axis_weights(
        self, axis: int, lo_src: int = 0, hi_src: int | None = None
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
        """Linear-interpolation neighbours and weights for source rows ``lo_src:hi_src``."""
        f = self.factors_zyx[axis]
        n_w = self.geometry.shape_zyx[axis]
        hi = self.source.shape_zyx[axis] if hi_src is None else hi_src
        pos = (np.arange(lo_src, hi, dtype=np.float64) - (f - 1) / 2.0) / f
        pos = np.clip(pos, 0.0, n_w - 1)
        lo = np.floor(pos).astype(np.intp)
        up = np.minimum(lo + 1, n_w - 1)
        return lo, up, (pos - lo).astype(np.float32)

    def _source_box(self, field: NDArray[Any]) -> tuple[slice, slice, slice] | None:
        """Source-grid box covering the working voxels where ``field`` is non-zero."""
        nz = np.nonzero(field)
        if nz[0].size == 0:
            return None
        box = []
        for axis in range(3):
            f = self.factors_zyx[axis]
            lo = max(0, (int(nz[axis].min()) - 1) * f)
            hi = min(self.source.shape_zyx[axis], (int(nz[axis].max()) + 2) * f)
            box.append(slice(lo, hi))
        return (box[0], box[1], box[2])

    def upsample_field(self, field: NDArray[Any], threshold: float) -> NDArray[np.bool_]:
        """Trilinear interpolation of a working-grid field, thresholded on the source grid.

        Only the box around the field's non-zero voxels is interpolated (outside it the
        field is zero, so ``threshold`` must be > 0).

        Args:
            field: Working-grid array ``geometry.shape_zyx`` (e.g. a 0/1 mask as float).
            threshold: Source voxels whose interpolated value is >= ``threshold`` are True.

        Returns:
            Boolean source-grid array ``source.shape_zyx``.
        """
        out = np.zeros(self.source.shape_zyx, dtype=bool)
        f32 = np.asarray(field, dtype=np.float32)
        self._upsample(f32, out, lambda p, o: np.greater_equal(p, threshold, out=o))
        return out

    def upsample_labels(self, labels: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Map a right (1) / left (2) label image to the source grid with smooth boundaries.

        The signed field ``right - left`` is interpolated trilinearly; a source voxel is right
        where it is >= 0.5 and left where it is <= -0.5, so the lungs never overlap and a
        border between touching lungs stays where the working grid put it.

        Args:
            labels: Working-grid uint8 labels (0, 1, 2).

        Returns:
            Source-grid uint8 labels.
        """
        signed = (labels == 1).astype(np.float32) - (labels == 2).astype(np.float32)
        out = np.zeros(self.source.shape_zyx, dtype=np.uint8)

        def finish(p: NDArray[np.float32], o: NDArray[np.uint8]) -> None:
            o[...] = 0
            o[p >= 0.5] = 1
            o[p <= -0.5] = 2

        self._upsample(signed, out, finish)
        return out

    def upsample_nearest(self, field: NDArray[Any]) -> NDArray[Any]:
        """Nearest-neighbour (block replication) upsampling to the source grid.

        Args:
            field: Working-grid array.

        Returns:
            Source-grid array of the same dtype.
        """
        idx = [
            np.minimum(np.arange(n) // f, m - 1)
            for n, f, m in zip(
                self.source.shape_zyx, self.factors_zyx, self.geometry.shape_zyx, strict=True
            )
        ]
        return np.asarray(field)[idx[0]][:, idx[1]][:, :, idx[2]]

    def _upsample(self, field: NDArray[np.float32], out: NDArray[Any], finish: Any) -> None:
        box = self._source_box(field)
        if box is None:
            return
        if self.is_identity:
            finish(field[box], out[box])
            return
        (zlo, zhi, zw), (ylo, yhi, yw), (xlo, xhi, xw) = (
            self._axis_weights(a, box[a].start, box[a].stop) for a in range(3)
        )
        yw2 = yw[:, None]
        for j, k in enumerate(range(box[0].start, box[0].stop)):
            a, b, w = zlo[j], zhi[j], zw[j]
            plane = field[a] if (w == 0.0 or a == b) else (1.0 - w) * field[a] + w * field[b]
            rows = plane[ylo] * (1.0 - yw2) + plane[yhi] * yw2
            fine = rows[:, xlo] * (1.0 - xw) + rows[:, xhi] * xw
            finish(fine, out[k, box[1], box[2]])


__all__ = ["WorkingGrid", "block_factors"]
