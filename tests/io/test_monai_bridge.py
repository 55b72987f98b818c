"""MONAI bridge and transforms: same layout/affine as MONAI's own loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged, Orientationd, Spacingd

from medsnowball.core import CTVolume
from medsnowball.io import find_cases, load_ct, write_dicom_series, write_image
from medsnowball.io.monai_bridge import from_metatensor, to_metatensor
from medsnowball.transforms import HU_WINDOWS, HUWindowd, LoadCTd


def test_round_trip_exact(make_volume, rot):
    vol = make_volume(direction=rot("z", 30.0) @ rot("x", -12.0))
    t = vol.to_metatensor()
    assert isinstance(t, MetaTensor)
    assert tuple(t.shape) == (1, vol.shape[2], vol.shape[1], vol.shape[0])
    assert t.dtype == torch.int16
    assert t[0, 5, 7, 3].item() == vol.array[3, 7, 5]
    back = CTVolume.from_metatensor(t, series_uid="x")
    assert back.geometry == vol.geometry
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.array.dtype == np.int16
    assert back.series_uid == "x"
    assert back.source == "synthetic"


def test_affine_is_ras_of_lps_geometry(make_volume):
    vol = make_volume(origin=(10.0, 20.0, -30.0))
    aff = to_metatensor(vol).affine.numpy()
    ijk = np.array([4, 6, 2])  # (i, j, k) = (x, y, z) index
    lps = vol.index_to_world(ijk[::-1])
    np.testing.assert_allclose(aff @ [*ijk, 1], [-lps[0], -lps[1], lps[2], 1], atol=1e-9)


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR"])
def test_orientation_spacing_match_monai_loadimage(tmp_path, make_volume, rot, axcodes):
    vol = make_volume(shape=(12, 30, 36), direction=rot("z", 90.0))
    path = write_image(vol, tmp_path / "ct.nii.gz")
    monai_t = LoadImaged("img", ensure_channel_first=True)({"img": str(path)})["img"]
    ours = to_metatensor(load_ct(path, canonical=False), dtype=np.float32)
    assert torch.equal(monai_t, ours)
    assert torch.allclose(monai_t.affine, ours.affine)
    tf = Compose([Orientationd("img", axcodes=axcodes), Spacingd("img", pixdim=(1.5, 1.0, 2.5))])
    a = tf({"img": monai_t})["img"]
    b = tf({"img": ours})["img"]
    assert a.shape == b.shape
    assert torch.allclose(a.affine, b.affine)
    assert torch.allclose(a, b)


def test_from_metatensor_after_orientation_keeps_world_positions(make_volume, rot):
    vol = make_volume(shape=(10, 20, 24), direction=rot("z", 90.0))
    t = Orientationd("img", axcodes="RAS")({"img": to_metatensor(vol)})["img"]
    out = from_metatensor(t)
    np.testing.assert_allclose(np.abs(out.direction), np.abs(np.diag([1.0, 1.0, 1.0])), atol=1e-9)
    assert out.shape == (10, 24, 20)
    last = tuple(s - 1 for s in out.shape)
    for zyx in [(0, 0, 0), last, (4, 7, 11), (9, 0, 19)]:
        world = out.index_to_world(zyx)
        src = np.rint(vol.world_to_index(world)).astype(int)
        assert out.array[zyx] == vol.array[tuple(src)]


def test_from_metatensor_rejects_bad_input():
    t = MetaTensor(torch.zeros(2, 4, 4, 4), affine=torch.eye(4))
    with pytest.raises(ValueError, match="one channel"):
        from_metatensor(t)
    sheared = torch.eye(4, dtype=torch.float64)
    sheared[0, 1] = 0.5
    with pytest.raises(ValueError, match="sheared"):
        from_metatensor(MetaTensor(torch.zeros(1, 4, 4, 4), affine=sheared))


def test_loadctd_in_compose(tmp_path, make_volume):
    vol = make_volume(shape=(8, 20, 24))
    write_dicom_series(vol, tmp_path / "dcm", file_names="shuffled")
    case = find_cases(tmp_path / "dcm").cases[0]
    pipeline = Compose(
        [
            LoadCTd(["path", "case", "vol"], volume_key_postfix="_volume"),
            HUWindowd(["path", "case", "vol"], window="lung"),
        ]
    )
    out = pipeline({"path": str(tmp_path / "dcm"), "case": case, "vol": vol})
    for key in ("path", "case", "vol"):
        t = out[key]
        assert tuple(t.shape) == (1, 24, 20, 8)
        assert t.dtype == torch.float32
        lo, hi = HU_WINDOWS["lung"]
        expected = np.clip((vol.array.transpose(2, 1, 0) - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(t[0].numpy(), expected, atol=1e-6)
        assert isinstance(out[f"{key}_volume"], CTVolume)
    with pytest.raises(TypeError, match="LoadCTd expects"):
        LoadCTd("x")({"x": 3})


def test_huwindowd_custom_and_errors(make_volume):
    t = to_metatensor(make_volume(shape=(2, 4, 4)), dtype=np.float32)
    out = HUWindowd("img", window=(-100.0, 100.0), out_min=-1.0, out_max=1.0)({"img": t})["img"]
    assert float(out.min()) >= -1.0
    assert float(out.max()) <= 1.0
    assert isinstance(out, MetaTensor)
    assert torch.allclose(out.affine, t.affine)
    with pytest.raises(ValueError, match="Unknown HU window"):
        HUWindowd("img", window="brain")
    with pytest.raises(ValueError, match="hu_max > hu_min"):
        HUWindowd("img", window=(10.0, -10.0))
