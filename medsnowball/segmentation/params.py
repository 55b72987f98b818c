"""Constants and diagnostics of the training-free nodule segmentation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentationParams:
    """Tunable constants of :func:`medsnowball.segmentation.segment_nodule`.

    Defaults were tuned on synthetic phantoms (seeds 9001-9012, none used by benchmarks).

    Attributes:
        smoothing_mm: Gaussian sigma applied before thresholding (noise).
        air_split_hu: Below this a voxel counts as aerated lung (local lung mask).
        parenchyma_max_hu: Parenchyma statistics use lung voxels below this.
        solid_split_hu: A seed level above this means a solid core is present.
        solid_level_floor_hu: Solid tissue is assumed at least this dense: small or thinly
            sliced solid nodules never reach their true level in the image.
        low_margin_hu: Minimum height of the low (ground-glass search) threshold above the
            parenchyma level.
        noise_k: The low threshold is at least this many noise sigmas above parenchyma.
        min_contrast_hu: Below this seed-to-parenchyma contrast there is no nodule.
        ggn_rings_mm: In-plane distance bands around a solid core where ground glass is
            looked for (:func:`medsnowball.segmentation.steps.ring_levels`).
        ggn_ring_hu: A core is surrounded by ground glass when the outermost ring lies at
            least this far above parenchyma...
        ggn_ring_score: ...or when ``ring[1] + 2 ring[2]`` reaches this (the blurred edge
            of a solid nodule decays faster). Both are for a solid contrast of 880 HU and
            scale with the actual one.
        ggn_max_hu: The ground glass found around a core must lie below this level.
        ggn_level_percentile: Percentile of the ground-glass shell around a solid core
            taken as the ground-glass level (its blurred outer edge pulls the median down).
        pv_blur_mm: Assumed scanner blur (sigma, mm) for partial-volume rims and the
            partial-volume correction.
        opening_fraction: First opening radius, as a fraction of the inscribed radius.
        opening_fraction_max: Opening fraction tried when the first one leaves a leak.
        min_opening_mm: Smallest opening radius.
        max_opening_mm: Largest opening radius.
        compact_factor: A mask reaching farther than this many inscribed radii from the
            seed is taken to have leaked along a vessel.
        default_diameter_mm: Expected size when the candidate gives none.
        partial_volume: Apply the partial-volume volume correction.
    """

    smoothing_mm: float = 0.5
    air_split_hu: float = -400.0
    parenchyma_max_hu: float = -550.0
    solid_split_hu: float = -350.0
    solid_level_floor_hu: float = 0.0
    low_margin_hu: float = 120.0
    noise_k: float = 5.0
    min_contrast_hu: float = 100.0
    ggn_rings_mm: tuple[tuple[float, float], ...] = ((0.7, 1.2), (1.2, 1.7), (1.7, 2.2))
    ggn_ring_hu: float = 38.0
    ggn_ring_score: float = 190.0
    ggn_max_hu: float = -300.0
    ggn_level_percentile: float = 75.0
    pv_blur_mm: float = 0.7
    opening_fraction: float = 0.75
    opening_fraction_max: float = 0.92
    min_opening_mm: float = 0.8
    max_opening_mm: float = 4.0
    compact_factor: float = 2.5
    default_diameter_mm: float = 6.0
    partial_volume: bool = True


@dataclass(frozen=True)
class SegmentationDetails:
    """How a nodule was segmented (for debugging, tests and tuning).

    Attributes:
        kind: "solid", "subsolid", "ground_glass" or "fallback".
        threshold_hu: Final threshold (smoothed HU).
        parenchyma_hu: Local parenchyma level.
        noise_hu: Robust noise sigma of the smoothed parenchyma.
        core_hu: Level at the seed.
        ggn_hu: Ground-glass level (``None`` for solid nodules).
        ggn_excess: Ring score ``ring[1] + 2 ring[2]`` (HU) around a solid core (solid
            path only, else ``None``).
        opening_mm: Opening radius of the vessel cut.
        leak_clipped: The mask was clipped to a ball because it kept leaking.
        half_mm: Half edge of the final patch.
        factor_z: z refinement factor of the working grid.
        seed_zyx: Seed, source-grid index.
    """

    kind: str
    threshold_hu: float
    parenchyma_hu: float
    noise_hu: float
    core_hu: float
    ggn_hu: float | None
    ggn_excess: float | None
    opening_mm: float
    leak_clipped: bool
    half_mm: float
    factor_z: int
    seed_zyx: tuple[float, float, float]


__all__ = ["SegmentationDetails", "SegmentationParams"]
