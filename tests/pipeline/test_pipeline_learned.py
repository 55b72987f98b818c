"""The learned steps of the screening pipeline: fp_reduce, and segment with method unet."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_edits import set_at

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline import Pipeline
from medsnowball.pipeline.steps import SegmentConfig
from medsnowball.pipeline.steps_learned import FPReduceConfig, _touches_border


def _screening() -> dict[str, Any]:
    return Pipeline.from_yaml("lung_nodule_screening").to_dict()


def test_screening_is_learned_and_classical_stays_training_free() -> None:
    pipe = Pipeline.from_yaml("lung_nodule_screening")
    assert pipe.labels.index("fp_reduce") == pipe.labels.index("detect") + 1
    fp_cfg = pipe.steps[pipe.step_index("fp_reduce")].config
    assert fp_cfg == FPReduceConfig(checkpoint=None, combine="stacked", batch_size=128, tta=None)
    assert pipe.steps[pipe.step_index("segment")].config.method == "classical"
    classical = Pipeline.from_yaml("lung_nodule_classical")
    assert "fp_reduce" not in classical.labels
    assert classical.steps[classical.step_index("segment")].config.method == "classical"
    assert SegmentConfig().method == "classical"  # old YAML files keep their meaning


def test_screening_threshold_is_the_one_chosen_with_the_weights() -> None:
    from medsnowball.models.inference import DEFAULT_FP_WEIGHTS, FPReducer

    if not DEFAULT_FP_WEIGHTS.is_file():
        pytest.skip("shipped weights not present")
    combiner = FPReducer(device="cpu").combiner
    assert combiner is not None, "the shipped classifier must carry its fitted combiner"
    assert combiner.threshold is not None
    assert Pipeline.from_yaml("lung_nodule_screening").threshold == pytest.approx(
        combiner.threshold, abs=5e-4
    )
    assert "val" in str(combiner.provenance.get("fitted_on", ""))


@pytest.mark.parametrize(
    ("modify", "expected"),
    [
        (
            set_at(("steps", 4, "config", "combine"), "stack"),
            "steps[4].config.combine: expected one of 'stacked', 'geometric', 'mean', "
            "'replace', found 'stack'; did you mean stacked?",
        ),
        (
            set_at(("steps", 4, "config", "checkpointt"), "w.safetensors"),
            "steps[4].config.checkpointt: unknown key; did you mean checkpoint?",
        ),
        (
            set_at(("steps", 4, "config", "batch_size"), 0),
            "steps[4].config.batch_size: expected >= 1, found 0",
        ),
        (
            set_at(("steps", 4, "config", "checkpoint"), 3),
            "steps[4].config.checkpoint: expected str or null, found 3",
        ),
        (
            set_at(("steps", 4, "config", "tta"), "yes"),
            "steps[4].config.tta: expected bool or null, found 'yes'",
        ),
        (
            set_at(("steps", 5, "config", "method"), "unett"),
            "steps[5].config.method: expected one of 'classical', 'unet', found 'unett'",
        ),
        (
            set_at(("steps", 4, "step"), "fp_reduction"),
            "steps[4].step: unknown step 'fp_reduction'; did you mean fp_reduce?",
        ),
    ],
)
def test_learned_step_options_are_validated_with_key_paths(modify: Any, expected: str) -> None:
    data = copy.deepcopy(_screening())
    modify(data)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_dict(data, origin="mine.yaml")
    assert str(info.value).startswith("mine.yaml: ")
    assert expected in str(info.value)


def test_fp_reduce_needs_candidates_first() -> None:
    data = _screening()
    data["steps"].insert(3, data["steps"].pop(4))  # fp_reduce before detect
    with pytest.raises(ConfigError, match=r"steps\[3\] \(fp_reduce\): needs candidates, which"):
        Pipeline.from_dict(data)


def test_touches_border_ignores_the_volume_edge() -> None:
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    assert not _touches_border(mask, (10, 10, 10), (100, 100, 100))
    mask[0, 2, 2] = True
    assert _touches_border(mask, (10, 10, 10), (100, 100, 100))
    assert not _touches_border(mask, (0, 10, 10), (100, 100, 100))  # the scan's first slice
    mask[:] = False
    mask[2, 2, 4] = True
    assert _touches_border(mask, (0, 0, 0), (100, 100, 100))
    assert not _touches_border(mask, (0, 0, 95), (100, 100, 100))


@pytest.fixture(scope="module")
def phantom():  # type: ignore[no-untyped-def]
    from medsnowball.models.inference import DEFAULT_FP_WEIGHTS, DEFAULT_UNET_WEIGHTS

    if not (DEFAULT_FP_WEIGHTS.is_file() and DEFAULT_UNET_WEIGHTS.is_file()):
        pytest.skip("shipped weights not present")
    from medsnowball import synth

    return synth.generate_phantom(
        synth.PhantomConfig(
            shape_zyx=(80, 160, 160),
            spacing_zyx=(1.5, 1.0, 1.0),
            seed=41,  # not a training (10000+) or benchmark (20000+, 30000+) seed
            nodules=(
                synth.NoduleSpec(10.0, "solid", "parenchymal"),
                synth.NoduleSpec(7.0, "part_solid", "parenchymal"),
            ),
        )
    )


def test_screening_pipeline_end_to_end(phantom: Any, tmp_path: Path) -> None:
    pipe = Pipeline.from_yaml("lung_nodule_screening")
    result = pipe.run(phantom.volume, device="cpu", out_dir=tmp_path / "c", formats="json,csv")
    # the small phantom's lungs (about 150 ml each) are implausibly small for a chest CT
    assert result.status == "needs_review"
    assert [f.code for f in result.quality] == ["lung_volume_implausible"]
    assert "fp_reduce" in result.timings_s
    cands = result.candidates
    assert cands
    assert all("fp_probability" in c.features for c in cands)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    # the per-case LUNA16 file carries the final (combined) score
    with open(tmp_path / "c" / "candidates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["probability"]) for r in rows] == pytest.approx(
        [c.score for c in cands], abs=1e-6
    )
    truth = [n.center_lps for n in phantom.truth.nodules]
    sizes = [n.diameter_mm for n in phantom.truth.nodules]

    def hits(c: Any) -> bool:
        return any(math.dist(c.center_lps, t) <= d / 2 for t, d in zip(truth, sizes, strict=True))

    tps = [c for c in cands if hits(c)]
    fps = [c for c in cands if not hits(c)]
    assert tps
    assert fps
    best_tp = max(tps, key=lambda c: c.score)
    top_fp = max(fps, key=lambda c: c.features["detector_score"])
    # expected direction: the CNN believes the nodule and doubts the detector's best FP
    assert best_tp.features["fp_probability"] > top_fp.features["fp_probability"]
    assert top_fp.score < top_fp.features["detector_score"]
    assert best_tp.score > top_fp.score
    # both nodules reported, nothing else above the threshold
    found = [n for n in result.nodules if any(math.dist(n.center_lps, t) <= 5.0 for t in truth)]
    assert len(found) == 2, result.nodules
    big = min(found, key=lambda n: math.dist(n.center_lps, truth[0]))
    assert 7.0 <= big.diameter_mm <= 13.0
    assert all(n.score >= pipe.threshold for n in result.nodules)


def test_screening_pipeline_with_unet_segmentation(phantom: Any) -> None:
    # The default segments with the classical grower; method: unet stays a working option.
    pipe = Pipeline.from_yaml("lung_nodule_screening").with_step_config("segment", method="unet")
    assert pipe.steps[pipe.step_index("segment")].config.method == "unet"
    result = pipe.run(phantom.volume, device="cpu")
    truth = [n.center_lps for n in phantom.truth.nodules]
    found = [n for n in result.nodules if any(math.dist(n.center_lps, t) <= 5.0 for t in truth)]
    assert len(found) == 2, result.nodules
    big = min(found, key=lambda n: math.dist(n.center_lps, truth[0]))
    assert 7.0 <= big.diameter_mm <= 13.0
