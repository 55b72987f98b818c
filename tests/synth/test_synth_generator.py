"""Ground truth of generated phantoms agrees with their images and masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsnowball.synth import (
    NoduleSpec,
    Phantom,
    PhantomConfig,
    PhantomTruth,
    Tissue,
    generate_phantom,
)
from medsnowball.synth.tissues import CHEST_WALL


def _nodule_mask(ph: Phantom, nid: int) -> np.ndarray:
    return ph.nodule_labels == nid


def test_all_requested_nodules_placed(mixed_phantom: Phantom) -> None:
    t = mixed_phantom.truth
    assert t.skipped == ()
    assert [n.id for n in t.nodules] == list(range(1, 7))
    assert set(np.unique(mixed_phantom.nodule_labels)) == set(range(7))


def test_deterministic_for_a_seed(mixed_config: PhantomConfig, mixed_phantom: Phantom) -> None:
    again = generate_phantom(mixed_config)
    np.testing.assert_array_equal(again.volume.array, mixed_phantom.volume.array)
    np.testing.assert_array_equal(again.nodule_labels, mixed_phantom.nodule_labels)
    np.testing.assert_array_equal(again.lung_labels, mixed_phantom.lung_labels)
    assert again.truth.to_json() == mixed_phantom.truth.to_json()
    assert again.volume.series_uid == mixed_phantom.volume.series_uid


def test_other_seed_gives_other_phantom() -> None:
    a = generate_phantom(PhantomConfig(shape_zyx=(48, 64, 64), spacing_zyx=(5.0, 4.0, 4.0), seed=1))
    b = generate_phantom(PhantomConfig(shape_zyx=(48, 64, 64), spacing_zyx=(5.0, 4.0, 4.0), seed=2))
    assert not np.array_equal(a.volume.array, b.volume.array)
    assert a.volume.series_uid != b.volume.series_uid


def test_geometry_and_metadata(mixed_phantom: Phantom) -> None:
    v = mixed_phantom.volume
    assert v.shape == (128, 128, 128)
    assert v.spacing_zyx == (2.0, 1.5, 1.5)
    np.testing.assert_allclose(v.direction, np.eye(3))
    # x, y centred on the field of view
    centre = v.index_to_world([0, 63.5, 63.5])
    np.testing.assert_allclose(centre[:2], [0.0, 0.0], atol=1e-6)
    assert v.array.dtype == np.float32
    assert v.study_uid
    assert v.series_uid
    assert v.study_uid != v.series_uid
    assert v.acquisition.slice_thickness_mm == 2.0
    assert v.modality == "CT"


def test_slice_zero_is_inferior(mixed_phantom: Phantom) -> None:
    """Liver (below the right dome) lies in low slices, lung apices in high slices."""
    tissue = mixed_phantom.tissue_labels
    liver_k = np.flatnonzero((tissue == Tissue.LIVER).any(axis=(1, 2)))
    lung_k = np.flatnonzero(mixed_phantom.lung_labels.any(axis=(1, 2)))
    assert liver_k.mean() < lung_k.mean()
    assert lung_k.max() > liver_k.max()
    assert liver_k.min() == 0


def test_hu_values_of_tissues(clean_phantom: Phantom) -> None:
    hu = clean_phantom.volume.array
    t = clean_phantom.tissue_labels
    assert np.median(hu[t == Tissue.AIR]) == pytest.approx(-1000, abs=1)
    assert np.median(hu[t == Tissue.FAT]) == pytest.approx(-100, abs=1)
    assert np.median(hu[t == Tissue.MUSCLE]) == pytest.approx(45, abs=1)
    assert np.median(hu[t == Tissue.CORTICAL_BONE]) > 600
    assert -880 < np.median(hu[t == Tissue.LUNG]) < -820
    assert np.median(hu[t == Tissue.AIRWAY_LUMEN]) < -950
    # vessel voxels are at least half vessel (partial volume): >= -850 + 0.5 * 890
    assert float(hu[t == Tissue.LUNG_VESSEL].min()) >= -406
    assert float(hu[t == Tissue.LUNG_VESSEL].max()) == pytest.approx(40, abs=0.5)


@pytest.mark.parametrize(
    ("spacing", "blur", "min_corr", "max_corr"),
    [((1.0, 0.5, 0.5), 0.6, 0.6, 0.9), ((2.0, 1.5, 1.5), 0.0, -0.05, 0.05)],
)
def test_noise_level_and_correlation(
    spacing: tuple[float, float, float], blur: float, min_corr: float, max_corr: float
) -> None:
    """Air in front of the chest: mean -1000, std = noise_hu, correlated by the blur."""
    ph = generate_phantom(
        PhantomConfig(shape_zyx=(24, 96, 96), spacing_zyx=spacing, noise_hu=20.0, blur_mm=blur)
    )
    # rows 4-11: air in front of the chest, away from the image border
    hu = ph.volume.array[3:-3, 4:12, 4:-4].astype(np.float64)
    assert float(hu.mean()) == pytest.approx(-1000, abs=2)
    assert float(hu.std()) == pytest.approx(20.0, rel=0.1)
    a = hu - hu.mean()
    corr = float((a[:, :, 1:] * a[:, :, :-1]).mean() / a.var())
    assert min_corr < corr < max_corr


def test_lung_truth_volumes_and_sides(mixed_phantom: Phantom) -> None:
    ph = mixed_phantom
    vox_ml = np.prod(ph.volume.spacing_zyx) / 1000
    assert ph.truth.right_lung_ml == pytest.approx(np.sum(ph.lung_labels == 1) * vox_ml)
    assert ph.truth.left_lung_ml == pytest.approx(np.sum(ph.lung_labels == 2) * vox_ml)
    assert ph.truth.right_lung_ml > ph.truth.left_lung_ml > 100
    # right lung at smaller LPS x = smaller column index
    cols_r = np.nonzero(ph.lung_labels == 1)[2].mean()
    cols_l = np.nonzero(ph.lung_labels == 2)[2].mean()
    assert cols_r < 64 < cols_l
    # lung voxels are dark
    lung_hu = ph.volume.array[(ph.lung_labels > 0) & (ph.tissue_labels == Tissue.LUNG)]
    assert -900 < np.median(lung_hu) < -800


def test_lungs_touch_at_anterior_junction() -> None:
    """At some level the two lungs come within 2 mm of each other."""
    ph = generate_phantom(
        PhantomConfig(shape_zyx=(100, 256, 256), spacing_zyx=(2.5, 0.7, 0.7), seed=5)
    )
    right = ph.lung_labels == 1
    near_right = ndimage.binary_dilation(right, structure=np.ones((1, 3, 3)), iterations=3)
    touching = (near_right & (ph.lung_labels == 2)).any(axis=(1, 2))
    assert touching.sum() >= 3


def test_nodule_volumes_match_spec(mixed_phantom: Phantom) -> None:
    ph = mixed_phantom
    vox = np.prod(ph.volume.spacing_zyx)
    for n in ph.truth.nodules:
        count = int(_nodule_mask(ph, n.id).sum())
        assert n.volume_mm3 == pytest.approx(count * vox)
        sphere = np.pi / 6 * n.diameter_mm**3
        assert abs(n.volume_mm3 - sphere) <= vox  # exact up to one voxel
        assert n.equivalent_diameter_mm == pytest.approx(n.diameter_mm, rel=0.02)


def test_nodule_centres(mixed_phantom: Phantom) -> None:
    ph = mixed_phantom
    for n in ph.truth.nodules:
        idx = np.argwhere(_nodule_mask(ph, n.id)).mean(axis=0)
        np.testing.assert_allclose(n.center_zyx, idx, atol=1e-6)
        np.testing.assert_allclose(n.center_lps, ph.volume.index_to_world(idx), atol=1e-6)


def test_nodules_in_requested_side_and_zone(
    mixed_phantom: Phantom, mixed_config: PhantomConfig
) -> None:
    ph = mixed_phantom
    hi, lo = ph.truth.zone_bounds_z  # type: ignore[misc]
    for n, spec in zip(ph.truth.nodules, mixed_config.nodules, strict=True):
        mask = _nodule_mask(ph, n.id)
        side_label = 1 if n.side == "right" else 2
        assert np.all(ph.lung_labels[mask] == side_label)
        if spec.side is not None:
            assert n.side == spec.side
        if spec.zone is not None:
            assert n.zone == spec.zone
        z = n.center_lps[2]
        expected = "upper" if z >= hi else ("lower" if z < lo else "middle")
        assert n.zone == expected
        assert (n.type, n.location, n.calcified) == (spec.type, spec.location, spec.calcified)


def test_nodule_hu_by_type(clean_phantom: Phantom, mixed_phantom: Phantom) -> None:
    for ph, blurred in ((clean_phantom, False), (mixed_phantom, True)):
        hu = ph.volume.array
        for n in ph.truth.nodules:
            core = ndimage.binary_erosion(_nodule_mask(ph, n.id))
            mean = float(hu[core].mean())
            if n.calcified:
                assert mean > 300
            elif n.type == "solid":
                assert -60 < mean < 120, (n, mean)
            elif n.type == "ground_glass":
                assert -700 < mean < -450, (n, mean)
            else:  # part solid: ground glass around a solid core
                assert -550 < mean < -100, (n, mean)
                assert float(hu[core].max()) > (-100 if blurred else 0)
        if not blurred:
            for n in ph.truth.nodules:
                assert n.mean_hu == pytest.approx(float(hu[_nodule_mask(ph, n.id)].mean()), abs=0.1)


def test_juxtapleural_touches_chest_wall(mixed_phantom: Phantom) -> None:
    ph = mixed_phantom
    wall = np.isin(ph.tissue_labels, [int(c) for c in CHEST_WALL])
    for n in ph.truth.nodules:
        grown = ndimage.binary_dilation(_nodule_mask(ph, n.id))
        touches_wall = bool((grown & wall).any())
        touches_outside_lung = bool((grown & (ph.lung_labels == 0)).any())
        if n.location == "juxtapleural":
            assert touches_wall
            assert touches_outside_lung
        else:
            assert not touches_wall


def test_parenchymal_away_from_pleura(mixed_phantom: Phantom) -> None:
    ph = mixed_phantom
    dist = ndimage.distance_transform_edt(ph.lung_labels > 0, sampling=ph.volume.spacing_zyx)
    for n in ph.truth.nodules:
        d = float(dist[_nodule_mask(ph, n.id)].min())
        if n.location == "parenchymal":
            assert d >= 5.0, (n, d)


def test_juxtavascular_touches_vessel(mixed_phantom: Phantom) -> None:
    ph = mixed_phantom
    vessel = np.isin(ph.tissue_labels, [Tissue.LUNG_VESSEL, Tissue.SMALL_VESSEL])
    jv = [n for n in ph.truth.nodules if n.location == "juxtavascular"]
    assert jv
    for n in jv:
        mask = _nodule_mask(ph, n.id)
        grown = ndimage.binary_dilation(mask)
        assert (grown & ~mask & vessel).any()


def test_truth_json_round_trip(mixed_phantom: Phantom, mixed_config: PhantomConfig) -> None:
    text = mixed_phantom.truth.to_json()
    back = PhantomTruth.from_json(text)
    assert back == mixed_phantom.truth
    assert PhantomConfig.from_dict(back.config) == mixed_config


@pytest.mark.parametrize("spacing", [(2.5, 0.8, 0.8), (0.7, 1.2, 1.2), (5.0, 2.0, 2.0)])
def test_anisotropic_spacing(spacing: tuple[float, float, float]) -> None:
    fov = (300.0, 250.0, 250.0)
    shape = tuple(round(f / s) for f, s in zip(fov, spacing, strict=True))
    if np.prod(shape) > 128**3 * 1.6:  # keep the test small: shrink the FOV instead
        shape = tuple(min(s, 192) for s in shape)
    spec = NoduleSpec(10.0, "solid", "parenchymal")
    ph = generate_phantom(
        PhantomConfig(shape_zyx=shape, spacing_zyx=spacing, seed=4, nodules=(spec,))  # type: ignore[arg-type]
    )
    assert ph.volume.shape == shape
    assert ph.truth.right_lung_ml > 0
    assert ph.truth.left_lung_ml > 0
    (n,) = ph.truth.nodules
    vox = float(np.prod(spacing))
    assert abs(n.volume_mm3 - np.pi / 6 * 1000) <= vox
    # the mask's physical extent is about 10 mm along every axis
    idx = np.argwhere(ph.nodule_labels == 1)
    extent = (idx.max(axis=0) - idx.min(axis=0) + 1) * np.asarray(spacing)
    assert np.all(extent > 6.0)
    assert np.all(extent < 16.0 + np.asarray(spacing))


def test_fov_padding_and_int16() -> None:
    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=(32, 96, 96), spacing_zyx=(5.0, 3.0, 3.0), fov_padding=True, dtype="int16"
        )
    )
    a = ph.volume.array
    assert a.dtype == np.int16
    assert a[0, 0, 0] == -2048
    assert a[0, 48, 48] > -2048
    assert np.all(a[:, 48, :] >= -1100)  # the middle row lies inside the scan circle


def test_vessel_density() -> None:
    cfg = {"shape_zyx": (64, 96, 96), "spacing_zyx": (4.0, 3.0, 3.0), "seed": 3}
    none = generate_phantom(PhantomConfig(vessel_density=0.0, **cfg))  # type: ignore[arg-type]
    some = generate_phantom(PhantomConfig(**cfg))  # type: ignore[arg-type]
    dense = generate_phantom(PhantomConfig(vessel_density=2.0, **cfg))  # type: ignore[arg-type]
    assert len(none.vessels) == 0
    assert not np.isin(none.tissue_labels, [Tissue.LUNG_VESSEL, Tissue.SMALL_VESSEL]).any()
    assert 0 < len(some.vessels) < len(dense.vessels)


def test_unplaceable_nodule_is_reported() -> None:
    spec = NoduleSpec(35.0, "solid", "parenchymal")
    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=(32, 64, 64),
            spacing_zyx=(4.0, 2.0, 2.0),
            nodules=(spec,),
            max_placement_tries=5,
        )
    )
    assert ph.truth.nodules == ()
    assert len(ph.truth.skipped) == 1
    assert "35.0 mm" in ph.truth.skipped[0]
    assert not ph.nodule_labels.any()


@pytest.mark.slow
def test_full_size_phantom() -> None:
    """512 x 512 x 300 at 0.7 x 0.7 x 1 mm: adult lungs, all nodule kinds placed."""
    specs = (
        NoduleSpec(4.0, "solid", "parenchymal"),
        NoduleSpec(6.0, "ground_glass", "juxtapleural"),
        NoduleSpec(8.0, "part_solid", "juxtavascular"),
        NoduleSpec(25.0, "solid", "parenchymal"),
    )
    ph = generate_phantom(
        PhantomConfig(shape_zyx=(300, 512, 512), spacing_zyx=(1.0, 0.7, 0.7), seed=9, nodules=specs)
    )
    assert ph.truth.skipped == ()
    assert 1200 < ph.truth.right_lung_ml < 4000
    assert 1000 < ph.truth.left_lung_ml < ph.truth.right_lung_ml
    assert len(ph.vessels) > 2000
