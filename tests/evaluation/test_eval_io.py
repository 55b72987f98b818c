"""Reading evaluation inputs, pairing predictions with truth, and the eval output files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medsnowball.core.errors import ConfigError, CorruptFileError
from medsnowball.evaluation import (
    PredictionCase,
    TruthCase,
    build_eval_cases,
    evaluate_cases,
    froc_csv_text,
    pair_cases,
    read_luna16_candidates,
    read_predictions,
    read_scan_list,
    read_truth,
    read_truth_json,
    write_eval_outputs,
)
from medsnowball.evaluation.io import phantom_series_uid


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_candidates_csv_is_grouped_by_series_and_header_checked(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "c.csv",
        "seriesuid,coordX,coordY,coordZ,probability\nA,1,2,3,0.5\nB,4,5,6,0.25\nA,7,8,9,0.75\n",
    )
    got = read_luna16_candidates(p)
    assert sorted(got) == ["A", "B"]
    assert [q.score for q in got["A"]] == [0.5, 0.75]
    assert got["B"][0].center_lps == (4.0, 5.0, 6.0)
    bad = _write(tmp_path / "bad.csv", "seriesuid,coordX,coordY,coordZ,score\nA,1,2,3,0.5\n")
    with pytest.raises(CorruptFileError, match="probability"):
        read_luna16_candidates(bad)
    nonnum = _write(tmp_path / "n.csv", "seriesuid,coordX,coordY,coordZ,probability\nA,x,2,3,1\n")
    with pytest.raises(CorruptFileError, match="line 2"):
        read_luna16_candidates(nonnum)
    with pytest.raises(FileNotFoundError):
        read_luna16_candidates(tmp_path / "missing.csv")


def test_luna16_truth_with_excluded_findings_and_scan_list(tmp_path: Path) -> None:
    ann = _write(
        tmp_path / "annotations.csv",
        "seriesuid,coordX,coordY,coordZ,diameter_mm\nA,0,0,0,10\nA,50,0,0,6\nB,0,0,0,8\n",
    )
    exc = _write(
        tmp_path / "excluded.csv", "seriesuid,coordX,coordY,coordZ,diameter_mm\nB,30,0,0,-1\n"
    )
    scans = _write(tmp_path / "scans.csv", "seriesuid\nA\nB\nC\n")
    truth = read_truth(ann, exc, read_scan_list(scans))
    assert [t.key for t in truth] == ["A", "B", "C"]
    b = truth[1]
    assert [n.relevant for n in b.nodules] == [True, False]
    assert b.nodules[1].diameter_mm == 10.0  # LUNA16's default for excluded findings
    assert truth[2].nodules == ()
    wrong = _write(tmp_path / "w.csv", "seriesuid,x,y,z,diameter_mm\nA,0,0,0,10\n")
    with pytest.raises(CorruptFileError, match="coordX"):
        read_truth(wrong)


def test_truth_json_keys_include_the_phantom_dicom_uid(tmp_path: Path) -> None:
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom
    from medsnowball.synth.writer import write_phantom

    cfg = PhantomConfig(
        shape_zyx=(48, 80, 80),
        spacing_zyx=(2.5, 1.6, 1.6),
        seed=5,
        nodules=(NoduleSpec(8.0, "solid", "parenchymal"),),
    )
    ph = generate_phantom(cfg)
    paths = write_phantom(ph, tmp_path / "p5", "nifti")
    t = read_truth_json(paths["truth"])
    assert t.key == "p5"
    assert ph.volume.series_uid in t.keys  # the seriesuid a DICOM run writes
    assert "image" in t.keys  # the stem a NIfTI run writes
    assert t.mask_path is not None
    assert t.mask_path.name == "nodules_truth.nii.gz"
    assert len(t.nodules) == len(ph.truth.nodules) == 1
    assert t.nodules[0].type == ph.truth.nodules[0].type
    assert t.nodules[0].id == 1
    doc = json.loads(paths["truth"].read_text())
    assert phantom_series_uid(doc["config"]) == ph.volume.series_uid
    # a folder of truths skips other JSON files
    _write(tmp_path / "other.json", '{"not": "truth"}')
    assert [c.key for c in read_truth(tmp_path)] == ["p5"]
    with pytest.raises(CorruptFileError, match="nodules"):
        read_truth_json(tmp_path / "other.json")


def test_pairing_by_key_and_by_source_folder(tmp_path: Path) -> None:
    _write(tmp_path / "t" / "a" / "truth.json", json.dumps({"nodules": []}))
    _write(
        tmp_path / "t" / "b" / "truth.json",
        json.dumps(
            {"seriesuid": "1.2.3", "nodules": [{"center_lps": [0, 0, 0], "diameter_mm": 5}]}
        ),
    )
    truth = read_truth(tmp_path / "t")
    preds = [
        PredictionCase("1.2.3", ()),  # by explicit seriesuid
        PredictionCase("x", (), "ct_1", (tmp_path / "t" / "a" / "dicom").resolve()),  # by folder
        PredictionCase("zzz", ()),  # unknown
    ]
    pairing = pair_cases(truth, preds)
    got = {t.key: (p.key if p else None) for t, p in pairing.pairs}
    assert got == {"1.2.3": "1.2.3", "a": "x"}
    assert [p.key for p in pairing.unmatched_predictions] == ["zzz"]
    twice = [*preds[:2], PredictionCase("y", (), "ct_2", (tmp_path / "t" / "a").resolve())]
    with pytest.raises(ConfigError, match="two cases"):
        pair_cases(truth, twice)
    with pytest.raises(ConfigError, match="both known"):
        pair_cases([truth[0], TruthCase("other", (), ("other", "a"))], [])


def _fake_run(root: Path, truth_dir: Path) -> Path:
    """A run folder with one case whose predicted mask overlaps the truth mask by 3/4."""
    from medsnowball.core import ImageGeometry
    from medsnowball.io import write_image

    geom = ImageGeometry((20, 20, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    truth_mask = np.zeros((20, 20, 20), np.uint16)
    truth_mask[8:12, 8:12, 8:12] = 1
    pred_mask = np.zeros((20, 20, 20), np.uint16)
    pred_mask[8:12, 8:12, 9:13] = 1
    center_truth = geom.index_to_world((9.5, 9.5, 9.5))
    center_pred = geom.index_to_world((9.5, 9.5, 10.5))
    truth_dir.mkdir(parents=True)
    write_image(truth_mask, truth_dir / "nodules_truth.nii.gz", geom)
    _write(
        truth_dir / "truth.json",
        json.dumps(
            {
                "nodules": [
                    {
                        "id": 1,
                        "center_lps": list(center_truth),
                        "diameter_mm": 5.0,
                        "volume_mm3": 80.0,
                        "type": "solid",
                    }
                ]
            }
        ),
    )
    case = root / "case1"
    case.mkdir(parents=True)
    write_image(pred_mask, case / "nodules.nii.gz", geom)
    x, y, z = center_pred
    row = f"uid1,{x},{y},{z},0.9\n"
    header = "seriesuid,coordX,coordY,coordZ,probability\n"
    _write(case / "candidates.csv", header + row)
    _write(root / "luna16_candidates.csv", header + row + "uid9,0,0,0,0.5\n")
    _write(
        root / "summary.csv",
        "case_id,source,series_uid,status,error,n_nodules,lung_rads,seconds\n"
        f"case1,{truth_dir / 'image.nii.gz'},uid1,ok,,1,3,1.0\n",
    )
    nodule = {
        "id": 1,
        "center_mm": [x, y, z],
        "score": 0.9,
        "diameter_mm": 4.5,
        "long_axis_mm": 5.0,
        "short_axis_mm": 4.0,
        "volume_mm3": 64.0,
        "type": "solid",
        "solid_component_mm": 4.5,
        "mean_hu": 20.0,
        "location": {"side": "right", "zone": None},
        "lung_rads": "3",
        "juxtapleural": False,
        "calcified": False,
    }
    _write(case / "findings.json", json.dumps({"case_id": "case1", "nodules": [nodule]}))
    return root


def test_run_folder_gives_dice_and_volume_error(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run", tmp_path / "truth" / "phantom1")
    preds = read_predictions(run)
    assert {p.key for p in preds} == {"uid1", "uid9"}
    pairing = pair_cases(read_truth(tmp_path / "truth"), preds)
    assert [p.key for p in pairing.unmatched_predictions] == ["uid9"]
    cases, notes = build_eval_cases(pairing)
    assert notes == []
    report = evaluate_cases(cases, seg_min_diameter_mm=5.0)
    (row,) = report.nodules
    assert row.dice == pytest.approx(0.75)  # 48 shared voxels of 64 + 64
    assert row.volume_error == pytest.approx((64.0 - 80.0) / 80.0)
    written = write_eval_outputs(report, tmp_path / "out", plot=False)
    doc = json.loads(written["metrics"].read_text())
    assert doc["nodules"][0]["dice"] == pytest.approx(0.75)
    assert doc["by_type"]["solid"]["n"] == 1
    assert "froc_png" not in written


def test_froc_csv_lists_every_curve_point(tmp_path: Path) -> None:
    from medsnowball.evaluation import froc, match_candidates

    m = match_candidates([((0, 0, 0), 0.9), ((50, 0, 0), 0.4)], [((0, 0, 0), 10.0)])
    text = froc_csv_text(froc([m]))
    lines = text.strip().splitlines()
    assert lines[0] == "fp_per_scan,sensitivity,threshold"
    assert lines[1:] == ["0,0,inf", "0,1,0.9", "1,1,0.4"]
