"""``medsnowball run``: exit code 4 and its final line, ``--keep-names``, the help text."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medsnowball.cli import app

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def chest_dir(tmp_path: Path) -> Path:
    """A crude 24x64x64 chest NIfTI named like a patient, plus an empty .dcm file."""
    from medsnowball.core import CTVolume, ImageGeometry
    from medsnowball.io import write_image

    z, y, x = np.mgrid[:24, :64, :64].astype(np.float32)
    arr = np.full((24, 64, 64), -1000.0, np.float32)
    arr[((y - 32) / 28) ** 2 + ((x - 32) / 30) ** 2 < 1] = 40.0
    for cx in (20, 44):
        arr[(((y - 32) / 18) ** 2 + ((x - cx) / 9) ** 2 < 1) & (z > 1) & (z < 22)] = -850.0
    arr += np.random.default_rng(0).normal(0, 10, arr.shape).astype(np.float32)
    folder = tmp_path / "in"
    write_image(CTVolume(arr, ImageGeometry(arr.shape, (5.0, 5.0, 5.0), (0, 0, 0))),
                folder / "DOE^JOHN_MRN123456.nii.gz")  # fmt: skip
    (folder / "slice.dcm").write_bytes(b"")
    return folder


def _case_ids(out: Path) -> list[str]:
    with open(out / "summary.csv", newline="") as fh:
        return [r["case_id"] for r in csv.DictReader(fh)]


def test_inputs_not_analysed_exit_4_and_keep_names(chest_dir: Path, tmp_path: Path) -> None:
    args = ["-p", "lung_nodule_classical", "--formats", "json,csv"]
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(chest_dir), "-o", str(out), *args])
    # The chest's 5 mm voxels need review (3); the empty .dcm was not analysed: 4 wins.
    assert result.exit_code == 4, result.output
    assert "0 ok, 1 need review, 0 failed, 1 inputs not analysed (skipped.csv)" in _flat(
        result.output
    )
    (case_id,) = _case_ids(out)
    assert re.fullmatch(r"img_[0-9a-f]{12}", case_id)
    assert not [p for p in out.rglob("*") if "DOE" in p.name or "MRN" in p.name]

    (chest_dir / "slice.dcm").unlink()
    named = tmp_path / "named"
    result = runner.invoke(app, ["run", str(chest_dir), "-o", str(named), *args, "--keep-names"])
    assert result.exit_code == 3, result.output
    assert "inputs not analysed" not in result.output
    assert _case_ids(named) == ["DOE_JOHN_MRN123456"]


def test_help_documents_exit_codes_and_keep_names() -> None:
    result = runner.invoke(app, ["run", "--help"], terminal_width=200)
    text = _flat(result.output)
    assert result.exit_code == 0
    assert "4 some input was not analysed" in text
    assert "skipped.csv" in text
    assert "--keep-names" in text


def test_bad_or_busy_output_folder_is_one_line_and_exit_2(chest_dir: Path, tmp_path: Path) -> None:
    import os
    import socket

    args = ["-p", "lung_nodule_classical", "--formats", "json"]
    out = tmp_path / "out"
    out.write_text("a file")
    result = runner.invoke(app, ["run", str(chest_dir), "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert _flat(result.output) == _flat(
        f"Error: output folder {out} exists and is not a folder; pass --out a folder path "
        "(new or existing)."
    )
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("medsnowball.log")), "no stray log file"

    busy = tmp_path / "busy"
    busy.mkdir()
    lock = busy / ".medsnowball.lock"
    lock.write_text(f"{os.getppid()} {socket.gethostname()}\n")
    result = runner.invoke(app, ["run", str(chest_dir), "-o", str(busy), *args])
    assert result.exit_code == 2, result.output
    assert "is in use by another medsnowball run" in _flat(result.output)
    assert sorted(p.name for p in busy.iterdir()) == [".medsnowball.lock"]
