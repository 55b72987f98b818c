"""``medsnowball eval``: a hand-computed FROC / CPM, truth JSON input and input errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medsnowball.cli import app

HEADER = "seriesuid,coordX,coordY,coordZ,probability\n"

# Scan A: N1 at the origin (10 mm), N2 at x=50 (6 mm); scan B: N3 at the origin (8 mm).
ANNOTATIONS = "seriesuid,coordX,coordY,coordZ,diameter_mm\nA,0,0,0,10\nA,50,0,0,6\nB,0,0,0,8\n"
# A: 0.9 hits N1, 0.6 hits N2 (2 mm off, radius 3), 0.8 is a false positive, 0.5 hits N1
# again (counts once); B: 0.7 and 0.3 are false positives (the latter 5 mm from N3, radius
# 4), 0.4 hits N3. C is not in the truth.
CANDIDATES = HEADER + (
    "A,1,0,0,0.9\nA,50,0,2,0.6\nA,100,0,0,0.8\nA,0,3,0,0.5\n"
    "B,30,0,0,0.7\nB,0,0,5,0.3\nB,0,0,3.9,0.4\n"
    "C,0,0,0,0.95\n"
)
# Nodule scores 0.9, 0.6, 0.4; FP scores 0.8, 0.7, 0.3 over 2 scans. FROC points
# (FP/scan, sens): (0, 1/3) (0.5, 1/3) (1, 1/3) (1, 2/3) (1, 1) (1.5, 1). Sensitivity is
# 1/3 at 1/8, 1/4, 1/2 FP/scan and 1 at 1, 2, 4, 8, so CPM = (3 * 1/3 + 4) / 7 = 5/7.
EXPECTED_SENS = [1 / 3, 1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0]
EXPECTED_CPM = 5.0 / 7.0

runner = CliRunner()


def _files(tmp_path: Path) -> tuple[Path, Path]:
    pred = tmp_path / "candidates.csv"
    pred.write_text(CANDIDATES)
    truth = tmp_path / "annotations.csv"
    truth.write_text(ANNOTATIONS)
    return pred, truth


def test_hand_computed_froc_cpm_and_sensitivities(tmp_path: Path) -> None:
    pred, truth = _files(tmp_path)
    out = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "eval",
            str(pred),
            "--truth",
            str(truth),
            "-o",
            str(out),
            "--bootstrap",
            "200",
            "--fp-rate",
            "0.5",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1 of 3 predicted scan(s) (1 candidates) are not in the truth" in res.output
    assert "CPM 0.714" in res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["cpm"] == pytest.approx(EXPECTED_CPM)
    assert [o["sensitivity"] for o in doc["operating_points"]] == pytest.approx(EXPECTED_SENS)
    assert [o["fp_per_scan"] for o in doc["operating_points"]] == [
        0.125,
        0.25,
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
    ]
    assert doc["n_scans"] == 2
    assert doc["n_nodules"] == 3
    assert doc["n_false_positives"] == 3
    lo, hi = doc["cpm_ci"]
    assert 0.0 <= lo <= EXPECTED_CPM <= hi <= 1.0
    assert hi > lo
    # at 0.5 FP/scan the threshold is 0.8: only N1 (10 mm) is found
    assert doc["threshold"] == pytest.approx(0.8)
    assert doc["sensitivity"] == pytest.approx(1 / 3)
    assert doc["by_size"]["8-15 mm"]["sensitivity"] == pytest.approx(0.5)
    assert doc["by_size"]["6-8 mm"]["sensitivity"] == pytest.approx(0.0)
    assert doc["inputs"]["unmatched_prediction_scans"] == ["C"]
    with open(out / "froc.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fps = [float(r["fp_per_scan"]) for r in rows]
    sens = [float(r["sensitivity"]) for r in rows]
    assert fps == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 1.5]
    assert sens == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1, 1], abs=1e-5)
    assert [r["threshold"] for r in rows][-1] == "0.3"
    png = (out / "froc.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 5000


def test_truth_json_folder_gives_sensitivity_by_type(tmp_path: Path) -> None:
    pred, _ = _files(tmp_path)
    for uid, nodules in (
        ("A", [([0, 0, 0], 10, "solid"), ([50, 0, 0], 6, "ground_glass")]),
        ("B", [([0, 0, 0], 8, "solid")]),
    ):
        d = tmp_path / "truth" / uid
        d.mkdir(parents=True)
        doc = {
            "nodules": [
                {"id": i + 1, "center_lps": c, "diameter_mm": dm, "type": t}
                for i, (c, dm, t) in enumerate(nodules)
            ]
        }
        (d / "truth.json").write_text(json.dumps(doc))
    out = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "eval",
            str(pred),
            "-t",
            str(tmp_path / "truth"),
            "-o",
            str(out),
            "--bootstrap",
            "0",
            "--fp-rate",
            "0.5",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["cpm"] == pytest.approx(EXPECTED_CPM)
    assert doc["cpm_ci"] is None
    assert doc["by_type"]["solid"]["sensitivity"] == pytest.approx(0.5)
    assert doc["by_type"]["ground_glass"]["sensitivity"] == pytest.approx(0.0)
    # the ground-glass group's CPM: its only nodule (0.6) is found once 0.8 and 0.7 are
    # passed (1 FP/scan), and the hits on solid nodules are ignored, not false positives
    assert doc["by_type"]["ground_glass"]["cpm"] == pytest.approx(4.0 / 7.0)


def test_input_errors_exit_2(tmp_path: Path) -> None:
    pred, truth = _files(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("seriesuid,coordX,coordY,coordZ,score\nA,0,0,0,0.5\n")
    res = runner.invoke(app, ["eval", str(bad), "-t", str(truth), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "probability" in res.output
    assert "score" in res.output
    res = runner.invoke(
        app, ["eval", str(pred), "-t", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "does not exist" in res.output
    res = runner.invoke(app, ["eval", str(tmp_path), "-t", str(truth), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "luna16_candidates.csv" in res.output
    other = tmp_path / "other.csv"
    other.write_text(HEADER + "Z,0,0,0,0.5\n")
    res = runner.invoke(app, ["eval", str(other), "-t", str(truth), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "none of the 1 predicted scan(s)" in res.output
    assert not (tmp_path / "o").exists()


def test_eval_of_a_real_run_against_phantom_truth(tmp_path: Path) -> None:
    """A DICOM phantom through the classical pipeline: pairing by source folder, Dice."""
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom, write_phantom

    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=(48, 80, 80),
            spacing_zyx=(2.5, 1.6, 1.6),
            seed=32,
            nodules=(NoduleSpec(9.0, "solid", "parenchymal"),),
        )
    )
    write_phantom(ph, tmp_path / "data" / "case32", "dicom")
    run = tmp_path / "run"
    res = runner.invoke(
        app, ["run", str(tmp_path / "data"), "-o", str(run), "-p", "lung_nodule_classical", "-q"]
    )
    assert res.exit_code == 3, res.output  # small phantom at 1.6 mm pixels: needs review
    out = tmp_path / "eval"
    res = runner.invoke(
        app, ["eval", str(run), "-t", str(tmp_path / "data"), "-o", str(out), "--bootstrap", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "not in the truth" not in res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n_scans"] == 1
    assert doc["n_nodules"] == 1
    (nod,) = doc["nodules"]
    assert nod["score"] is not None  # the 9 mm nodule was hit
    assert nod["dice"] > 0.7  # its measured mask overlaps the phantom's truth mask
    assert abs(nod["volume_error"]) < 0.3
