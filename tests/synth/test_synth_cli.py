"""The command line and the shipped sample study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medsnowball.synth import PhantomConfig, PhantomTruth, generate_phantom
from medsnowball.synth.__main__ import SAMPLE_CONFIG, main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def test_sample_data_matches_generator() -> None:
    """sample_data/ is what `make-sample` produces now (else: regenerate it)."""
    truth_file = SAMPLE / "truth.json"
    if not truth_file.is_file():
        pytest.skip("sample_data/truth.json not present")
    shipped = PhantomTruth.from_json(truth_file.read_text())
    assert PhantomConfig.from_dict(shipped.config) == SAMPLE_CONFIG
    fresh = generate_phantom(SAMPLE_CONFIG).truth
    assert fresh == shipped, "run: python -m medsnowball.synth make-sample sample_data/"
    assert len(shipped.nodules) == 3
    assert {n.location for n in shipped.nodules} == {"parenchymal", "juxtapleural"}
    assert {n.type for n in shipped.nodules} == {"solid", "part_solid"}
    dicom = sorted((SAMPLE / "dicom").glob("IM*.dcm"))
    assert len(dicom) == SAMPLE_CONFIG.shape_zyx[0]
    assert sum(f.stat().st_size for f in dicom) < 12_000_000


def test_generate_command(tmp_path: Path) -> None:
    from medsnowball import io

    out = tmp_path / "case"
    rc = main(
        [
            "generate",
            str(out),
            "--seed",
            "5",
            "--shape",
            "40",
            "64",
            "64",
            "--spacing",
            "5",
            "3",
            "3",
            "--nodules",
            "2",
            "--min-mm",
            "8",
            "--max-mm",
            "12",
            "--format",
            "nifti",
        ]
    )
    assert rc == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["config"]["shape_zyx"] == [40, 64, 64]
    assert all(8 <= n["diameter_mm"] <= 12 for n in truth["nodules"])
    vol = io.load_ct(out / "image.nii.gz")
    assert vol.shape == (40, 64, 64)
    assert np.isclose(vol.spacing_zyx[0], 5.0)


def test_make_sample_into_tmp(tmp_path: Path) -> None:
    stale = tmp_path / "dicom" / "IM09999.dcm"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert main(["make-sample", str(tmp_path)]) == 0
    assert not stale.exists()
    assert len(list((tmp_path / "dicom").iterdir())) == SAMPLE_CONFIG.shape_zyx[0]
    if (SAMPLE / "truth.json").is_file():
        assert (tmp_path / "truth.json").read_text() == (SAMPLE / "truth.json").read_text()
