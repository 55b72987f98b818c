"""Phantom specifications and ground-truth records of :mod:`medsnowball.synth`.

* :class:`NoduleSpec` -- what nodule to insert (size, type, location, side, zone).
* :class:`PhantomConfig` -- grid, seed, nodules and image-quality knobs of one phantom.
* :class:`NoduleTruth` / :class:`PhantomTruth` -- what was actually generated, serialisable
  to JSON (``truth.json``).
* :func:`random_nodule_specs` -- a reproducible random mix of nodules whose diameters
  follow the LUNA16 reference-nodule size distribution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from medsnowball.core.errors import ConfigError

NoduleKind = Literal["solid", "part_solid", "ground_glass"]
NoduleLocation = Literal["parenchymal", "juxtapleural", "juxtavascular"]
SideName = Literal["right", "left"]
ZoneName = Literal["upper", "middle", "lower"]

NODULE_TYPES: tuple[str, ...] = ("solid", "part_solid", "ground_glass")
NODULE_LOCATIONS: tuple[str, ...] = ("parenchymal", "juxtapleural", "juxtavascular")
SIDES: tuple[str, ...] = ("right", "left")
ZONES: tuple[str, ...] = ("upper", "middle", "lower")

# Quantiles (0, 5, 10, ..., 100 %) of ``diameter_mm`` over the 1,186 reference nodules of
# the LUNA16 challenge (annotations.csv, LIDC-IDRI, CC BY 3.0), computed once with
# ``numpy.quantile(d, numpy.linspace(0, 1, 21))`` and rounded to 0.01 mm. Min 3.25 mm,
# median 6.43 mm, max 32.27 mm. Diameters are drawn by inverse-CDF sampling of this
# piecewise-linear distribution (see :func:`sample_luna16_diameters`).
LUNA16_DIAMETER_QUANTILES_MM: tuple[float, ...] = (
    3.25,
    4.09,
    4.40,
    4.67,
    4.90,
    5.11,
    5.31,
    5.63,
    5.90,
    6.17,
    6.43,
    6.87,
    7.30,
    7.92,
    8.72,
    9.70,
    11.07,
    12.86,
    15.48,
    18.95,
    32.27,
)


@dataclass(frozen=True)
class NoduleSpec:
    """A nodule to insert into a phantom.

    Attributes:
        diameter_mm: Diameter of the sphere with the nodule's volume, 1-40 mm.
        type: "solid", "part_solid" or "ground_glass".
        location: "parenchymal" (>= 5 mm from pleura and from vessels of radius >= 1.5 mm),
            "juxtapleural" (abutting the costal pleura / chest wall) or "juxtavascular"
            (touching a pulmonary vessel).
        side: "right" or "left" lung; ``None`` draws one at random.
        zone: "upper", "middle" or "lower" third of the lung height; ``None`` at random.
        solid_diameter_mm: Diameter of the solid core of a part-solid nodule (default
            half the diameter); ignored for other types.
        calcified: Dense (> 300 HU) calcified nodule; only for solid nodules.

    Raises:
        ConfigError: On an unknown type/location/side/zone or an impossible size.
    """

    diameter_mm: float
    type: NoduleKind = "solid"
    location: NoduleLocation = "parenchymal"
    side: SideName | None = None
    zone: ZoneName | None = None
    solid_diameter_mm: float | None = None
    calcified: bool = False

    def __post_init__(self) -> None:
        if self.type not in NODULE_TYPES:
            raise ConfigError(f"NoduleSpec.type must be one of {NODULE_TYPES}, got {self.type!r}.")
        if self.location not in NODULE_LOCATIONS:
            raise ConfigError(
                f"NoduleSpec.location must be one of {NODULE_LOCATIONS}, got {self.location!r}."
            )
        if self.side is not None and self.side not in SIDES:
            raise ConfigError(f"NoduleSpec.side must be None or one of {SIDES}, got {self.side!r}.")
        if self.zone is not None and self.zone not in ZONES:
            raise ConfigError(f"NoduleSpec.zone must be None or one of {ZONES}, got {self.zone!r}.")
        if not (1.0 <= float(self.diameter_mm) <= 40.0):
            raise ConfigError(
                f"NoduleSpec.diameter_mm must lie in 1-40 mm, got {self.diameter_mm}."
            )
        if self.calcified and self.type != "solid":
            raise ConfigError(
                f"Only solid nodules can be calcified; got calcified=True with type {self.type!r}."
            )
        if self.solid_diameter_mm is not None and not (
            0.0 < float(self.solid_diameter_mm) < float(self.diameter_mm)
        ):
            raise ConfigError(
                "NoduleSpec.solid_diameter_mm must lie strictly between 0 and diameter_mm "
                f"({self.diameter_mm}), got {self.solid_diameter_mm}."
            )

    @property
    def effective_solid_diameter_mm(self) -> float:
        """Solid component diameter: full size (solid), 0 (ground glass) or the core."""
        if self.type == "solid":
            return float(self.diameter_mm)
        if self.type == "ground_glass":
            return 0.0
        if self.solid_diameter_mm is not None:
            return float(self.solid_diameter_mm)
        return 0.5 * float(self.diameter_mm)


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that defines one phantom; equal configs give identical phantoms.

    The anatomy scales with the field of view ``shape_zyx * spacing_zyx`` (an adult chest
    at about 350 mm in-plane FOV); nodules and the smallest vessels keep absolute sizes.

    Attributes:
        shape_zyx: Voxels along z, y, x.
        spacing_zyx: Voxel size in mm (z, y, x), each 0.3-10 mm.
        seed: Seed of every random choice (anatomy, vessels, nodule places, noise).
        nodules: Nodules to insert.
        noise_hu: Standard deviation of the (spatially correlated) noise in HU.
        blur_mm: Gaussian sigma (mm) of the scanner's point-spread function; the voxel
            footprint (FWHM = voxel size) is added to it in quadrature.
        vessel_density: Multiplies the number of vessel branches (0 = no vessel trees).
        body_fraction: Body width as a fraction of the in-plane FOV width (0.3-1.0).
        contrast: Contrast-enhanced blood pool (heart, aorta ~ 250-300 HU).
        fov_padding: Set voxels outside the scanner's reconstruction circle to -2048
            (as many scanners store them), to exercise loaders' padding handling.
        dtype: "float32" or "int16" HU array.
        origin_lps: World position of voxel (0, 0, 0); ``None`` gives a scanner-like
            origin (x and y centred on the FOV, table-height z values).
        max_placement_tries: Random places tried per nodule before giving up.
    """

    shape_zyx: tuple[int, int, int] = (128, 128, 128)
    spacing_zyx: tuple[float, float, float] = (2.0, 1.5, 1.5)
    seed: int = 0
    nodules: tuple[NoduleSpec, ...] = ()
    noise_hu: float = 15.0
    blur_mm: float = 0.6
    vessel_density: float = 1.0
    body_fraction: float = 0.9
    contrast: bool = False
    fov_padding: bool = False
    dtype: Literal["float32", "int16"] = "float32"
    origin_lps: tuple[float, float, float] | None = None
    max_placement_tries: int = 400

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape_zyx)
        spacing = tuple(float(s) for s in self.spacing_zyx)
        object.__setattr__(self, "shape_zyx", shape)
        object.__setattr__(self, "spacing_zyx", spacing)
        object.__setattr__(self, "nodules", tuple(self.nodules))
        if len(shape) != 3 or min(shape) < 16:
            raise ConfigError(f"PhantomConfig.shape_zyx needs 3 sizes >= 16, got {shape}.")
        if len(spacing) != 3 or not all(0.3 <= s <= 10.0 for s in spacing):
            raise ConfigError(
                f"PhantomConfig.spacing_zyx needs 3 values in 0.3-10 mm, got {spacing}."
            )
        if int(np.prod(shape, dtype=np.int64)) > 600 * 1024 * 1024:
            raise ConfigError(f"PhantomConfig.shape_zyx {shape} is too large (> 600 M voxels).")
        if not 0.3 <= self.body_fraction <= 1.0:
            raise ConfigError(
                f"PhantomConfig.body_fraction must lie in 0.3-1.0, got {self.body_fraction}."
            )
        if self.noise_hu < 0 or self.blur_mm < 0 or self.vessel_density < 0:
            raise ConfigError("PhantomConfig.noise_hu, blur_mm and vessel_density must be >= 0.")
        if self.dtype not in ("float32", "int16"):
            raise ConfigError(f"PhantomConfig.dtype must be float32 or int16, got {self.dtype!r}.")
        for spec in self.nodules:
            if not isinstance(spec, NoduleSpec):
                raise ConfigError(
                    f"PhantomConfig.nodules must hold NoduleSpec items, got {type(spec)}."
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (nodules as dicts)."""
        d = dataclasses.asdict(self)
        d["shape_zyx"] = list(self.shape_zyx)
        d["spacing_zyx"] = list(self.spacing_zyx)
        d["origin_lps"] = None if self.origin_lps is None else list(self.origin_lps)
        d["nodules"] = [dict(n) for n in d["nodules"]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhantomConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["nodules"] = tuple(NoduleSpec(**n) for n in d.get("nodules", ()))
        d["shape_zyx"] = tuple(d["shape_zyx"])
        d["spacing_zyx"] = tuple(d["spacing_zyx"])
        if d.get("origin_lps") is not None:
            d["origin_lps"] = tuple(d["origin_lps"])
        return cls(**d)


@dataclass(frozen=True)
class NoduleTruth:
    """Ground truth of one inserted nodule.

    Attributes:
        id: 1-based; the nodule's value in the instance mask.
        center_lps: Centroid of its mask, world LPS mm (x, y, z).
        center_zyx: Centroid of its mask, fractional voxel index (z, y, x).
        diameter_mm: The specified diameter (equivalent-sphere diameter).
        volume_mm3: Voxel count of its mask times the voxel volume.
        type: "solid", "part_solid" or "ground_glass".
        solid_diameter_mm: Diameter of the solid component (= diameter for solid, 0 for
            ground glass).
        location: "parenchymal", "juxtapleural" or "juxtavascular".
        side: "right" or "left".
        zone: "upper", "middle" or "lower" (third of the lung height, see docs/synth.md).
        calcified: Dense calcified nodule.
        mean_hu: Pre-noise, pre-blur mean HU of its voxels.
    """

    id: int
    center_lps: tuple[float, float, float]
    center_zyx: tuple[float, float, float]
    diameter_mm: float
    volume_mm3: float
    type: str
    solid_diameter_mm: float
    location: str
    side: str
    zone: str
    calcified: bool = False
    mean_hu: float = 0.0

    @property
    def equivalent_diameter_mm(self) -> float:
        """Diameter of the sphere with the mask's volume."""
        return float((6.0 * self.volume_mm3 / np.pi) ** (1.0 / 3.0))


@dataclass(frozen=True)
class PhantomTruth:
    """Ground truth of one phantom (serialised as ``truth.json``).

    Attributes:
        nodules: One record per inserted nodule, in id order.
        right_lung_ml: Right-lung mask voxel count times voxel volume, in ml.
        left_lung_ml: Left-lung mask voxel count times voxel volume, in ml.
        seed: The config's seed.
        config: The :class:`PhantomConfig` as a dict.
        zone_bounds_z: World z (LPS mm) of the upper/middle and middle/lower zone
            boundaries used for ``NoduleTruth.zone``.
        skipped: Human-readable notes on nodules that could not be placed.
    """

    nodules: tuple[NoduleTruth, ...]
    right_lung_ml: float
    left_lung_ml: float
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    zone_bounds_z: tuple[float, float] | None = None
    skipped: tuple[str, ...] = ()

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to a JSON string."""
        d = dataclasses.asdict(self)
        d["format"] = "medsnowball.synth.truth/1"
        return json.dumps(d, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> PhantomTruth:
        """Parse a string written by :meth:`to_json`.

        Raises:
            ConfigError: If the text is not a phantom truth document.
        """
        try:
            d = json.loads(text)
            d.pop("format", None)
            nodules = tuple(
                NoduleTruth(
                    **{
                        **n,
                        "center_lps": tuple(n["center_lps"]),
                        "center_zyx": tuple(n["center_zyx"]),
                    }
                )
                for n in d.pop("nodules")
            )
            zb = d.pop("zone_bounds_z", None)
            return cls(
                nodules=nodules,
                zone_bounds_z=None if zb is None else (float(zb[0]), float(zb[1])),
                skipped=tuple(d.pop("skipped", ())),
                **d,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"Expected a medsnowball.synth truth JSON document, could not parse it: {exc}"
            ) from exc


def sample_luna16_diameters(
    rng: np.random.Generator, n: int, min_mm: float = 3.0, max_mm: float = 30.0
) -> np.ndarray:
    """Draw diameters from the LUNA16 size distribution truncated to ``[min_mm, max_mm]``.

    Args:
        rng: Random generator.
        n: Number of diameters.
        min_mm: Smallest diameter.
        max_mm: Largest diameter.

    Returns:
        float64 array ``(n,)`` of diameters in mm.
    """
    q = np.asarray(LUNA16_DIAMETER_QUANTILES_MM)
    p = np.linspace(0.0, 1.0, q.size)
    lo_mm, hi_mm = max(min_mm, q[0]), min(max_mm, q[-1])
    if lo_mm >= hi_mm:  # range outside the reference distribution: fall back to uniform
        return rng.uniform(min_mm, max_mm, size=n)
    lo, hi = np.interp([lo_mm, hi_mm], q, p)
    u = rng.uniform(lo, hi, size=n)
    d = np.interp(u, p, q)
    return np.clip(d, min_mm, max_mm)


def random_nodule_specs(
    rng_or_seed: np.random.Generator | int,
    n: int,
    *,
    min_mm: float = 3.0,
    max_mm: float = 30.0,
    size_distribution: Literal["luna16", "uniform"] = "luna16",
    type_weights: tuple[float, float, float] = (0.7, 0.15, 0.15),
    location_weights: tuple[float, float, float] = (0.5, 0.3, 0.2),
    calcified_fraction: float = 0.05,
    choose_side_zone: bool = False,
) -> tuple[NoduleSpec, ...]:
    """A reproducible random mix of nodules.

    Args:
        rng_or_seed: Generator or integer seed.
        n: Number of nodules.
        min_mm: Smallest diameter.
        max_mm: Largest diameter.
        size_distribution: "luna16" (the LUNA16 reference nodules' diameter distribution,
            truncated) or "uniform".
        type_weights: Probabilities of solid, part-solid, ground-glass.
        location_weights: Probabilities of parenchymal, juxtapleural, juxtavascular.
        calcified_fraction: Probability that a solid nodule is calcified.
        choose_side_zone: Fix a random side and zone in each spec. By default both are
            left ``None``, so the generator picks them per placement attempt and large
            nodules still find room (the phantom's truth records where they went).

    Returns:
        ``n`` nodule specs.

    Raises:
        ConfigError: On an unknown size distribution or an empty size range.
    """
    rng = (
        rng_or_seed
        if isinstance(rng_or_seed, np.random.Generator)
        else np.random.default_rng(rng_or_seed)
    )
    if not 1.0 <= min_mm <= max_mm <= 40.0:
        raise ConfigError(f"Expected 1 <= min_mm <= max_mm <= 40, got {min_mm}, {max_mm}.")
    if size_distribution == "luna16":
        diameters = sample_luna16_diameters(rng, n, min_mm, max_mm)
    elif size_distribution == "uniform":
        diameters = rng.uniform(min_mm, max_mm, size=n)
    else:
        raise ConfigError(
            f"size_distribution must be 'luna16' or 'uniform', got {size_distribution!r}."
        )
    tw = np.asarray(type_weights, dtype=float) / np.sum(type_weights)
    lw = np.asarray(location_weights, dtype=float) / np.sum(location_weights)
    specs = []
    for d in diameters:
        kind = str(rng.choice(NODULE_TYPES, p=tw))
        loc = str(rng.choice(NODULE_LOCATIONS, p=lw))
        side = str(rng.choice(SIDES))
        zone = str(rng.choice(ZONES))
        if not choose_side_zone:
            side = zone = None  # type: ignore[assignment]
        solid = float(round(d * rng.uniform(0.3, 0.7), 2)) if kind == "part_solid" else None
        calc = bool(kind == "solid" and rng.uniform() < calcified_fraction)
        specs.append(
            NoduleSpec(
                diameter_mm=float(round(d, 2)),
                type=kind,  # type: ignore[arg-type]
                location=loc,  # type: ignore[arg-type]
                side=side,  # type: ignore[arg-type]
                zone=zone,  # type: ignore[arg-type]
                solid_diameter_mm=solid,
                calcified=calc,
            )
        )
    return tuple(specs)


def phantom_uid(config: Mapping[str, Any], kind: str) -> str:
    """The DICOM UID the generator gives a phantom: ``2.25.<uuid of sha256(kind + config)>``.

    Args:
        config: ``PhantomConfig.to_dict()`` (as stored in ``truth.json`` under ``config``).
        kind: ``"study"`` or ``"series"``.

    Returns:
        The UID (so a phantom's DICOM series UID can be recovered from its truth file).
    """
    digest = hashlib.sha256((kind + json.dumps(dict(config), sort_keys=True)).encode()).digest()
    return "2.25." + str(uuid.UUID(bytes=digest[:16]).int)


__all__ = [
    "LUNA16_DIAMETER_QUANTILES_MM",
    "NODULE_LOCATIONS",
    "NODULE_TYPES",
    "SIDES",
    "ZONES",
    "NoduleSpec",
    "NoduleTruth",
    "PhantomConfig",
    "PhantomTruth",
    "phantom_uid",
    "random_nodule_specs",
    "sample_luna16_diameters",
]
