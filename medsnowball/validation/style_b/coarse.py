"""A coarse (about 3-4 mm) copy of the lung labels with a distance-to-pleura map, for
sampling tree territories and placing nodules quickly on large grids."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.validation.style_b.tubes import Grid


class CoarseLung:
    """Lung labels subsampled to about ``target_mm`` and their distance to non-lung (mm).

    Args:
        grid: The full voxel grid.
        lungs: uint8 ``(z, y, x)`` lung labels (0 / 1 right / 2 left).
        target_mm: Approximate coarse voxel size.
    """

    def __init__(self, grid: Grid, lungs: NDArray[np.uint8], target_mm: float = 3.5) -> None:
        self.grid = grid
        self.step = tuple(max(1, round(target_mm / s)) for s in grid.spacing)
        sz, sy, sx = self.step
        self.labels = np.ascontiguousarray(lungs[::sz, ::sy, ::sx])
        sampling = tuple(st * sp for st, sp in zip(self.step, grid.spacing, strict=True))
        self.sampling = sampling
        self.dist = np.asarray(
            ndimage.distance_transform_edt(self.labels > 0, sampling=sampling), dtype=np.float32
        )

    def _coarse_index(self, p_zyx: NDArray[np.float64]) -> NDArray[np.int64]:
        idx = self.grid.to_index(p_zyx) / np.asarray(self.step)
        idx = np.rint(idx).astype(np.int64)
        return np.clip(idx, 0, np.asarray(self.labels.shape) - 1)

    def distance(self, p_zyx: NDArray[np.float64]) -> NDArray[np.float32]:
        """Approximate distance (mm) of world points ``(n, 3)`` to the nearest non-lung voxel
        (0 outside the lungs)."""
        i = self._coarse_index(np.atleast_2d(p_zyx))
        return self.dist[i[:, 0], i[:, 1], i[:, 2]]

    def side(self, p_zyx: NDArray[np.float64]) -> NDArray[np.uint8]:
        """Coarse lung label at world points ``(n, 3)``."""
        i = self._coarse_index(np.atleast_2d(p_zyx))
        return self.labels[i[:, 0], i[:, 1], i[:, 2]]

    def sample(
        self, side: int, n: int, rng: np.random.Generator, min_dist_mm: float = 0.0
    ) -> NDArray[np.float64]:
        """``n`` random world points ``(n, 3)`` inside lung ``side`` at least ``min_dist_mm``
        from its border (fewer when the lung is small)."""
        cand = np.flatnonzero((self.labels == side) & (self.dist >= min_dist_mm))
        if cand.size == 0:
            return np.zeros((0, 3))
        pick = rng.choice(cand, size=min(n, cand.size), replace=n > cand.size)
        idx = np.stack(np.unravel_index(pick, self.labels.shape), axis=1).astype(np.float64)
        idx += rng.uniform(-0.45, 0.45, size=idx.shape)
        return self.grid.to_world(idx * np.asarray(self.step))


__all__ = ["CoarseLung"]
