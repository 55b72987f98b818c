"""The shipped pipeline on a small phantom, through the Python API (no files written)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np

from medsnowball.pipeline import LUNA16_COLUMNS, Pipeline
from medsnowball.pipeline.outputs import candidate_row


def test_default_pipeline_finds_the_phantom_nodule_and_result_pickles(tmp_path: Path) -> None:
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

    ph = generate_phantom(
        PhantomConfig(
            shape_zyx=(48, 80, 80),
            spacing_zyx=(2.5, 1.6, 1.6),
            seed=31,
            nodules=(NoduleSpec(10.0, "solid", "parenchymal"),),
        )
    )
    pipe = Pipeline.from_yaml("lung_nodule_screening")
    result = pipe.run(ph.volume, device="cpu")

    # a small phantom (lungs ~100 ml each) at 1.6 mm pixels: both flags, hence review
    assert result.status == "needs_review"
    assert [f.code for f in result.quality] == [
        "lung_volume_implausible",
        "voxel_size_out_of_range",
    ]
    assert result.pipeline == "lung_nodule_screening"
    assert list(result.timings_s) == pipe.labels[:-1]  # no out_dir: report skipped
    truth = ph.truth.nodules[0].center_lps
    assert any(math.dist(n.center_lps, truth) <= 5.0 for n in result.nodules), result.nodules
    assert all(n.score >= pipe.threshold for n in result.nodules)
    assert [n.id for n in result.nodules] == list(range(1, len(result.nodules) + 1))
    assert len(result.candidates) >= len(result.nodules)
    assert result.assessment is not None
    assert result.assessment.lung_rads in {"2", "3", "4A", "4B"}
    assert result.nodule_labels is not None
    assert result.nodule_labels.shape == ph.volume.shape
    assert set(np.unique(result.nodule_labels)) == {0, *(n.id for n in result.nodules)}
    assert result.lungs_ml["left"] > 0
    assert result.lungs_ml["right"] > 0

    clone = pickle.loads(pickle.dumps(result))
    assert clone.nodules == result.nodules
    assert clone.candidates == result.candidates
    assert np.array_equal(clone.nodule_labels, result.nodule_labels)

    files = pipe.run(ph.volume, out_dir=tmp_path / "case", formats="json,csv", case_id="p31")
    assert files.case_id == "p31"
    assert (tmp_path / "case" / "findings.json").is_file()
    rows = (tmp_path / "case" / "candidates.csv").read_text().splitlines()
    assert rows[0] == ",".join(LUNA16_COLUMNS)
    expected = [",".join(candidate_row(files.extra["luna_uid"], c)) for c in files.candidates]
    assert rows[1:] == expected
    assert "report" in files.timings_s
