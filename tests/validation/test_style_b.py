"""Style-B phantoms (evaluation-only second anatomy/scanner style): truth, HU, noise, realism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsnowball.core.errors import ConfigError
from medsnowball.synth.generator import Phantom
from medsnowball.validation.shapes import NoduleShape
from medsnowball.validation.style_b import (
    STYLE_NAME,
    BTissue,
    StyleBConfig,
    generate_style_b,
    make_shape,
    random_style_b_config,
    random_synthetic_shapes,
)
from medsnowball.validation.style_b.tissue import CHEST_WALL

SMALL = {"shape_zyx": (96, 160, 160), "spacing_zyx": (2.0, 2.0, 2.0)}


def _shapes(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [
        make_shape(rng, 12.0, "solid", "lobulated"),
        make_shape(rng, 14.0, "ground_glass", "ellipsoid"),
        make_shape(rng, 14.0, "part_solid", "spiculated"),
        make_shape(rng, 9.0, "solid", "ellipsoid"),
        make_shape(rng, 11.0, "ground_glass", "lobulated"),
    ]


@pytest.fixture(scope="module")
def shapes() -> list:
    return _shapes()


@pytest.fixture(scope="module")
def base_cfg() -> StyleBConfig:
    return StyleBConfig(seed=5, kernel="soft", dose="standard", **SMALL)


@pytest.fixture(scope="module")
def phantom(base_cfg: StyleBConfig, shapes: list) -> Phantom:
    return generate_style_b(base_cfg, shapes)


@pytest.fixture(scope="module")
def clean(base_cfg: StyleBConfig, shapes: list) -> Phantom:
    return generate_style_b(StyleBConfig(**{**_kw(base_cfg), "noise_hu": 0.0}), shapes)


def _kw(cfg: StyleBConfig) -> dict:
    return {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}


def test_config_validation_and_random_mix() -> None:
    with pytest.raises(ConfigError):
        StyleBConfig(spacing_zyx=(2.0, 3.0, 3.0))
    with pytest.raises(ConfigError):
        StyleBConfig(kernel="bone")
    with pytest.raises(ConfigError):
        StyleBConfig(padding_hu=-1000)
    cfgs = [random_style_b_config(s) for s in range(40)]
    assert random_style_b_config(7) == cfgs[7]
    assert {c.kernel for c in cfgs} == {"soft", "standard", "sharp"}
    assert {c.dose for c in cfgs} == {"low", "standard"}
    for c in cfgs:
        assert 0.5 <= c.spacing_zyx[1] <= 2.0
        assert 0.6 <= c.spacing_zyx[0] <= 5.0
        assert 180.0 <= c.shape_zyx[0] * c.spacing_zyx[0] <= 340.0
    assert cfgs[0].to_dict()["style"] == STYLE_NAME == "style_b"
    capped = random_style_b_config(3, max_voxels=2_000_000)
    assert int(np.prod(capped.shape_zyx)) <= 2_500_000


def test_deterministic_for_a_seed() -> None:
    cfg = StyleBConfig(seed=9, shape_zyx=(48, 96, 96), spacing_zyx=(2.5, 2.0, 2.0))
    a = generate_style_b(cfg, _shapes(1)[:2])
    b = generate_style_b(cfg, _shapes(1)[:2])
    np.testing.assert_array_equal(a.volume.array, b.volume.array)
    np.testing.assert_array_equal(a.lung_labels, b.lung_labels)
    np.testing.assert_array_equal(a.nodule_labels, b.nodule_labels)
    assert a.truth.nodules == b.truth.nodules
    c = generate_style_b(StyleBConfig(**{**_kw(cfg), "seed": 10}), _shapes(1)[:2])
    assert not np.array_equal(a.volume.array, c.volume.array)


def test_lungs_and_tissue_hu(phantom: Phantom, clean: Phantom) -> None:
    lungs, tis = phantom.lung_labels, phantom.tissue_labels
    n_r, n_l = np.count_nonzero(lungs == 1), np.count_nonzero(lungs == 2)
    assert n_r > 0
    assert n_l > 0
    assert n_r > n_l
    assert phantom.truth.right_lung_ml > phantom.truth.left_lung_ml
    # right lung on the patient's right = smaller x
    assert np.argwhere(lungs == 1)[:, 2].mean() < np.argwhere(lungs == 2)[:, 2].mean()
    v = phantom.volume.array
    assert -900.0 <= float(np.median(v[tis == BTissue.LUNG])) <= -780.0
    c = clean.volume.array
    post = c[tis == BTissue.LUNG]
    assert -900.0 <= float(np.median(post)) <= -780.0
    # dependent gradient: posterior lung denser than anterior by tens of HU
    ys = np.argwhere(tis == BTissue.LUNG)[:, 1]
    lo, hi = np.quantile(ys, [0.15, 0.85])
    grad = float(np.median(post[ys >= hi]) - np.median(post[ys <= lo]))
    assert 10.0 <= grad <= 90.0
    assert float(np.median(c[tis == BTissue.LUNG_VESSEL])) > -200.0
    fis = c[tis == BTissue.FISSURE]
    assert fis.size > 0
    assert -800.0 <= float(np.median(fis)) <= -200.0
    assert float(np.median(c[tis == BTissue.AIRWAY_LUMEN])) < -700.0
    assert float(np.median(c[tis == BTissue.CORTICAL_BONE])) > 300.0
    assert np.count_nonzero(tis == BTissue.SMALL_VESSEL) > 0
    assert len(phantom.vessels) > 200
    assert phantom.vessels.r1.min() < 1.0


def test_nodule_truth(phantom: Phantom, shapes: list) -> None:
    truth = phantom.truth
    assert truth.skipped == ()
    assert len(truth.nodules) == len(shapes)
    vox = float(np.prod(phantom.volume.geometry.spacing_zyx))
    for t, shp in zip(truth.nodules, shapes, strict=True):
        mask = phantom.nodule_labels == t.id
        assert mask.sum() * vox == pytest.approx(t.volume_mm3, rel=1e-6)
        assert t.diameter_mm == pytest.approx(t.equivalent_diameter_mm, abs=0.01)
        com = np.argwhere(mask).mean(axis=0)
        assert np.all(np.abs(com - np.asarray(t.center_zyx)) <= 1.0)
        world = phantom.volume.geometry
        lps = np.asarray(world.origin_lps) + com[::-1] * np.asarray(world.spacing_zyx)[::-1]
        np.testing.assert_allclose(lps, t.center_lps, atol=max(world.spacing_zyx))
        side = 1 if t.side == "right" else 2
        assert np.all(phantom.lung_labels[mask] == side)
        ci = tuple(np.rint(com).astype(int))
        assert phantom.lung_labels[ci] == side
        assert t.type == shp.type
        if t.location != "juxtapleural":
            assert t.volume_mm3 == pytest.approx(shp.reference_volume_mm3, rel=0.12)
        assert t.zone in ("upper", "middle", "lower")


def test_nodule_hu_by_type(phantom: Phantom, clean: Phantom) -> None:
    c, v = clean.volume.array, phantom.volume.array
    for t in phantom.truth.nodules:
        mask = phantom.nodule_labels == t.id
        core = ndimage.binary_erosion(mask)
        if t.type == "solid":
            assert core.any()
            assert -60.0 <= float(np.mean(c[core])) <= 70.0
        elif t.type == "ground_glass":
            assert -750.0 <= t.mean_hu <= -300.0
            assert -750.0 <= float(np.mean(v[mask])) <= -300.0
        else:  # part-solid: a solid core inside ground glass
            assert float(np.max(ndimage.uniform_filter(c, 3)[mask])) > -150.0
            assert float(np.median(c[mask])) < -200.0


def test_location_kinds() -> None:
    cfg = StyleBConfig(seed=21, location_weights=(0.0, 1.0, 1.0, 1.0), noise_hu=0.0, **SMALL)
    rng = np.random.default_rng(4)
    shps = [make_shape(rng, d, "solid", "ellipsoid") for d in (8.0, 9.0, 10.0, 7.0, 8.5, 9.5)]
    ph = generate_style_b(cfg, shps)
    seen = set()
    tis = ph.tissue_labels
    wall = np.isin(tis, [int(t) for t in CHEST_WALL])
    vessel = np.isin(tis, [int(BTissue.LUNG_VESSEL), int(BTissue.SMALL_VESSEL)])
    for t in ph.truth.nodules:
        ring = ndimage.binary_dilation(ph.nodule_labels == t.id, iterations=1)
        seen.add(t.location)
        if t.location == "juxtapleural":
            assert np.any(ring & wall)
        elif t.location == "juxtavascular":
            assert np.any(ring & vessel)
        elif t.location == "perifissural":
            assert np.any(ring & (tis == BTissue.FISSURE))
    assert seen == {"juxtapleural", "juxtavascular", "perifissural"}


def test_partial_fov_cuts_lungs_at_the_lateral_border() -> None:
    ph = generate_style_b(StyleBConfig(seed=3, partial_fov=True, **SMALL), [])
    lungs = ph.lung_labels
    assert np.any(lungs[:, :, 0] > 0) or np.any(lungs[:, :, -1] > 0)
    full = generate_style_b(StyleBConfig(seed=3, **SMALL), [])
    assert not np.any(full.lung_labels[:, :, [0, -1]] > 0)


def test_noise_is_correlated_and_follows_dose(
    phantom: Phantom, clean: Phantom, base_cfg: StyleBConfig, shapes: list
) -> None:
    inner = ndimage.binary_erosion(phantom.lung_labels > 0, iterations=3)
    noise = phantom.volume.array - clean.volume.array
    sd = float(noise[inner].std())
    assert sd == pytest.approx(phantom.truth.config["noise_hu_effective"], rel=0.15)
    assert 10.0 * 0.85 <= sd <= 20.0 * 1.15
    pair = inner[:, :, 1:] & inner[:, :, :-1]
    corr = np.corrcoef(noise[:, :, 1:][pair], noise[:, :, :-1][pair])[0, 1]
    assert corr > 0.3
    low = generate_style_b(StyleBConfig(**{**_kw(base_cfg), "dose": "low"}), shapes)
    sd_low = float((low.volume.array - clean.volume.array)[inner].std())
    assert 30.0 * 0.85 <= sd_low <= 60.0 * 1.15
    assert sd_low > 1.5 * sd


def test_int16_and_scan_circle_padding() -> None:
    cfg = StyleBConfig(
        seed=2, shape_zyx=(40, 96, 96), spacing_zyx=(2.5, 2.0, 2.0), padding_hu=-3024, dtype="int16"
    )
    ph = generate_style_b(cfg, [])
    arr = ph.volume.array
    assert arr.dtype == np.int16
    assert np.all(arr[:, 0, 0] == -3024)
    assert arr[:, 48, 48].max() > -3024
    assert ph.truth.config["style"] == "style_b"


def test_classical_lung_segmentation_finds_the_lungs(phantom: Phantom) -> None:
    from medsnowball.lung import segment_lungs

    seg = segment_lungs(phantom.volume)
    labels = np.asarray(seg.labels)
    found = np.count_nonzero(labels > 0)
    true = np.count_nonzero(phantom.lung_labels > 0)
    assert found == pytest.approx(true, rel=0.15)


@pytest.mark.parametrize("source", ["ellipsoid", "lobulated", "spiculated"])
def test_synthetic_shape_volumes(source: str) -> None:
    rng = np.random.default_rng(3)
    shp = make_shape(rng, 10.0, "part_solid", source)
    assert isinstance(shp, NoduleShape)
    assert shp.reference_volume_mm3 == pytest.approx(np.pi / 6 * 1000.0, rel=1e-9)
    assert shp.reference_volume_spread_mm3 == 0.0
    sp = (1.0, 0.8, 0.8)
    occ = shp.render(sp)
    solid = shp.render_solid(sp)
    assert solid is not None
    assert solid.shape == occ.shape
    assert occ.min() >= 0.0
    assert occ.max() <= 1.0
    assert occ.sum() * np.prod(sp) == pytest.approx(shp.reference_volume_mm3, rel=0.03)
    com = ndimage.center_of_mass(occ)
    np.testing.assert_allclose(com, (np.asarray(occ.shape) - 1) / 2, atol=1.0)
    assert 0 < solid.sum() < occ.sum()


def test_random_synthetic_shape_mix() -> None:
    shps = random_synthetic_shapes(np.random.default_rng(0), 90)
    d = np.array([s.diameter_mm for s in shps])
    assert d.min() >= 3.0
    assert d.max() <= 25.0
    assert 4.5 <= float(np.median(d)) <= 9.0
    sub = np.mean([s.type != "solid" for s in shps])
    assert 0.2 <= sub <= 0.48
    assert {s.source for s in shps} == {"ellipsoid", "lobulated", "spiculated"}
    assert all(s.render_solid((1.0, 1.0, 1.0)) is None for s in shps[:5] if s.type != "part_solid")


def test_truth_plugs_into_the_evaluation(phantom: Phantom, tmp_path) -> None:
    from medsnowball.evaluation.io import phantom_series_uid, read_truth_json
    from medsnowball.evaluation.matching import match_candidates
    from medsnowball.synth.specs import PhantomTruth

    truth = phantom.truth
    assert PhantomTruth.from_json(truth.to_json()) == truth
    assert phantom_series_uid(truth.config) == phantom.volume.series_uid
    path = tmp_path / "truth.json"
    path.write_text(truth.to_json(), encoding="utf-8")
    case = read_truth_json(path)
    assert len(case.nodules) == len(truth.nodules)
    preds = [(t.center_lps, 0.9) for t in truth.nodules] + [((0.0, 0.0, 500.0), 0.5)]
    match = match_candidates(preds, truth.nodules)
    assert match.label.count("tp") == len(truth.nodules)
    assert match.label.count("fp") == 1


def test_sharp_kernel_overshoots_at_vessel_edges(
    clean: Phantom, base_cfg: StyleBConfig, shapes: list
) -> None:
    sharp = generate_style_b(
        StyleBConfig(**{**_kw(base_cfg), "noise_hu": 0.0, "kernel": "sharp"}), shapes
    )
    tis = clean.tissue_labels
    np.testing.assert_array_equal(tis, sharp.tissue_labels)  # same anatomy, other kernel
    big = tis == BTissue.LUNG_VESSEL
    ring = ndimage.binary_dilation(big, iterations=2) & ~big & (tis == BTissue.LUNG)
    soft_edge = float(np.percentile(clean.volume.array[ring], 5))
    sharp_edge = float(np.percentile(sharp.volume.array[ring], 5))
    lung_floor = float(np.percentile(clean.volume.array[tis == BTissue.LUNG], 1))
    assert sharp_edge < soft_edge - 20.0
    assert sharp_edge < lung_floor
