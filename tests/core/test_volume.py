from __future__ import annotations

import pickle

import numpy as np
import pytest

from medsnowball.core import AcquisitionInfo, CTVolume, ImageGeometry, PatientInfo


def _oblique_direction() -> np.ndarray:
    a = np.deg2rad(30.0)
    # rotation about z: columns are the world directions of index axes i, j, k
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_index_to_world_matches_itk_formula() -> None:
    d = _oblique_direction()
    g = ImageGeometry((10, 20, 30), (2.5, 0.8, 0.7), (-100.0, -50.0, 300.0), d)
    k, j, i = 3, 5, 7
    expected = np.array([-100.0, -50.0, 300.0]) + d @ (np.array([i, j, k]) * [0.7, 0.8, 2.5])
    np.testing.assert_allclose(g.index_to_world([k, j, i]), expected)
    np.testing.assert_allclose(g.world_to_index(expected), [k, j, i], atol=1e-9)


def test_index_to_world_agrees_with_simpleitk() -> None:
    import SimpleITK as sitk  # noqa: N813

    d = _oblique_direction()
    g = ImageGeometry((4, 5, 6), (2.0, 1.0, 0.5), (10.0, 20.0, 30.0), d)
    img = sitk.Image(6, 5, 4, sitk.sitkInt16)
    img.SetSpacing(g.spacing_xyz)
    img.SetOrigin(g.origin_lps)
    img.SetDirection(tuple(d.ravel()))
    for kji in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        ours = g.index_to_world(kji)
        theirs = img.TransformIndexToPhysicalPoint((kji[2], kji[1], kji[0]))
        np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_volume_is_read_only_and_checks_shape() -> None:
    g = ImageGeometry((2, 3, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    v = CTVolume(np.zeros((2, 3, 4), np.int16), g)
    with pytest.raises(ValueError, match="read-only"):
        v.array[0, 0, 0] = 1
    with pytest.raises(ValueError, match="does not match geometry"):
        CTVolume(np.zeros((2, 3, 5), np.int16), g)
    with pytest.raises(ValueError, match="positive"):
        ImageGeometry((2, 3, 4), (0.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def test_patient_info_hidden_from_repr_and_pickle_roundtrip() -> None:
    g = ImageGeometry((1, 2, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    v = CTVolume(
        np.zeros((1, 2, 2), np.float32),
        g,
        acquisition=AcquisitionInfo(kernel="B30f"),
        patient=PatientInfo(name="Doe^Jane", patient_id="12345"),
    )
    assert "Doe" not in repr(v)
    assert "12345" not in repr(v.patient)
    v2 = pickle.loads(pickle.dumps(v))
    assert v2.patient.name == "Doe^Jane"
    assert v2.geometry == v.geometry
    assert v2.acquisition.kernel == "B30f"


def test_geometry_equality_tolerance() -> None:
    a = ImageGeometry((2, 3, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert a == ImageGeometry((2, 3, 4), (1.0 + 1e-7, 1.0, 1.0), (0.0, 0.0, 1e-6))
    assert a != ImageGeometry((2, 3, 4), (1.0, 1.0, 1.1), (0.0, 0.0, 0.0))
