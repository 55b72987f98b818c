"""write_dicom_series / write_image: read back by pydicom and SimpleITK to the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813

from medsnowball.core import ImageGeometry
from medsnowball.io import write_dicom_series, write_image


def test_dicom_series_header_and_pixels(tmp_path, make_volume, rot):
    vol = make_volume(direction=rot("z", 15.0))
    files = write_dicom_series(vol, tmp_path, series_description="thin", series_number=7)
    assert len(files) == vol.shape[0]
    ds = pydicom.dcmread(files[3])
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.Modality == "CT"
    assert ds.InstanceNumber == 4
    assert ds.SeriesNumber == 7
    expected_pos = np.asarray(vol.origin_lps) + vol.direction[:, 2] * vol.spacing_zyx[0] * 3
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected_pos, atol=1e-6)
    np.testing.assert_allclose(
        [float(v) for v in ds.ImageOrientationPatient],
        np.concatenate([vol.direction[:, 0], vol.direction[:, 1]]),
        atol=1e-9,
    )
    # PixelSpacing is row spacing (y) then column spacing (x)
    assert [float(v) for v in ds.PixelSpacing] == [vol.spacing_zyx[1], vol.spacing_zyx[2]]
    assert ds.KVP == 120
    assert ds.Manufacturer == "SYNTH"
    assert ds.ConvolutionKernel == "B50f"
    hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, vol.array[3])
    uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert len(uids) == len(files)


@pytest.mark.parametrize(
    ("syntax", "pixel_representation"),
    [
        (pydicom.uid.ExplicitVRLittleEndian, 1),
        (pydicom.uid.ImplicitVRLittleEndian, 0),
        (pydicom.uid.RLELossless, 1),
        (pydicom.uid.JPEGLSLossless, 0),
        (pydicom.uid.JPEG2000Lossless, 0),
    ],
)
def test_dicom_series_read_by_simpleitk(
    tmp_path, make_volume, sitk_series, rot, syntax, pixel_representation
):
    vol = make_volume(shape=(6, 40, 48), direction=rot("x", 12.0) @ rot("z", -20.0))
    write_dicom_series(
        vol, tmp_path, transfer_syntax=syntax, pixel_representation=pixel_representation
    )
    arr, image = sitk_series(tmp_path)
    np.testing.assert_array_equal(arr, vol.array)
    np.testing.assert_allclose(image.GetOrigin(), vol.origin_lps, atol=1e-5)
    np.testing.assert_allclose(image.GetSpacing(), vol.geometry.spacing_xyz, rtol=1e-6)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), vol.direction, atol=1e-6)
    ts = pydicom.dcmread(next(tmp_path.iterdir()), stop_before_pixels=True)
    assert ts.file_meta.TransferSyntaxUID == syntax


def test_file_naming_modes(tmp_path, make_volume):
    vol = make_volume(shape=(5, 8, 8))
    inst = write_dicom_series(vol, tmp_path / "i")
    assert [p.name for p in inst] == [f"IM{k:05d}.dcm" for k in range(1, 6)]
    uid = write_dicom_series(vol, tmp_path / "u", file_names="uid")
    for p in uid:
        assert p.name == pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID + ".dcm"
    a = write_dicom_series(vol, tmp_path / "s1", file_names="shuffled", seed=3)
    b = write_dicom_series(vol, tmp_path / "s2", file_names="shuffled", seed=3)
    c = write_dicom_series(vol, tmp_path / "s3", file_names="shuffled", seed=4)
    assert [p.name for p in a] == [p.name for p in b] != [p.name for p in c]
    assert all("." not in p.name for p in a)
    assert [p.name for p in a] != sorted(p.name for p in a)  # not in slice order
    assert not list(tmp_path.rglob(".tmp-*"))


def test_extra_tags_callable_and_delete(tmp_path, make_volume):
    vol = make_volume(shape=(3, 8, 8))
    files = write_dicom_series(
        vol,
        tmp_path,
        extra_tags={"Modality": None, "AcquisitionNumber": lambda k: 10 + k},
        patient_name="DOE^JOHN",
    )
    ds = pydicom.dcmread(files[2], stop_before_pixels=True)
    assert "Modality" not in ds
    assert ds.AcquisitionNumber == 12
    assert ds.PatientName == "DOE^JOHN"


def test_hu_clipped_to_representable_range(tmp_path, make_volume):
    arr = np.zeros((2, 8, 8), np.int16)
    arr[0, 0, 0] = -3000  # below intercept for unsigned storage
    vol = make_volume(shape=(2, 8, 8), array=arr)
    files = write_dicom_series(vol, tmp_path, pixel_representation=0)
    assert pydicom.dcmread(files[0]).pixel_array[0, 0] == 0  # -1024 HU


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"])
def test_write_image_geometry_and_values(tmp_path, make_volume, rot, suffix):
    vol = make_volume(direction=rot("y", 10.0) @ rot("z", 30.0))
    path = write_image(vol, tmp_path / f"ct{suffix}")
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), vol.array)
    np.testing.assert_allclose(image.GetOrigin(), vol.origin_lps, atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), vol.geometry.spacing_xyz, rtol=1e-6)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), vol.direction, atol=1e-5)
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = ["ct.mhd", "ct.zraw"] if suffix == ".mhd" else [f"ct{suffix}"]
    assert names == expected


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.bool_])
def test_write_label_array_keeps_dtype(tmp_path, dtype):
    geom = ImageGeometry((4, 5, 6), (2.0, 1.0, 1.0), (1.0, 2.0, 3.0))
    labels = (np.arange(120).reshape(4, 5, 6) % 3).astype(dtype)
    path = write_image(labels, tmp_path / "lab.nii.gz", geom)
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert back.dtype == (np.uint8 if dtype is np.bool_ else dtype)
    np.testing.assert_array_equal(back, labels.astype(back.dtype))


def test_write_image_errors(tmp_path, make_volume):
    vol = make_volume(shape=(2, 4, 4))
    with pytest.raises(ValueError, match="format"):
        write_image(vol, tmp_path / "x.png")
    with pytest.raises(ValueError, match="geometry"):
        write_image(np.zeros((2, 4, 4)), tmp_path / "x.nii")
    with pytest.raises(ValueError, match="shape"):
        write_image(np.zeros((3, 4, 4)), tmp_path / "x.nii", vol.geometry)
    assert not Path(tmp_path / "x.nii").exists()
