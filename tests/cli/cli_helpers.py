"""Helpers of the CLI tests: the messy input folder and small utilities."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

PATIENT_NAME = "Doe^Jane<script>alert(1)</script>"
PATIENT_ID = "PID-778899"
SHAPE_ZYX = (48, 80, 80)
SPACING_ZYX = (2.5, 1.6, 1.6)


def _phantom_dicom(
    seed: int, nodules: tuple[tuple[float, str, str], ...], folder: Path, **kwargs: object
) -> None:
    from medsnowball.io import write_dicom_series
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=SHAPE_ZYX,
            spacing_zyx=SPACING_ZYX,
            seed=seed,
            nodules=tuple(NoduleSpec(d, t, loc) for d, t, loc in nodules),  # type: ignore[arg-type]
        )
    )
    write_dicom_series(ph.volume, folder, **kwargs)  # type: ignore[arg-type]


def build_messy_dir(root: Path) -> Path:
    """Write the messy input tree into ``root`` (made read-only) and return it."""
    from medsnowball.core import CTVolume, ImageGeometry
    from medsnowball.io import write_dicom_series

    _phantom_dicom(
        21,
        ((9.0, "solid", "parenchymal"),),
        root / "study_a" / "ct",
        study_uid="1.2.826.0.1.3680043.8.498.1001",
        series_uid="1.2.826.0.1.3680043.8.498.1001.1",
        series_description="CHEST 2.5mm",
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
    )
    scout = CTVolume(
        np.full((2, 80, 80), -700.0, np.float32),
        ImageGeometry((2, 80, 80), (1.0, 3.0, 3.0), (-120.0, -120.0, 0.0)),
    )
    write_dicom_series(
        scout,
        root / "study_a" / "scout",
        study_uid="1.2.826.0.1.3680043.8.498.1001",
        series_uid="1.2.826.0.1.3680043.8.498.1001.9",
        series_description="SCOUT",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
    )
    _phantom_dicom(
        22,
        ((8.0, "solid", "parenchymal"), (6.0, "solid", "juxtapleural")),
        root / "study_b",
        study_uid="1.2.826.0.1.3680043.8.498.2002",
        series_uid="1.2.826.0.1.3680043.8.498.2002.1",
        file_names="shuffled",
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
    )
    corrupt = root / "study_c"
    _phantom_dicom(
        23,
        ((7.0, "solid", "parenchymal"),),
        corrupt,
        study_uid="1.2.826.0.1.3680043.8.498.3003",
        series_uid="1.2.826.0.1.3680043.8.498.3003.1",
    )
    for f in sorted(corrupt.iterdir()):  # cut every file in its pixel data
        data = f.read_bytes()
        f.write_bytes(data[: len(data) * 2 // 3])
    (root / "README.txt").write_text("scans exported from the PACS\n")
    (root / ".DS_Store").write_bytes(bytes(range(256)) * 4)
    junk = root / "junk"
    junk.mkdir()
    (junk / "image.dcm").write_bytes(b"\x00" * 200)  # not DICOM despite its name
    (junk / "notes.pdf").write_bytes(b"%PDF-1.4 nothing\n")
    for p in root.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)  # read-only: any write attempt fails
    return root


def copy_tree(src: Path, dst: Path) -> Path:
    """Writable copy of a read-only fixture tree."""
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst
