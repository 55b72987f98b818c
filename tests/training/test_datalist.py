"""Datalists: LUNA16 / synthetic converters, validation, path handling."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from medsnowball.core.errors import ConfigError, CorruptFileError, MissingDependencyError
from medsnowball.core.volume import CTVolume, ImageGeometry
from medsnowball.training.datalist import (
    lidc_to_datalist,
    luna16_to_datalist,
    read_datalist,
    read_luna16_annotations,
    split_cases,
    synthetic_to_datalist,
    write_datalist,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
LUNA_CSV = DATA / "luna16_annotations.csv"


def _fake_scan(path: Path) -> None:
    from medsnowball.io import write_image

    geom = ImageGeometry((4, 8, 8), (2.5, 0.7, 0.7), (-100.0, -100.0, -300.0))
    write_image(CTVolume(np.full((4, 8, 8), -1000, np.int16), geom), path)


@pytest.mark.skipif(not LUNA_CSV.is_file(), reason="shared LUNA16 annotations not available")
def test_luna16_converter_on_the_real_annotations(tmp_path: Path) -> None:
    ann = read_luna16_annotations(LUNA_CSV)
    assert sum(len(v) for v in ann.values()) == 1186
    assert len(ann) == 601
    # three annotated scans (one with two nodules) and one scan without nodules
    with open(LUNA_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    uid2 = rows[0]["seriesuid"]  # first scan of the file has two nodules
    uids = [uid2, rows[2]["seriesuid"], rows[3]["seriesuid"]]
    for i, uid in enumerate(uids):
        _fake_scan(tmp_path / "luna" / f"subset{i}" / f"{uid}.mhd")
    _fake_scan(tmp_path / "luna" / "subset9" / "1.2.3.empty.mhd")
    dl = luna16_to_datalist(
        LUNA_CSV, tmp_path / "luna", tmp_path / "dl.json", validation_fraction=0.25, seed=0
    )
    items = dl["training"] + dl["validation"]
    assert len(items) == 4
    assert len(dl["validation"]) == 1
    by_id = {it["case_id"]: it for it in items}
    first = by_id[uid2]
    assert len(first["box"]) == 2
    x, y, z, d = (float(rows[0][k]) for k in ("coordX", "coordY", "coordZ", "diameter_mm"))
    assert first["box"][0] == pytest.approx([x, y, z, d, d, d])
    assert first["label"] == [0, 0]
    assert by_id["1.2.3.empty"]["box"] == []
    # written with relative paths, read back as absolute, MONAI can read it too
    raw = json.loads((tmp_path / "dl.json").read_text())
    assert not Path(raw["training"][0]["image"]).is_absolute()
    back = read_datalist(tmp_path / "dl.json")
    assert all(Path(it["image"]).is_file() for it in back["training"] + back["validation"])
    from monai.data import load_decathlon_datalist

    monai_items = load_decathlon_datalist(tmp_path / "dl.json", True, "training")
    assert len(monai_items) == len(back["training"])


def test_read_datalist_rejects_malformed_items(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"training": [{"image": "a.nii.gz", "box": [[1, 2, 3]]}]}))
    with pytest.raises(ConfigError, match=r"\[training\]\[0\].*x, y, z, w, h, d"):
        read_datalist(p)
    p.write_text(
        json.dumps({"training": [{"image": "a", "box": [[1, 2, 3, 4, 4, 4]], "label": []}]})
    )
    with pytest.raises(ConfigError, match="one entry per box"):
        read_datalist(p)
    p.write_text("{not json")
    with pytest.raises(CorruptFileError):
        read_datalist(p)
    bad_csv = tmp_path / "a.csv"
    bad_csv.write_text("seriesuid,coordX\n1,2\n")
    with pytest.raises(CorruptFileError, match="diameter_mm"):
        read_luna16_annotations(bad_csv)


def test_split_is_seeded_and_disjoint() -> None:
    keys = [f"c{i}" for i in range(10)]
    tr, va = split_cases(keys, 0.3, seed=4)
    assert len(va) == 3
    assert not set(tr) & set(va)
    assert split_cases(keys, 0.3, seed=4) == (tr, va)
    assert split_cases(keys, 0.3, seed=5) != (tr, va)


def test_write_datalist_round_trip(tmp_path: Path) -> None:
    img = tmp_path / "imgs" / "a.nii.gz"
    dl = {"training": [{"image": str(img), "box": [[1.0, 2, 3, 4, 4, 4]], "label": [0]}]}
    write_datalist(tmp_path / "sub" / ".." / "dl.json", dl)
    back = read_datalist(tmp_path / "dl.json")
    assert Path(back["training"][0]["image"]).resolve() == img.resolve()
    assert back["validation"] == []


def test_synthetic_converter_matches_phantom_truth(tmp_path: Path) -> None:
    from medsnowball.io import load_ct, load_image

    dl = synthetic_to_datalist(
        tmp_path,
        n_cases=2,
        seed=11,
        shape_zyx=(48, 80, 80),
        spacing_zyx=(2.0, 2.0, 2.0),
        nodules_per_case=2,
        validation_fraction=0.5,
    )
    assert len(dl["training"]) == 1
    assert len(dl["validation"]) == 1
    item = read_datalist(tmp_path / "datalist.json")["training"][0]
    vol = load_ct(item["image"])
    seg = load_image(item["seg"]).array
    assert len(item["box"]) == len(item["seg_label"]) >= 1
    for box, lab in zip(item["box"], item["seg_label"], strict=True):
        idx = np.argwhere(seg == lab).mean(axis=0)
        centre = vol.index_to_world(idx)
        np.testing.assert_allclose(centre, box[:3], atol=1.0)
        assert box[3] == box[4] == box[5] > 0
    assert (load_image(item["lung"]).array > 0).sum() > 1000


def test_lidc_needs_pylidc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether or not pylidc is installed (it is, for the validation set), an import that
    # fails must give the install hint. A None entry in sys.modules makes import raise.
    monkeypatch.setitem(sys.modules, "pylidc", None)
    monkeypatch.setitem(sys.modules, "pylidc.utils", None)
    with pytest.raises(MissingDependencyError, match="pylidc"):
        lidc_to_datalist(tmp_path)
