"""Random body layout of a style-B chest: sizes, levels and landmark positions (world mm).

The chest is described in a polar frame around the body centre: the skin is a
super-ellipse, the pleural cavity the skin minus a direction-dependent chest-wall thickness
(paraspinal muscles posteriorly), narrowing to the apex. Landmarks (domes, carina, hila,
heart, spine) are drawn per case from ranges taken from adult anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.validation.style_b.config import StyleBConfig
from medsnowball.validation.style_b.tubes import Grid


@dataclass(frozen=True)
class Layout:
    """One case's body layout (all lengths mm, positions world ``(z, y, x)``).

    Attributes:
        xc: Body centre x.
        yc: Body centre y.
        a: Body half-width (x).
        b: Body half-depth (y).
        k: Size factor (a / 170 mm).
        fat: Subcutaneous fat thickness.
        muscle_lat: Lateral chest-wall muscle thickness.
        muscle_ant: Anterior muscle thickness.
        muscle_post: Posterior (paraspinal) muscle thickness.
        z_low: Lowest lung point (posterior costophrenic recess).
        height: Lung height (recess to apex).
        dome_right: Right dome rise above ``z_low``.
        dome_left: Left dome rise above ``z_low``.
        xm: Mediastinal midline x.
        y_vb: Vertebral body centre y.
        r_vb: Vertebral body radius.
        heart: Heart ellipsoid centre ``(z, y, x)``.
        heart_axes: Heart semi-axes ``(z, y, x)``.
        u_carina: Carina level as a fraction of the lung height.
        u_hilum: Hilum level as a fraction of the lung height.
        lung_hu: Base attenuation of non-dependent lung.
        gradient_hu: Anterior-to-posterior (dependent) lung density increase.
        rib_pitch: Cranio-caudal distance between ribs.
        shift_x: Lateral offset of the body in the field of view.
    """

    xc: float
    yc: float
    a: float
    b: float
    k: float
    fat: float
    muscle_lat: float
    muscle_ant: float
    muscle_post: float
    z_low: float
    height: float
    dome_right: float
    dome_left: float
    xm: float
    y_vb: float
    r_vb: float
    heart: tuple[float, float, float]
    heart_axes: tuple[float, float, float]
    u_carina: float
    u_hilum: float
    lung_hu: float
    gradient_hu: float
    rib_pitch: float
    shift_x: float

    def z_of_u(self, u: float) -> float:
        """World z of the fraction ``u`` of the lung height (0 recess, 1 apex)."""
        return self.z_low + u * self.height

    def body_radius(self, phi: NDArray[np.float64]) -> NDArray[np.float64]:
        """Skin radius (mm) in direction ``phi`` (``atan2(y - yc, x - xc)``)."""
        c, s = np.abs(np.cos(phi)), np.sin(phi)
        bb = np.where(s < 0, 0.93 * self.b, self.b)  # flatter anterior chest
        p = 2.5
        return 1.0 / ((c / self.a) ** p + (np.abs(s) / bb) ** p) ** (1.0 / p)

    def wall_thickness(self, phi: NDArray[np.float64]) -> NDArray[np.float64]:
        """Skin + fat + muscle thickness (mm) in direction ``phi``."""
        c2 = np.cos(phi) ** 2
        ant = np.maximum(0.0, -np.sin(phi)) ** 2
        post = np.maximum(0.0, np.sin(phi)) ** 2
        muscle = self.muscle_lat * c2 + self.muscle_ant * ant + self.muscle_post * post
        return 2.0 + self.fat * (0.6 + 0.6 * c2) + muscle

    @staticmethod
    def cavity_scale(u: float) -> float:
        """In-plane size of the pleural cavity relative to its full size at height ``u``."""
        if u <= 0.6:
            return 1.0
        if u >= 1.0:
            return 0.0
        return float((1.0 - ((u - 0.6) / 0.4) ** 2) ** 0.55)


def make_layout(config: StyleBConfig, grid: Grid, rng: np.random.Generator) -> Layout:
    """Draw a body layout that fits the grid.

    Args:
        config: The case config (``partial_fov`` makes the body wider than the FOV).
        grid: The voxel grid.
        rng: Anatomy random stream.

    Returns:
        The layout.
    """
    nz, ny, nx = grid.shape
    fov_x, fov_y = nx * grid.spacing[2], ny * grid.spacing[1]
    if config.partial_fov:
        a = 0.5 * fov_x * rng.uniform(1.12, 1.3)
        shift = rng.uniform(-0.04, 0.04) * fov_x
    else:
        a = 0.5 * fov_x * rng.uniform(0.8, 0.9)
        shift = rng.uniform(-0.02, 0.02) * fov_x
    b = a * rng.uniform(0.64, 0.74)
    b = min(b, 0.44 * fov_y)
    k = a / 170.0
    yc = grid.origin[1] + 0.5 * (ny - 1) * grid.spacing[1] - 0.03 * fov_y
    xc = grid.origin[2] + 0.5 * (nx - 1) * grid.spacing[2] + shift
    length = nz * grid.spacing[0]
    z_top = grid.origin[0] + (nz - 1) * grid.spacing[0]
    height = min(rng.uniform(235.0, 275.0) * min(1.0, 0.6 + 0.4 * k), 0.88 * length)
    z_apex = z_top - rng.uniform(0.02, 0.05) * length
    z_low = z_apex - height
    dome_r = rng.uniform(0.3, 0.38) * height
    dome_l = dome_r - rng.uniform(0.03, 0.07) * height
    muscle_post = rng.uniform(32.0, 45.0) * k
    r_vb = rng.uniform(15.0, 18.0) * k
    xm = xc + rng.uniform(0.0, 8.0) * k
    # vertebral body protrudes into the cavity so the lungs wrap around it (gutters)
    y_post_cav = yc + b - 2.0 - rng.uniform(8, 20) * k - muscle_post
    y_vb = y_post_cav - 0.2 * r_vb
    hz = z_low + dome_l + rng.uniform(0.0, 0.04) * height
    heart = (hz, yc - rng.uniform(0.15, 0.3) * b, xm + rng.uniform(22.0, 35.0) * k)
    heart_axes = (
        rng.uniform(0.14, 0.17) * height,
        rng.uniform(40.0, 50.0) * k,
        rng.uniform(52.0, 64.0) * k,
    )
    return Layout(
        xc=float(xc),
        yc=float(yc),
        a=float(a),
        b=float(b),
        k=float(k),
        fat=float(rng.uniform(5.0, 22.0) * k),
        muscle_lat=float(rng.uniform(9.0, 15.0) * k),
        muscle_ant=float(rng.uniform(8.0, 14.0) * k),
        muscle_post=float(muscle_post),
        z_low=float(z_low),
        height=float(height),
        dome_right=float(dome_r),
        dome_left=float(dome_l),
        xm=float(xm),
        y_vb=float(y_vb),
        r_vb=float(r_vb),
        heart=(float(heart[0]), float(heart[1]), float(heart[2])),
        heart_axes=(float(heart_axes[0]), float(heart_axes[1]), float(heart_axes[2])),
        u_carina=float(rng.uniform(0.64, 0.7)),
        u_hilum=float(rng.uniform(0.55, 0.61)),
        lung_hu=float(rng.uniform(-880.0, -850.0)),
        gradient_hu=float(rng.uniform(25.0, 60.0)),
        rib_pitch=float(height / rng.uniform(10.5, 11.5)),
        shift_x=float(shift),
    )


__all__ = ["Layout", "make_layout"]
