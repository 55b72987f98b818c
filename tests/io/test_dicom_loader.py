"""DICOM series loading: geometry vs SimpleITK, HU conversion, irregular series, errors."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder

from medsnowball.core import (
    CorruptFileError,
    ImageTooLargeError,
    InconsistentSeriesError,
    MissingCodecError,
)
from medsnowball.io import load_ct, load_dicom_series, write_dicom_series


@pytest.mark.parametrize(
    "direction_kind", ["identity", "oblique", "feet_first"], ids=lambda s: str(s)
)
def test_geometry_and_values_equal_simpleitk(
    tmp_path, make_volume, sitk_series, rot, direction_kind
):
    direction = {
        "identity": np.eye(3),
        "oblique": rot("x", 18.0) @ rot("z", 35.0),
        "feet_first": np.diag([1.0, -1.0, -1.0]),  # normal points to the feet
    }[direction_kind]
    vol = make_volume(shape=(20, 40, 48), direction=direction)
    write_dicom_series(vol, tmp_path, file_names="shuffled", pixel_representation=1)
    loaded = load_ct(tmp_path, canonical=False)
    arr, image = sitk_series(tmp_path)
    np.testing.assert_allclose(loaded.origin_lps, image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(loaded.geometry.spacing_xyz, image.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(
        loaded.direction, np.reshape(image.GetDirection(), (3, 3)), atol=1e-6
    )
    np.testing.assert_array_equal(loaded.array, arr)
    np.testing.assert_array_equal(loaded.array, vol.array)
    assert loaded.geometry == vol.geometry
    assert loaded.array.dtype == np.int16
    assert not loaded.array.flags.writeable
    # source_files follow slice order, whatever the file names
    z = [
        float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
        for f in loaded.source_files
    ]
    assert z == sorted(z, reverse=direction_kind == "feet_first")
    assert loaded.acquisition.kernel == "B50f"
    assert loaded.acquisition.kvp == 120.0
    assert loaded.warnings == ()
    assert loaded.quality == ()
    if direction_kind == "feet_first":
        # Analysed on the canonical grid: y and z flipped back, stored grid kept aside.
        canon = load_ct(tmp_path)
        np.testing.assert_array_equal(canon.array, vol.array[::-1, ::-1, :])
        np.testing.assert_allclose(canon.direction, np.eye(3), atol=1e-9)
        assert canon.stored_geometry == vol.geometry
        assert [f.code for f in canon.quality] == ["input_reoriented"]
        assert canon.source_files == loaded.source_files[::-1]
        np.testing.assert_allclose(
            canon.index_to_world((0, 0, 0)), vol.index_to_world((19, 39, 0)), atol=1e-4
        )


def test_serial_and_parallel_decoding_agree(tmp_path, make_volume):
    vol = make_volume(shape=(12, 32, 32))
    files = write_dicom_series(vol, tmp_path, file_names="shuffled")
    a = load_dicom_series(files, max_workers=1)
    b = load_dicom_series(list(reversed(files)), max_workers=4)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.source_files == b.source_files == tuple(str(f) for f in files)


def test_per_slice_rescale_gives_float32(tmp_path, make_volume):
    vol = make_volume(shape=(6, 16, 16))
    files = write_dicom_series(
        vol,
        tmp_path,
        rescale_intercept=-1000.0,
        extra_tags={"RescaleSlope": lambda k: f"{1 + 0.5 * k:g}"},
    )
    loaded = load_ct(tmp_path)
    assert loaded.array.dtype == np.float32
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        expected = ds.pixel_array * (1 + 0.5 * k) - 1000.0
        np.testing.assert_allclose(loaded.array[k], np.maximum(expected, -1024), rtol=1e-6)


def test_signed_and_unsigned_give_same_hu(tmp_path, make_volume):
    vol = make_volume(shape=(4, 16, 16))
    write_dicom_series(vol, tmp_path / "u", pixel_representation=0)
    write_dicom_series(vol, tmp_path / "s", pixel_representation=1, rescale_intercept=0.0)
    u, s = load_ct(tmp_path / "u"), load_ct(tmp_path / "s")
    np.testing.assert_array_equal(u.array, vol.array)
    np.testing.assert_array_equal(s.array, vol.array)


def test_padding_and_below_air_mapped_to_air(tmp_path, make_volume):
    arr = np.zeros((3, 16, 16), np.int16)
    arr[:, 0, :] = 3000  # will be declared padding (stored 4024 with intercept -1024)
    arr[:, 1, :] = -2000  # fill outside the scan circle, signed storage
    vol = make_volume(shape=arr.shape, array=arr)
    write_dicom_series(vol, tmp_path / "pad", extra_tags={"PixelPaddingValue": 4024})
    loaded = load_ct(tmp_path / "pad")
    assert np.all(loaded.array[:, 0, :] == -1024)
    assert np.all(loaded.array[:, 1, :] == -1024)  # stored 0 -> -1024 (clipped low end)
    assert np.all(loaded.array[:, 2:, :] == 0)
    write_dicom_series(vol, tmp_path / "neg", pixel_representation=1, rescale_intercept=0.0)
    assert np.all(load_ct(tmp_path / "neg").array[:, 1, :] == -1024)


def test_bits_stored_12_signed_is_sign_extended(tmp_path, make_volume):
    arr = np.full((2, 8, 8), -5, np.int16)
    arr[:, :, 4:] = 1000
    vol = make_volume(shape=arr.shape, array=arr)
    files = write_dicom_series(vol, tmp_path, pixel_representation=1, rescale_intercept=0.0)
    for f in files:
        ds = pydicom.dcmread(f)
        raw = np.frombuffer(ds.PixelData, dtype="<i2") & 0x0FFF  # 12-bit two's complement
        ds.PixelData = raw.astype("<u2").tobytes()
        ds.BitsStored, ds.HighBit = 12, 11
        ds.save_as(f, enforce_file_format=True)
    loaded = load_ct(tmp_path)
    np.testing.assert_array_equal(loaded.array, arr)


@pytest.mark.parametrize(
    "syntax",
    [pydicom.uid.RLELossless, pydicom.uid.JPEGLSLossless, pydicom.uid.JPEG2000Lossless],
    ids=["rle", "jpegls", "j2k"],
)
def test_compressed_series_decode_exactly(tmp_path, make_volume, syntax):
    vol = make_volume(shape=(5, 40, 48))
    write_dicom_series(vol, tmp_path, transfer_syntax=syntax, file_names="shuffled")
    loaded = load_ct(tmp_path)
    np.testing.assert_array_equal(loaded.array, vol.array)
    assert loaded.geometry == vol.geometry


def test_missing_codec_error(tmp_path, make_volume, monkeypatch):
    vol = make_volume(shape=(3, 16, 16))
    write_dicom_series(vol, tmp_path, transfer_syntax=pydicom.uid.RLELossless)
    monkeypatch.setattr(get_decoder(pydicom.uid.RLELossless), "_available", {})
    with pytest.raises(MissingCodecError) as info:
        load_ct(tmp_path)
    assert "RLE Lossless" in str(info.value)
    assert 'pip install "medsnowball[dicom]"' in str(info.value)
    assert isinstance(info.value, ImportError)


def test_enhanced_multiframe_ct(tmp_path, make_volume, rot):
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    vol = make_volume(shape=(10, 32, 40), direction=rot("x", 15.0))
    files = write_dicom_series(vol, tmp_path / "single", file_names="shuffled")
    legacy = [pydicom.dcmread(f) for f in files]
    enhanced = LegacyConvertedEnhancedCTImage(
        legacy, pydicom.uid.generate_uid(), 9, pydicom.uid.generate_uid(), 1
    )
    (tmp_path / "mf").mkdir()
    enhanced.save_as(tmp_path / "mf" / "enhanced")
    loaded = load_ct(tmp_path / "mf", canonical=False)
    np.testing.assert_array_equal(loaded.array, vol.array)
    assert loaded.geometry == vol.geometry
    assert set(loaded.source_files) == {str(tmp_path / "mf" / "enhanced")}


def test_exact_duplicates_dropped_conflicting_rejected(tmp_path, make_volume, caplog):
    vol = make_volume(shape=(8, 16, 16))
    files = write_dicom_series(vol, tmp_path / "dup")
    shutil.copy(files[3], tmp_path / "dup" / "copy_of_4")
    with caplog.at_level(logging.WARNING):
        loaded = load_ct(tmp_path / "dup")
    np.testing.assert_array_equal(loaded.array, vol.array)
    assert any("duplicate" in w for w in loaded.warnings)

    folder = tmp_path / "conflict"
    write_dicom_series(vol, folder)
    ds = pydicom.dcmread(files[3])
    ds.PixelData = (np.frombuffer(ds.PixelData, "<u2") + 7).astype("<u2").tobytes()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ref = pydicom.dcmread(folder / "IM00001.dcm")
    ds.SeriesInstanceUID, ds.StudyInstanceUID = ref.SeriesInstanceUID, ref.StudyInstanceUID
    ds.save_as(folder / "other_4", enforce_file_format=True)
    with pytest.raises(InconsistentSeriesError, match="same position"):
        load_ct(folder)


def _ramp_volume(make_volume, n=12):
    arr = np.broadcast_to((np.arange(n) * 10 - 500)[:, None, None], (n, 8, 8)).astype(np.int16)
    return make_volume(shape=arr.shape, spacing=(2.0, 1.0, 1.0), array=np.ascontiguousarray(arr))


def test_missing_slice_resampled_with_warning(tmp_path, make_volume):
    vol = _ramp_volume(make_volume)
    files = write_dicom_series(vol, tmp_path)
    files[5].unlink()
    loaded = load_ct(tmp_path)
    assert loaded.shape == vol.shape
    assert loaded.geometry == vol.geometry
    np.testing.assert_array_equal(loaded.array, vol.array)  # linear data: exact
    assert any("resampled" in w for w in loaded.warnings)
    assert loaded.source_files == ()
    flags = {f.code: f for f in loaded.quality}
    assert set(flags) == {"slices_resampled"}
    assert flags["slices_resampled"].severity == "info"
    assert flags["slices_resampled"].message in loaded.warnings


def test_gap_too_large_is_an_error(tmp_path, make_volume):
    files = write_dicom_series(_ramp_volume(make_volume), tmp_path)
    for f in files[4:7]:
        f.unlink()
    with pytest.raises(InconsistentSeriesError, match="slices are missing"):
        load_ct(tmp_path)


def test_uneven_spacing_resampled_small_jitter_kept(tmp_path, make_volume):
    vol = _ramp_volume(make_volume)
    jitter = np.array([0, 0.1, -0.05, 0.0, 0.45, 0, 0, -0.1, 0, 0.05, 0, 0])
    origin = np.asarray(vol.origin_lps)

    def pos(k: int, amount: float) -> list[str]:
        p = origin + np.array([0, 0, 2.0 * k + amount * jitter[k]])
        return [f"{v:.6f}" for v in p]

    write_dicom_series(
        vol, tmp_path / "uneven", extra_tags={"ImagePositionPatient": lambda k: pos(k, 1)}
    )
    loaded = load_ct(tmp_path / "uneven")
    assert any("Uneven slice spacing" in w for w in loaded.warnings)
    assert loaded.shape[0] == 12
    assert loaded.spacing_zyx[0] == pytest.approx(2.0, abs=0.01)
    write_dicom_series(
        vol, tmp_path / "small", extra_tags={"ImagePositionPatient": lambda k: pos(k, 0.2)}
    )
    small = load_ct(tmp_path / "small")
    assert small.warnings == ()
    assert small.shape[0] == 12
    np.testing.assert_array_equal(small.array, vol.array)


def test_gantry_tilt_corrected_onto_orthogonal_grid(tmp_path, make_volume):
    nz, ny, nx, dz, sy = 16, 48, 40, 2.0, 0.8
    tilt = np.deg2rad(12.0)
    shift_mm = dz * np.tan(tilt)  # in-plane (y) offset per slice, as a tilted gantry gives
    jj, ii = np.mgrid[:ny, :nx]
    arr = np.full((nz, ny, nx), -1000, np.int16)
    centre_y_world, centre_x_px = 6.0, 20.0
    origin = np.array([-16.0, -20.0, -100.0])
    for k in range(nz):
        j_c = (centre_y_world - (origin[1] + k * shift_mm)) / sy  # fixed world y
        arr[k][((jj - j_c) * sy) ** 2 + (ii - centre_x_px) ** 2 * 0.64 <= 25] = 400
    vol = make_volume(shape=arr.shape, spacing=(dz, sy, 0.8), origin=tuple(origin), array=arr)

    def pos(k: int) -> list[str]:
        return [f"{v:.6f}" for v in origin + np.array([0.0, k * shift_mm, k * dz])]

    write_dicom_series(vol, tmp_path, extra_tags={"ImagePositionPatient": pos})
    loaded = load_ct(tmp_path)
    assert any("tilt of about 12.0" in w for w in loaded.warnings)
    assert [(f.code, f.severity) for f in loaded.quality] == [("gantry_tilt_corrected", "info")]
    assert "tilt of about 12.0" in loaded.quality[0].message
    np.testing.assert_allclose(loaded.direction, np.eye(3), atol=1e-9)
    assert loaded.spacing_zyx[0] == pytest.approx(dz, abs=1e-6)
    # the cylinder is straight along z in world space, so straight in the corrected grid
    for k in range(nz):
        mask = loaded.array[k] > 0
        j_mean = float(np.mean(np.nonzero(mask)[0]))
        world_y = loaded.index_to_world([k, j_mean, centre_x_px])[1]
        assert world_y == pytest.approx(centre_y_world, abs=0.2)


def test_single_slice_and_mixed_series_errors(tmp_path, make_volume, rot):
    write_dicom_series(make_volume(shape=(1, 8, 8)), tmp_path / "one")
    with pytest.raises(InconsistentSeriesError, match="at least 2"):
        load_dicom_series(list((tmp_path / "one").iterdir()))
    uid = pydicom.uid.generate_uid()
    write_dicom_series(make_volume(shape=(3, 8, 8)), tmp_path / "mix", series_uid=uid)
    write_dicom_series(
        make_volume(shape=(3, 10, 8), origin=(0, 0, 50)),
        tmp_path / "mix",
        series_uid=uid,
        file_names="uid",
    )
    with pytest.raises(InconsistentSeriesError, match="mixes image sizes"):
        load_dicom_series(list((tmp_path / "mix").iterdir()))
    write_dicom_series(make_volume(shape=(3, 8, 8)), tmp_path / "ori", series_uid=uid)
    write_dicom_series(
        make_volume(shape=(3, 8, 8), direction=rot("z", 10), origin=(0, 0, 50)),
        tmp_path / "ori",
        series_uid=uid,
        file_names="uid",
    )
    with pytest.raises(InconsistentSeriesError, match="orientations"):
        load_dicom_series(list((tmp_path / "ori").iterdir()))


def test_truncated_files_are_corrupt(tmp_path, make_volume):
    vol = make_volume(shape=(4, 32, 32))
    files = write_dicom_series(vol, tmp_path / "native")
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 700])
    with pytest.raises(CorruptFileError, match=files[2].name):
        load_ct(tmp_path / "native")
    rle = write_dicom_series(vol, tmp_path / "rle", transfer_syntax=pydicom.uid.RLELossless)
    data = rle[1].read_bytes()
    rle[1].write_bytes(data[: len(data) - 300])
    with pytest.raises(CorruptFileError, match=rle[1].name):
        load_ct(tmp_path / "rle")


def test_absurd_header_refused_before_allocation(tmp_path, make_volume):
    vol = make_volume(shape=(3, 8, 8))
    write_dicom_series(vol, tmp_path, extra_tags={"Rows": 60000, "Columns": 60000})
    with pytest.raises(ImageTooLargeError, match="GiB"):
        load_ct(tmp_path)
    small = make_volume(shape=(3, 64, 64))
    write_dicom_series(small, tmp_path / "ok")
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_ct(tmp_path / "ok", max_bytes=10_000)
    assert load_ct(tmp_path / "ok").shape == (3, 64, 64)


def test_deflated_transfer_syntax(tmp_path, make_volume):
    vol = make_volume(shape=(3, 16, 16))
    write_dicom_series(vol, tmp_path, transfer_syntax=pydicom.uid.DeflatedExplicitVRLittleEndian)
    np.testing.assert_array_equal(load_ct(tmp_path).array, vol.array)
