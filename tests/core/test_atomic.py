from __future__ import annotations

import os
from pathlib import Path

import pytest

from medsnowball.core.atomic import atomic_path, atomic_write_text
from medsnowball.core.errors import MedsnowballError, NoSeriesFoundError


def test_atomic_write_creates_file_and_leaves_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "findings.json"
    atomic_write_text(out, "{}")
    assert out.read_text() == "{}"
    assert [p.name for p in out.parent.iterdir()] == ["findings.json"]


def test_output_gets_umask_permissions_not_private(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    atomic_write_text(out, "x")
    old = os.umask(0o022)
    os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~old


def test_failed_write_keeps_previous_content(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    out.write_text("old")

    def killed_mid_write() -> None:
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        killed_mid_write()
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_temp_name_keeps_suffixes(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "x.nii.gz") as tmp:
        assert tmp.name.endswith("x.nii.gz")
        tmp.write_bytes(b"1")


def test_errors_are_builtins_too() -> None:
    err = NoSeriesFoundError("no CT series in /data/empty; point at a folder with DICOM files")
    assert isinstance(err, FileNotFoundError)
    assert isinstance(err, MedsnowballError)
