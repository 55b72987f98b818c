"""Write a phantom to disk: image (DICOM series, NIfTI or MetaImage) plus its truth.

Layout of ``out_dir``::

    dicom/IM00001.dcm ...      (fmt="dicom"; slice k=0, the most inferior, is IM00001)
    image.nii.gz | image.mhd   (fmt="nifti" | "metaimage"; .mhd with its .zraw)
    truth.json                 PhantomTruth.to_json()
    nodules_truth.nii.gz       uint16 nodule instance mask (value = nodule id)
    lungs_truth.nii.gz         uint8 lung labels (1 right, 2 left)

The DICOM files are byte-for-byte reproducible for a phantom: every UID is derived from
the series UID and slice index, and dates are fixed.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Literal

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.errors import ConfigError
from medsnowball.synth.generator import Phantom

_FIXED_DATE = "20000101"
_FIXED_TIME = "120000"


def _derived_uid(base: str, tag: str) -> str:
    digest = hashlib.sha256(f"{base}/{tag}".encode()).digest()
    return "2.25." + str(uuid.UUID(bytes=digest[:16]).int)


def write_phantom(
    phantom: Phantom,
    out_dir: str | os.PathLike[str],
    fmt: Literal["dicom", "nifti", "metaimage"] = "dicom",
    *,
    file_names: Literal["instance", "uid", "shuffled"] = "instance",
    transfer_syntax: str | None = None,
) -> dict[str, Path]:
    """Write a phantom's image and ground truth.

    Args:
        phantom: Output of :func:`medsnowball.synth.generate_phantom`.
        out_dir: Folder to write into (created if missing).
        fmt: Image format: "dicom" (one file per slice in ``out_dir/dicom``), "nifti"
            (``image.nii.gz``) or "metaimage" (``image.mhd`` + ``image.zraw``).
        file_names: DICOM file naming (see ``medsnowball.io.write_dicom_series``).
        transfer_syntax: DICOM transfer syntax UID (default: uncompressed explicit VR
            little endian); a lossless compressed one (e.g. JPEG-LS Lossless) keeps the
            HU exact in fewer bytes.

    Returns:
        ``{"image": path, "truth": path, "nodules": path, "lungs": path}``; for DICOM,
        "image" is the series folder.

    Raises:
        ConfigError: For an unknown format.
    """
    from pydicom.uid import ExplicitVRLittleEndian

    from medsnowball.io.writers import write_dicom_series, write_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vol = phantom.volume
    if fmt == "dicom":
        series_uid = vol.series_uid or _derived_uid(str(phantom.truth.seed), "series")
        study_uid = vol.study_uid or _derived_uid(str(phantom.truth.seed), "study")
        image = out / "dicom"
        write_dicom_series(
            vol,
            image,
            series_uid=series_uid,
            study_uid=study_uid,
            frame_of_reference_uid=_derived_uid(series_uid, "frame"),
            series_description=f"medsnowball synthetic chest phantom seed {phantom.truth.seed}",
            file_names=file_names,
            seed=phantom.truth.seed,
            patient_name="SYNTHETIC^PHANTOM",
            patient_id=f"SYNTH{phantom.truth.seed}",
            rescale_intercept=-1024.0,
            pixel_representation=1,
            transfer_syntax=transfer_syntax or ExplicitVRLittleEndian,
            extra_tags={
                "SOPInstanceUID": lambda k: _derived_uid(series_uid, f"sop{k}"),
                "StudyDate": _FIXED_DATE,
                "SeriesDate": _FIXED_DATE,
                "ContentDate": _FIXED_DATE,
                "StudyTime": _FIXED_TIME,
                "SeriesTime": _FIXED_TIME,
                "ContentTime": _FIXED_TIME,
            },
        )
    elif fmt == "nifti":
        image = write_image(vol, out / "image.nii.gz")
    elif fmt == "metaimage":
        image = write_image(vol, out / "image.mhd")
    else:
        raise ConfigError(
            f"write_phantom fmt must be 'dicom', 'nifti' or 'metaimage', got {fmt!r}."
        )
    truth = atomic_write_text(out / "truth.json", phantom.truth.to_json() + "\n")
    nodules = write_image(phantom.nodule_labels, out / "nodules_truth.nii.gz", vol.geometry)
    lungs = write_image(phantom.lung_labels, out / "lungs_truth.nii.gz", vol.geometry)
    return {"image": Path(image), "truth": truth, "nodules": nodules, "lungs": lungs}


__all__ = ["write_phantom"]
