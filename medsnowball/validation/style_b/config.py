"""Configuration of the style-B phantoms (evaluation only, never for training or tuning).

Style B ("style_b") is a second chest-CT anatomy and scanner style, designed independently
of :mod:`medsnowball.synth`, used only for leave-one-style-out *evaluation*.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from medsnowball.core.errors import ConfigError

#: Name of the style in the held-out registry; evaluation only.
STYLE_NAME = "style_b"
KERNELS: tuple[str, ...] = ("soft", "standard", "sharp")
DOSES: tuple[str, ...] = ("low", "standard")
#: Nodule location kinds, in the order of ``StyleBConfig.location_weights``.
LOCATIONS: tuple[str, ...] = ("parenchymal", "juxtapleural", "juxtavascular", "perifissural")
#: Parenchymal noise standard deviation (HU) drawn per dose when ``noise_hu`` is ``None``.
DOSE_NOISE_HU: dict[str, tuple[float, float]] = {"low": (30.0, 60.0), "standard": (10.0, 20.0)}
PADDING_VALUES: tuple[int, ...] = (-2048, -3024)


@dataclass(frozen=True)
class StyleBConfig:
    """Everything that defines one style-B phantom; equal configs give identical phantoms.

    Attributes:
        seed: Seed of every random choice (anatomy, trees, hard negatives, nodules, noise).
        shape_zyx: Voxels along z, y, x (each >= 32).
        spacing_zyx: Voxel size in mm: slices 0.6-5 mm, in-plane 0.5-2 mm.
        kernel: Reconstruction kernel: "soft", "standard" or "sharp" (edge overshoot).
        dose: "low" (parenchymal noise 30-60 HU) or "standard" (10-20 HU).
        partial_fov: Body wider than the reconstructed field of view: the lungs are cut by
            the lateral image border.
        location_weights: Probabilities of the nodule locations (parenchymal, juxtapleural,
            juxtavascular, perifissural).
        noise_hu: Noise standard deviation; ``None`` draws it from the dose range, 0 gives a
            noise-free image with the same anatomy.
        slice_thickness_mm: Reconstructed slice thickness (``None`` = slice spacing);
            thicker than the spacing gives overlapping slices.
        padding_hu: Value outside the scanner's reconstruction circle (-2048, -3024) or
            ``None`` for no padding.
        dtype: "float32" or "int16" HU array.
        hard_negatives: Add pleural plaques, atelectasis, scars, emphysema, mucus plugs and
            cartilage calcification (fissures, vessels and airways are always there).
        max_placement_tries: Random places tried per nodule before skipping it.

    Raises:
        ConfigError: On out-of-range values.
    """

    seed: int = 0
    shape_zyx: tuple[int, int, int] = (96, 160, 160)
    spacing_zyx: tuple[float, float, float] = (2.0, 2.0, 2.0)
    kernel: str = "standard"
    dose: str = "standard"
    partial_fov: bool = False
    location_weights: tuple[float, float, float, float] = (0.4, 0.25, 0.2, 0.15)
    noise_hu: float | None = None
    slice_thickness_mm: float | None = None
    padding_hu: int | None = None
    dtype: str = "float32"
    hard_negatives: bool = True
    max_placement_tries: int = 300

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape_zyx)
        spacing = tuple(float(s) for s in self.spacing_zyx)
        object.__setattr__(self, "shape_zyx", shape)
        object.__setattr__(self, "spacing_zyx", spacing)
        object.__setattr__(self, "location_weights", tuple(float(w) for w in self.location_weights))
        if len(shape) != 3 or min(shape) < 32:
            raise ConfigError(f"StyleBConfig.shape_zyx needs 3 sizes >= 32, got {shape}.")
        if len(spacing) != 3 or not 0.6 <= spacing[0] <= 5.0:
            raise ConfigError(f"StyleBConfig slice spacing must lie in 0.6-5 mm, got {spacing}.")
        if not all(0.5 <= s <= 2.0 for s in spacing[1:]):
            raise ConfigError(f"StyleBConfig in-plane spacing must lie in 0.5-2 mm, got {spacing}.")
        if self.kernel not in KERNELS:
            raise ConfigError(f"StyleBConfig.kernel must be one of {KERNELS}, got {self.kernel!r}.")
        if self.dose not in DOSES:
            raise ConfigError(f"StyleBConfig.dose must be one of {DOSES}, got {self.dose!r}.")
        lw = self.location_weights
        if len(lw) != len(LOCATIONS) or min(lw) < 0 or sum(lw) <= 0:
            raise ConfigError(f"StyleBConfig.location_weights needs 4 weights >= 0, got {lw}.")
        if self.noise_hu is not None and not 0.0 <= self.noise_hu <= 200.0:
            raise ConfigError(f"StyleBConfig.noise_hu must lie in 0-200, got {self.noise_hu}.")
        if self.slice_thickness_mm is not None and not (
            0.5 <= self.slice_thickness_mm <= 3.0 * spacing[0] + 5.0
        ):
            raise ConfigError(f"Implausible slice thickness {self.slice_thickness_mm} mm.")
        if self.padding_hu is not None and self.padding_hu not in PADDING_VALUES:
            raise ConfigError(f"StyleBConfig.padding_hu must be None or one of {PADDING_VALUES}.")
        if self.dtype not in ("float32", "int16"):
            raise ConfigError(f"StyleBConfig.dtype must be float32 or int16, got {self.dtype!r}.")
        if int(np.prod(shape, dtype=np.int64)) > 400 * 1024 * 1024:
            raise ConfigError(f"StyleBConfig.shape_zyx {shape} is too large (> 400 M voxels).")

    @property
    def thickness_mm(self) -> float:
        """Effective reconstructed slice thickness in mm."""
        return float(self.slice_thickness_mm or self.spacing_zyx[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict, with ``"style": "style_b"``."""
        d = dataclasses.asdict(self)
        for key in ("shape_zyx", "spacing_zyx", "location_weights"):
            d[key] = list(d[key])
        d["style"] = STYLE_NAME
        return d


def random_style_b_config(seed: int, *, max_voxels: int | None = None) -> StyleBConfig:
    """Draw a realistic scanner/protocol mix for one style-B case.

    In-plane pixels mostly 0.6-0.9 mm (512 matrix over a 300-450 mm FOV), sometimes coarser
    research copies (1-2 mm); slices 0.625-5 mm; 200-320 mm of z; kernels, doses, partial
    field of view (15 %), scan-circle padding (40 %) and int16 storage (50 %) mixed.

    Args:
        seed: Seed of the draw (also the phantom's seed).
        max_voxels: Optional cap; the matrix is coarsened (pixel size raised up to 2 mm,
            slices up to 5 mm) until the grid holds at most this many voxels.

    Returns:
        The config.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B]))
    partial = bool(rng.uniform() < 0.15)
    # a cropped reconstruction (partial FOV) uses a small field of view
    fov = float(rng.uniform(260.0, 320.0) if partial else rng.uniform(300.0, 450.0))
    nxy = 512 if rng.uniform() < 0.8 else int(rng.choice([256, 320, 384]))
    dxy = float(np.clip(fov / nxy, 0.5, 2.0))
    dz = float(rng.choice([0.625, 1.0, 1.25, 2.0, 2.5, 5.0], p=[0.2, 0.25, 0.2, 0.1, 0.15, 0.1]))
    thick = dz * float(rng.choice([1.0, 1.0, 1.25, 1.5])) if dz < 3.0 else dz
    length = float(rng.uniform(220.0, 320.0))
    if max_voxels is not None:
        while nxy * nxy * (length / dz) > max_voxels and (dxy < 2.0 or dz < 5.0):
            if dxy < 2.0:
                nxy = max(32, int(nxy * 0.8))
                dxy = min(2.0, fov / nxy)
            else:
                dz = min(5.0, dz * 1.5)
                thick = max(thick, dz)
    nz = max(32, round(length / dz))
    return StyleBConfig(
        seed=int(seed),
        shape_zyx=(nz, nxy, nxy),
        spacing_zyx=(dz, round(dxy, 4), round(dxy, 4)),
        kernel=str(rng.choice(KERNELS, p=[0.3, 0.4, 0.3])),
        dose=str(rng.choice(DOSES)),
        partial_fov=partial,
        slice_thickness_mm=round(thick, 3),
        padding_hu=int(rng.choice(PADDING_VALUES)) if rng.uniform() < 0.4 else None,
        dtype="int16" if rng.uniform() < 0.5 else "float32",
    )


__all__ = [
    "DOSES",
    "DOSE_NOISE_HU",
    "KERNELS",
    "LOCATIONS",
    "STYLE_NAME",
    "StyleBConfig",
    "random_style_b_config",
]
