"""Fixtures for the io tests: small synthetic CT volumes with known content and geometry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from medsnowball.core import AcquisitionInfo, CTVolume, ImageGeometry


def rotation(axis: str, degrees: float) -> NDArray[np.float64]:
    """Rotation matrix about an LPS axis ('x', 'y' or 'z')."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def phantom_array(shape: tuple[int, int, int], seed: int = 0) -> NDArray[np.int16]:
    """A chest-like int16 HU array (z, y, x): air, body, two lungs, a spine disc, noise.

    Every slice differs (the spine moves with z) so slice order matters.
    """
    nz, ny, nx = shape
    zz, yy, xx = np.meshgrid(
        np.arange(nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij"
    )
    arr = np.full(shape, -1000.0)
    body = (yy / 0.85) ** 2 + (xx / 0.95) ** 2 <= 1
    arr[body] = 40.0
    lungs = ((yy + 0.1) / 0.55) ** 2 + ((np.abs(xx) - 0.45) / 0.3) ** 2 <= 1
    arr[lungs] = -850.0
    spine_y = 0.6 - 0.3 * zz / max(nz - 1, 1)
    arr[((yy - spine_y) / 0.15) ** 2 + (xx / 0.15) ** 2 <= 1] = 700.0
    rng = np.random.default_rng(seed)
    arr += rng.normal(0, 10, shape)
    return np.clip(np.rint(arr), -1024, 3000).astype(np.int16)


@pytest.fixture
def rot() -> Callable[[str, float], NDArray[np.float64]]:
    """The :func:`rotation` helper as a fixture."""
    return rotation


@pytest.fixture
def make_volume() -> Callable[..., CTVolume]:
    """Factory: ``make_volume(shape=(16, 40, 48), spacing=(2.0, 0.8, 0.7), ...)``."""

    def make(
        shape: tuple[int, int, int] = (16, 40, 48),
        spacing: tuple[float, float, float] = (2.0, 0.8, 0.7),
        origin: tuple[float, float, float] = (-16.5, -20.25, -120.0),
        direction: NDArray[np.float64] | None = None,
        seed: int = 0,
        array: NDArray[np.int16] | None = None,
    ) -> CTVolume:
        arr = phantom_array(shape, seed) if array is None else array
        geom = ImageGeometry(
            arr.shape, spacing, origin, np.eye(3) if direction is None else direction
        )
        acq = AcquisitionInfo(
            manufacturer="SYNTH",
            model="Phantom",
            kernel="B50f",
            slice_thickness_mm=spacing[0],
            kvp=120.0,
        )
        return CTVolume(arr, geom, source="synthetic", acquisition=acq)

    return make


@pytest.fixture
def sitk_series() -> Callable[[Path], tuple[NDArray[np.float64], object]]:
    """Read a folder with SimpleITK's ImageSeriesReader (its own GDCM discovery)."""
    import SimpleITK as sitk  # noqa: N813

    def read(folder: Path, series_uid: str = "") -> tuple[NDArray[np.float64], object]:
        reader = sitk.ImageSeriesReader()
        names = reader.GetGDCMSeriesFileNames(str(folder), series_uid, False, True)
        reader.SetFileNames(names)
        image = reader.Execute()
        return sitk.GetArrayFromImage(image), image

    return read
