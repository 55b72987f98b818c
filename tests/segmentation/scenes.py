"""Hand-made CT scenes with exact truth: nodules, a vessel and a chest-wall plane.

Objects are described by signed distance functions (mm, negative inside). Each voxel's
partial-volume fraction is ``clip(0.5 - sdf / w, 0, 1)`` with ``w`` the voxel's extent
along the surface normal, so the truth mask (fraction >= 0.5) is ``sdf <= 0``. The scene
is blurred (scanner PSF) and gets seeded Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from medsnowball.core import Candidate, CTVolume, ImageGeometry, LungSegmentation

Sdf = Callable[[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]

LUNG_HU = -850.0


def sphere_sdf(center_mm: tuple[float, float, float], radius: float) -> Sdf:
    cz, cy, cx = center_mm

    def f(
        z: NDArray[np.float64], y: NDArray[np.float64], x: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        return np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) - radius

    return f


def cylinder_sdf(
    point_mm: tuple[float, float, float], direction: tuple[float, float, float], radius: float
) -> Sdf:
    p = np.asarray(point_mm, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)

    def f(
        z: NDArray[np.float64], y: NDArray[np.float64], x: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        vz, vy, vx = z - p[0], y - p[1], x - p[2]
        t = vz * d[0] + vy * d[1] + vx * d[2]
        return np.sqrt((vz - t * d[0]) ** 2 + (vy - t * d[1]) ** 2 + (vx - t * d[2]) ** 2) - radius

    return f


def plane_sdf(axis: int, position_mm: float, inside_above: bool = True) -> Sdf:
    """Half-space ``coord > position`` (or below) along axis 0=z, 1=y, 2=x."""

    def f(
        z: NDArray[np.float64], y: NDArray[np.float64], x: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        c = (z, y, x)[axis]
        return (position_mm - c) if inside_above else (c - position_mm)

    return f


@dataclass
class Scene:
    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    noise_hu: float = 15.0
    blur_mm: float = 0.6
    seed: int = 0
    layers: list[tuple[Sdf, float, str]] = field(default_factory=list)

    def coords(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        z, y, x = (
            np.arange(n, dtype=np.float64) * s
            for n, s in zip(self.shape_zyx, self.spacing_zyx, strict=True)
        )
        return np.meshgrid(z, y, x, indexing="ij", sparse=True)  # type: ignore[return-value]

    def add(self, sdf: Sdf, hu: float, name: str, volume_mm3: float | None = None) -> Scene:
        """Add an object; with ``volume_mm3`` its truth mask gets exactly that many voxels
        (as the phantom generator does), by offsetting its distance function."""
        if volume_mm3 is not None:
            z, y, x = self.coords()
            d = np.broadcast_to(sdf(z, y, x), self.shape_zyx).ravel()
            n = round(volume_mm3 / float(np.prod(self.spacing_zyx)))
            part = np.partition(d, [n - 1, n])
            shift = 0.5 * float(part[n - 1] + part[n])
            base = sdf

            def shifted(
                z: NDArray[np.float64], y: NDArray[np.float64], x: NDArray[np.float64]
            ) -> NDArray[np.float64]:
                return base(z, y, x) - shift

            sdf = shifted
        self.layers.append((sdf, hu, name))
        return self

    def _fraction(self, sdf: Sdf) -> NDArray[np.float64]:
        z, y, x = self.coords()
        d = np.broadcast_to(sdf(z, y, x), self.shape_zyx)
        # voxel extent along the gradient of the sdf
        g = np.gradient(d, *self.spacing_zyx)
        norm = np.sqrt(sum(gi**2 for gi in g)) + 1e-9
        w = np.sqrt(sum((gi / norm * s) ** 2 for gi, s in zip(g, self.spacing_zyx, strict=True)))
        return np.clip(0.5 - d / np.maximum(w, 1e-6), 0.0, 1.0)

    def truth(self, name: str) -> NDArray[np.bool_]:
        z, y, x = self.coords()
        for sdf, _, n in self.layers:
            if n == name:
                return np.broadcast_to(sdf(z, y, x) <= 0, self.shape_zyx).copy()
        raise KeyError(name)

    def render(self) -> NDArray[np.float32]:
        hu = np.full(self.shape_zyx, LUNG_HU)
        for sdf, value, _ in self.layers:
            f = self._fraction(sdf)
            hu = np.maximum(hu, LUNG_HU + f * (value - LUNG_HU)) if value > LUNG_HU else hu
        sig = [self.blur_mm / s for s in self.spacing_zyx]
        hu = ndi.gaussian_filter(hu, sig)
        rng = np.random.default_rng(self.seed)
        noise = ndi.gaussian_filter(rng.normal(size=self.shape_zyx), 0.6) * self.noise_hu / 0.29
        return (hu + noise).astype(np.float32)

    def volume(self) -> CTVolume:
        geom = ImageGeometry(self.shape_zyx, self.spacing_zyx, (0.0, 0.0, 0.0))
        return CTVolume(self.render(), geom, source="scene")

    def lungs(self, wall_names: tuple[str, ...] = ("wall",)) -> LungSegmentation:
        inside = np.ones(self.shape_zyx, dtype=bool)
        for name in wall_names:
            inside &= ~self.truth(name)
        geom = ImageGeometry(self.shape_zyx, self.spacing_zyx, (0.0, 0.0, 0.0))
        labels = inside.astype(np.uint8)
        return LungSegmentation(labels, geom, right_ml=float(inside.sum()), left_ml=0.0)


def candidate_at(
    volume: CTVolume, center_mm_zyx: tuple[float, float, float], diameter: float
) -> Candidate:
    idx = np.asarray(center_mm_zyx) / np.asarray(volume.spacing_zyx)
    lps = volume.index_to_world(idx)
    return Candidate(
        center_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
        center_zyx=(float(idx[0]), float(idx[1]), float(idx[2])),
        score=0.9,
        diameter_mm=diameter,
    )


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.count_nonzero(a & b)) / s if s else 1.0


def paste(
    shape: tuple[int, int, int], mask: NDArray[np.bool_], offset: tuple[int, int, int]
) -> NDArray[np.bool_]:
    out = np.zeros(shape, dtype=bool)
    out[tuple(slice(o, o + s) for o, s in zip(offset, mask.shape, strict=True))] = mask
    return out
