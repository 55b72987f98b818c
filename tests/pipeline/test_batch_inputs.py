"""Every input accounted for, formula-safe CSVs, pseudonymous case ids (issue 13).

* ``OUT/skipped.csv`` lists every series/file discovery did not turn into a case; corrupt,
  unreadable or incomplete ones count as "not analysed" and make the exit code 4
  (failed 1 > not analysed 4 > needs review 3 > ok 0); DICOMDIR, README files, a series
  not preferred to a better one of its study are informational.
* No cell of any CSV of a real batch starts with ``= + - @`` unless it is a number we wrote.
* Image-file case ids are ``img_<hash>`` unless ``keep_names``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pipeline_fake_steps import FAKE_PIPELINE, POISON_HU

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.io import write_dicom_series, write_image
from medsnowball.pipeline import Pipeline, run_batch
from medsnowball.pipeline.quality import EXIT_NEEDS_REVIEW
from medsnowball.pipeline.skipped import EXIT_NOT_ANALYSED, SKIPPED_COLUMNS

FORMULA_UIDS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)"]


def _vol(slices: int = 6, hu: float = 1500.0) -> CTVolume:
    arr = np.full((slices, 16, 16), -800.0, np.float32)
    arr[min(2, slices - 1) : min(4, slices), 5:8, 5:8] = hu
    return CTVolume(arr, ImageGeometry((slices, 16, 16), (2.0, 0.8, 0.8), (-10.0, 20.0, -30.0)))


def _skipped(out: Path) -> list[dict[str, str]]:
    with open(out / "skipped.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == SKIPPED_COLUMNS
        return list(reader)


def _by_name(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {Path(r["path"]).name: r for r in rows}


def _corrupt_dicom(folder: Path) -> Path:
    """A CT slice whose NumberOfFrames no file can hold: discovery rejects it as corrupt."""
    (path,) = write_dicom_series(_vol(1), folder)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2147483647
    ds.save_as(path)
    return path


@pytest.fixture
def fake() -> Pipeline:
    return Pipeline.from_dict(FAKE_PIPELINE, origin="fake")


@pytest.fixture
def helper_files(tmp_path: Path) -> Path:
    """One good NIfTI plus files that are not CT: informational only."""
    root = tmp_path / "in"
    write_image(_vol(), root / "good.nii.gz")
    (root / "README.txt").write_text("exported by the PACS")
    (root / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    return root


# skipped.csv and the exit code -------------------------------------------------------------
def test_helper_files_are_listed_but_do_not_change_the_exit_code(
    helper_files: Path, tmp_path: Path, fake: Pipeline
) -> None:
    summary = run_batch([helper_files], tmp_path / "out", pipeline=fake)
    rows = _by_name(_skipped(tmp_path / "out"))
    assert set(rows) == {"README.txt", "DICOMDIR"}
    assert rows["README.txt"]["code"] == "not_dicom"
    assert rows["DICOMDIR"]["code"] == "index_file"
    assert {r["not_analysed"] for r in rows.values()} == {"false"}
    assert "DICOMDIR or index file" in rows["DICOMDIR"]["reason"]
    assert summary.n_not_analysed == 0
    assert summary.exit_code == 0
    assert summary.skipped_csv == tmp_path / "out" / "skipped.csv"


def test_corrupt_unreadable_and_incomplete_inputs_are_not_analysed(
    helper_files: Path, tmp_path: Path, fake: Pipeline
) -> None:
    root = helper_files
    _corrupt_dicom(root / "corrupt")
    (root / "fake.dcm").write_text("not DICOM, but named like it")
    (root / "empty.dcm").write_bytes(b"")
    (root / "trunc.nii.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    write_dicom_series(_vol(1), root / "short", series_uid="1.2.3.4.5")
    out = tmp_path / "out"

    summary = run_batch([root], out, pipeline=fake)

    rows = _by_name(_skipped(out))
    lost = {name for name, r in rows.items() if r["not_analysed"] == "true"}
    assert lost == {"IM00001.dcm", "fake.dcm", "empty.dcm", "trunc.nii.gz", "short"}
    assert rows["IM00001.dcm"]["code"] == "corrupt_file"
    assert "NumberOfFrames is 2147483647" in rows["IM00001.dcm"]["reason"]
    assert rows["fake.dcm"]["code"] == "corrupt_file"
    assert rows["trunc.nii.gz"]["code"] == "unreadable"
    assert rows["short"]["code"] == "too_few_slices"
    assert rows["short"]["series_uid"] == "1.2.3.4.5"
    assert rows["README.txt"]["not_analysed"] == "false"
    assert (summary.n_ok, summary.n_failed, summary.n_not_analysed) == (1, 0, 5)
    assert summary.exit_code == EXIT_NOT_ANALYSED == 4
    assert len(summary.skipped_inputs) == len(rows) == 7


def test_exit_code_precedence_failed_then_not_analysed_then_review(
    tmp_path: Path, fake: Pipeline
) -> None:
    root = tmp_path / "in"
    write_image(_vol(), root / "good.nii.gz")
    (root / "empty.dcm").write_bytes(b"")
    review: dict[str, Any] = json.loads(json.dumps(FAKE_PIPELINE))
    review["steps"].insert(-1, {"step": "review_flag", "config": {"cases": ["good"]}})
    flagging = Pipeline.from_dict(review, origin="fake_review")

    both = run_batch([root], tmp_path / "o1", pipeline=flagging, keep_names=True)
    assert (both.n_needs_review, both.n_not_analysed) == (1, 1)
    assert both.exit_code == EXIT_NOT_ANALYSED, "not analysed (4) wins over review (3)"

    write_image(_vol(hu=POISON_HU), root / "poison.nii.gz")
    failed = run_batch([root], tmp_path / "o2", pipeline=flagging, keep_names=True)
    assert (failed.n_failed, failed.n_not_analysed) == (1, 1)
    assert failed.exit_code == 1, "failed (1) wins over not analysed (4)"

    (root / "empty.dcm").unlink()
    (root / "poison.nii.gz").unlink()
    only_review = run_batch([root], tmp_path / "o3", pipeline=flagging, keep_names=True)
    assert only_review.exit_code == EXIT_NEEDS_REVIEW
    assert _skipped(tmp_path / "o3") == [], "header only when nothing was skipped"


def test_a_series_not_preferred_is_informational(tmp_path: Path, fake: Pipeline) -> None:
    root = tmp_path / "in"
    study = "1.2.826.0.1.3680043.8.498.1"
    write_dicom_series(_vol(24), root / "a", study_uid=study, series_uid="1.2.3.1")
    write_dicom_series(_vol(6), root / "b", study_uid=study, series_uid="1.2.3.2")
    summary = run_batch([root], tmp_path / "out", pipeline=fake)
    (row,) = _skipped(tmp_path / "out")
    assert (row["code"], row["not_analysed"]) == ("not_preferred", "false")
    assert row["series_uid"] in {"1.2.3.1", "1.2.3.2"}
    assert summary.exit_code == 0


def test_outputs_of_an_earlier_run_inside_the_input_are_not_listed(
    helper_files: Path, fake: Pipeline
) -> None:
    out = helper_files / "out"
    run_batch([helper_files], out, pipeline=fake)
    again = run_batch([helper_files], out, pipeline=fake)
    assert set(_by_name(_skipped(out))) == {"README.txt", "DICOMDIR"}
    assert again.exit_code == 0


# CSV formula injection ---------------------------------------------------------------------
def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the crafted UIDs
def test_no_csv_cell_of_a_batch_can_run_as_a_formula(tmp_path: Path, fake: Pipeline) -> None:
    root = tmp_path / "in"
    for i, uid in enumerate(FORMULA_UIDS):
        write_dicom_series(_vol(), root / f"s{i}", series_uid=uid)
    write_dicom_series(_vol(1), root / "short", series_uid="=1+2")  # -> skipped.csv
    out = tmp_path / "out"

    summary = run_batch([root], out, pipeline=fake)

    assert summary.n_ok == 4
    csvs = sorted(out.rglob("*.csv"))
    names = {p.name for p in csvs}
    assert names == {"summary.csv", "skipped.csv", "luna16_candidates.csv", "candidates.csv"}
    negatives = 0
    for path in csvs:
        with open(path, newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    if cell[:1] in ("=", "+", "-", "@"):
                        assert _is_number(cell), f"{path.name}: formula cell {cell!r}"
                        negatives += cell.startswith("-")
    assert negatives > 0, "negative coordinates are written as numbers, not quoted"
    with open(out / "summary.csv", newline="") as fh:
        uids = {r["series_uid"] for r in csv.DictReader(fh)}
    assert uids == {"'" + u for u in FORMULA_UIDS}
    with open(out / "luna16_candidates.csv", newline="") as fh:
        luna = {r["seriesuid"] for r in csv.DictReader(fh)}
    assert luna == {"'" + u for u in FORMULA_UIDS}
    (short,) = _skipped(out)
    assert short["series_uid"] == "'=1+2"


# pseudonymous case ids ---------------------------------------------------------------------
def test_image_case_ids_do_not_carry_the_file_name(tmp_path: Path, fake: Pipeline) -> None:
    src = tmp_path / "in" / "DOE^JOHN_MRN123456.nii.gz"
    write_image(_vol(), src)
    out = tmp_path / "out"

    summary = run_batch([src.parent], out, pipeline=fake)

    (outcome,) = summary.outcomes
    expected = "img_" + hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:12]
    assert outcome.case_id == expected
    assert re.fullmatch(r"img_[0-9a-f]{12}", outcome.case_id)
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if "DOE" in n or "MRN" in n], names
    again = run_batch([src.parent], out, pipeline=fake, resume=True)
    assert [(o.case_id, o.reused) for o in again.outcomes] == [(expected, True)]

    named = run_batch([src.parent], tmp_path / "named", pipeline=fake, keep_names=True)
    assert [o.case_id for o in named.outcomes] == ["DOE_JOHN_MRN123456"]
