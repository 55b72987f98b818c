"""Nodule specs, configs and random nodule mixes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medsnowball.core.errors import ConfigError
from medsnowball.synth import (
    LUNA16_DIAMETER_QUANTILES_MM,
    NoduleSpec,
    PhantomConfig,
    random_nodule_specs,
)

LUNA = Path(__file__).resolve().parents[3] / "shared" / "data" / "luna16_annotations.csv"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"diameter_mm": 8.0, "type": "cystic"},
        {"diameter_mm": 8.0, "location": "fissural"},
        {"diameter_mm": 8.0, "side": "middle"},
        {"diameter_mm": 8.0, "zone": "apex"},
        {"diameter_mm": 0.5},
        {"diameter_mm": 8.0, "type": "ground_glass", "calcified": True},
        {"diameter_mm": 8.0, "type": "part_solid", "solid_diameter_mm": 9.0},
    ],
)
def test_bad_nodule_spec(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        NoduleSpec(**kwargs)  # type: ignore[arg-type]


def test_solid_component_defaults() -> None:
    assert NoduleSpec(10.0, "solid").effective_solid_diameter_mm == 10.0
    assert NoduleSpec(10.0, "ground_glass").effective_solid_diameter_mm == 0.0
    assert NoduleSpec(10.0, "part_solid").effective_solid_diameter_mm == 5.0
    assert NoduleSpec(10.0, "part_solid", solid_diameter_mm=3).effective_solid_diameter_mm == 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape_zyx": (8, 64, 64)},
        {"spacing_zyx": (0.1, 1.0, 1.0)},
        {"body_fraction": 1.5},
        {"noise_hu": -1.0},
        {"dtype": "float64"},
        {"nodules": ("8 mm",)},
    ],
)
def test_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PhantomConfig(**kwargs)  # type: ignore[arg-type]


def test_config_dict_round_trip() -> None:
    cfg = PhantomConfig(
        shape_zyx=(40, 50, 60),
        spacing_zyx=(2.5, 0.8, 0.9),
        seed=7,
        origin_lps=(1.0, 2.0, 3.0),
        nodules=(NoduleSpec(6.0, "part_solid", "juxtavascular", side="left", zone="upper"),),
    )
    assert PhantomConfig.from_dict(cfg.to_dict()) == cfg


def test_random_specs_deterministic_and_bounded() -> None:
    a = random_nodule_specs(3, 50, min_mm=4.0, max_mm=20.0)
    b = random_nodule_specs(np.random.default_rng(3), 50, min_mm=4.0, max_mm=20.0)
    assert a == b
    assert all(4.0 <= s.diameter_mm <= 20.0 for s in a)
    assert random_nodule_specs(4, 50) != a
    assert all(s.side is None and s.zone is None for s in a)
    fixed = random_nodule_specs(3, 20, choose_side_zone=True)
    assert all(s.side in ("right", "left") and s.zone is not None for s in fixed)
    kinds = {s.type for s in random_nodule_specs(0, 200)}
    locs = {s.location for s in random_nodule_specs(0, 200)}
    assert kinds == {"solid", "part_solid", "ground_glass"}
    assert locs == {"parenchymal", "juxtapleural", "juxtavascular"}
    for s in random_nodule_specs(0, 200):
        if s.type == "part_solid":
            assert s.solid_diameter_mm is not None
            assert 0 < s.solid_diameter_mm < s.diameter_mm
        assert not (s.calcified and s.type != "solid")


def test_luna16_size_distribution() -> None:
    d = np.array([s.diameter_mm for s in random_nodule_specs(1, 4000)])
    assert np.median(d) == pytest.approx(6.43, abs=0.3)
    assert np.quantile(d, 0.9) == pytest.approx(15.48, rel=0.1)
    u = np.array([s.diameter_mm for s in random_nodule_specs(1, 4000, size_distribution="uniform")])
    assert np.median(u) == pytest.approx(16.5, abs=1.0)
    with pytest.raises(ConfigError):
        random_nodule_specs(1, 3, size_distribution="normal")  # type: ignore[arg-type]


def test_embedded_quantiles_match_luna16_file() -> None:
    if not LUNA.is_file():
        pytest.skip(f"{LUNA} not available")
    with LUNA.open() as fh:
        d = np.array([float(r["diameter_mm"]) for r in csv.DictReader(fh)])
    q = np.quantile(d, np.linspace(0, 1, 21))
    np.testing.assert_allclose(LUNA16_DIAMETER_QUANTILES_MM, q, atol=0.006)
