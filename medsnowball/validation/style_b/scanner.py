"""Scanner model: kernel MTF, correlated noise with a kernel-dependent NPS, slice profile,
scan-circle padding.

In-plane, every slice is filtered in Fourier space: the image by the kernel's modulation
transfer function ``H(f)`` (Gaussian apodisation; the sharp kernel adds an unsharp-mask
boost, which overshoots at vessel edges), and white noise by ``sqrt(NPS)`` with the
filtered-back-projection shape ``NPS(f) ~ (f + f0) * A(f)^2`` (ramp times apodisation).
Along z both are convolved with a Gaussian slice-sensitivity profile of FWHM equal to the
slice thickness (so overlapping reconstructions correlate the noise between slices). The
noise is scaled analytically so its standard deviation equals the requested value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft
from scipy import ndimage

#: (image apodisation sigma mm, noise apodisation sigma mm, boost, boost sigma mm) per kernel.
KERNEL_PARAMS: dict[str, tuple[float, float, float, float]] = {
    "soft": (0.75, 1.3, 0.0, 1.0),
    "standard": (0.5, 0.8, 0.0, 1.0),
    "sharp": (0.3, 0.45, 0.9, 0.9),
}


def _freq2(ny: int, nx: int, dy: float, dx: float, full: bool) -> NDArray[np.float64]:
    fy = np.fft.fftfreq(ny, d=dy)[:, None]
    fx = (np.fft.fftfreq(nx, d=dx) if full else np.fft.rfftfreq(nx, d=dx))[None, :]
    return np.sqrt(fy * fy + fx * fx)


def kernel_mtf(f: NDArray[np.float64], kernel: str, noise: bool = False) -> NDArray[np.float64]:
    """Kernel transfer function at spatial frequencies ``f`` (cycles/mm).

    Args:
        f: Radial frequencies, any shape.
        kernel: "soft", "standard" or "sharp".
        noise: Use the (wider) noise apodisation.

    Returns:
        ``H(f)`` of the same shape.
    """
    s_img, s_noise, boost, s_boost = KERNEL_PARAMS[kernel]
    sig = s_noise if noise else s_img
    h = np.exp(-2.0 * (np.pi * sig * f) ** 2)
    if boost > 0:
        h = h * (1.0 + boost * (1.0 - np.exp(-2.0 * (np.pi * s_boost * f) ** 2)))
    return h


def slice_profile(thickness_mm: float, dz: float) -> NDArray[np.float64]:
    """Normalised Gaussian taps (FWHM = thickness) along z; a single tap when negligible."""
    sig = 0.4247 * thickness_mm / dz * 0.8
    if sig < 0.25:
        return np.ones(1)
    r = max(1, int(np.ceil(3 * sig)))
    x = np.arange(-r, r + 1)
    w = np.exp(-0.5 * (x / sig) ** 2)
    return w / w.sum()


def apply_scanner(
    hu: NDArray[np.float32],
    spacing_zyx: tuple[float, float, float],
    kernel: str,
    noise_hu: float,
    thickness_mm: float,
    seed_seq: np.random.SeedSequence,
) -> None:
    """Blur with the kernel MTF and add correlated noise, in place.

    Args:
        hu: float32 ``(z, y, x)`` HU volume.
        spacing_zyx: Voxel size (mm).
        kernel: Reconstruction kernel name.
        noise_hu: Standard deviation of the final noise (0 = none).
        thickness_mm: Slice thickness (FWHM of the z profile).
        seed_seq: Seed of the noise; slice ``k`` uses its own stream derived from it and
            ``k``.
    """
    nz, ny, nx = hu.shape
    dz, dy, dx = spacing_zyx
    f = _freq2(ny, nx, dy, dx, full=False)
    h_img = kernel_mtf(f, kernel).astype(np.float32)
    nps = (f + 0.02) * kernel_mtf(f, kernel, noise=True) ** 2
    f_full = _freq2(ny, nx, dy, dx, full=True)
    nps_full = (f_full + 0.02) * kernel_mtf(f_full, kernel, noise=True) ** 2
    wz = slice_profile(thickness_mm, dz)
    gain = float(np.sqrt(np.mean(nps_full) * np.sum(wz**2)))
    amp = (np.sqrt(nps) * (noise_hu / gain if noise_hu > 0 else 0.0) * np.sqrt(ny * nx)).astype(
        np.float32
    )
    base = [int(v) for v in seed_seq.generate_state(2)]
    for k in range(nz):
        spec = sfft.rfft2(hu[k], workers=1)
        spec *= h_img
        if noise_hu > 0:
            g = np.random.default_rng(np.random.SeedSequence([*base, 0xC7, k]))
            white = g.standard_normal((ny, nx), dtype=np.float32)
            spec += sfft.rfft2(white, norm="ortho", workers=1) * amp
        hu[k] = sfft.irfft2(spec, s=(ny, nx), workers=1)
    if len(wz) > 1:
        ndimage.correlate1d(hu, wz.astype(np.float32), axis=0, output=hu, mode="nearest")


def pad_scan_circle(
    hu: NDArray[np.float32], spacing_zyx: tuple[float, float, float], value: float
) -> None:
    """Set voxels outside the inscribed reconstruction circle to ``value`` (in place)."""
    _, ny, nx = hu.shape
    yy = (np.arange(ny) - (ny - 1) / 2)[:, None] * spacing_zyx[1]
    xx = (np.arange(nx) - (nx - 1) / 2)[None, :] * spacing_zyx[2]
    r = min(ny * spacing_zyx[1], nx * spacing_zyx[2]) / 2
    hu[:, yy**2 + xx**2 > r * r] = value


__all__ = ["KERNEL_PARAMS", "apply_scanner", "kernel_mtf", "pad_scan_circle", "slice_profile"]
