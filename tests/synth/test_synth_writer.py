"""write_phantom round trips through medsnowball.io's loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medsnowball import io
from medsnowball.synth import NoduleSpec, Phantom, PhantomConfig, PhantomTruth, generate_phantom


@pytest.fixture(scope="module")
def small_phantom() -> Phantom:
    return generate_phantom(
        PhantomConfig(
            shape_zyx=(40, 64, 72),
            spacing_zyx=(5.0, 3.0, 3.0),
            seed=2,
            nodules=(NoduleSpec(12.0, "solid", "parenchymal"),),
        )
    )


@pytest.mark.parametrize("fmt", ["dicom", "nifti", "metaimage"])
def test_round_trip(small_phantom: Phantom, tmp_path: Path, fmt: str) -> None:
    paths = write_phantom_(small_phantom, tmp_path, fmt)
    vol = io.load_ct(paths["image"])
    assert vol.geometry == small_phantom.volume.geometry
    expected = np.clip(small_phantom.volume.array, -1024, None)
    np.testing.assert_allclose(np.clip(vol.array, -1024, None), expected, atol=0.51)
    if fmt == "dicom":
        assert vol.series_uid == small_phantom.volume.series_uid
        assert vol.study_uid == small_phantom.volume.study_uid
        assert len(list(paths["image"].iterdir())) == 40
    truth = PhantomTruth.from_json(paths["truth"].read_text())
    assert truth == small_phantom.truth
    for key, arr in (
        ("nodules", small_phantom.nodule_labels),
        ("lungs", small_phantom.lung_labels),
    ):
        img = sitk.ReadImage(str(paths[key]))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr)
        np.testing.assert_allclose(img.GetOrigin(), small_phantom.volume.origin_lps, atol=1e-4)
        np.testing.assert_allclose(img.GetSpacing(), (3.0, 3.0, 5.0))
    # the truth centre lies on the nodule in the written image's world coordinates
    (n,) = truth.nodules
    idx = np.rint(vol.world_to_index(n.center_lps)).astype(int)
    assert small_phantom.nodule_labels[tuple(idx)] == 1


def test_dicom_is_reproducible(small_phantom: Phantom, tmp_path: Path) -> None:
    a = write_phantom_(small_phantom, tmp_path / "a", "dicom")["image"]
    b = write_phantom_(small_phantom, tmp_path / "b", "dicom")["image"]
    for fa in sorted(a.iterdir()):
        assert fa.read_bytes() == (b / fa.name).read_bytes()


def test_bad_format(small_phantom: Phantom, tmp_path: Path) -> None:
    from medsnowball.core.errors import ConfigError

    with pytest.raises(ConfigError):
        write_phantom_(small_phantom, tmp_path, "png")


def test_truth_json_is_plain_json(small_phantom: Phantom, tmp_path: Path) -> None:
    p = write_phantom_(small_phantom, tmp_path, "nifti")["truth"]
    d = json.loads(p.read_text())
    assert d["format"] == "medsnowball.synth.truth/1"
    assert d["nodules"][0]["type"] == "solid"
    assert len(d["nodules"][0]["center_lps"]) == 3


def write_phantom_(ph: Phantom, out: Path, fmt: str) -> dict[str, Path]:
    from medsnowball.synth import write_phantom

    return write_phantom(ph, out, fmt)  # type: ignore[arg-type]
