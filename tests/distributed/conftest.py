"""Fixtures of the Dask executor tests: small phantom cases, the CAD pipeline, a cluster."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medsnowball.pipeline import DEFAULT_PIPELINE, Pipeline

pytest.importorskip("distributed")

from medsnowball.pipeline.dask_executor import DaskExecutor

log = logging.getLogger(__name__)

#: Seeds of the phantom cases; the case ids are ``p<seed>``.
SEEDS = (1, 2, 3)

#: The default pipeline's steps that work without any model (fallback while the CAD is
#: being finished): load, preprocess, lungs, report.
MINIMAL_STEPS = ("load", "preprocess", "lungs", "report")


def _write_phantoms(root: Path) -> list[Path]:
    from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom, write_phantom

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in SEEDS:
        phantom = generate_phantom(
            PhantomConfig(
                shape_zyx=(48, 96, 96),
                spacing_zyx=(2.5, 2.0, 2.0),
                seed=seed,
                nodules=(NoduleSpec(8.0, "solid", "parenchymal"),),
            )
        )
        written = write_phantom(phantom, root / f"tmp{seed}", fmt="nifti")
        target = root / f"p{seed}.nii.gz"
        shutil.move(written["image"], target)  # only the CT: truth files are not cases
        shutil.rmtree(root / f"tmp{seed}")
        paths.append(target)
    return paths


@pytest.fixture(scope="session")
def phantom_inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small phantom CTs (48x96x96, one 8 mm solid nodule each): p1, p2, p3."""
    return _write_phantoms(tmp_path_factory.mktemp("dist_inputs"))


@pytest.fixture(scope="session")
def cad_pipeline(phantom_inputs: list[Path]) -> Pipeline:
    """The default pipeline when it runs here, else its model-free steps."""
    default = Pipeline.from_yaml(DEFAULT_PIPELINE)
    try:
        default.run(phantom_inputs[0])
    except Exception as exc:  # noqa: BLE001 - any failure: fall back to the working steps
        log.warning("default pipeline does not run (%s); testing with %s", exc, MINIMAL_STEPS)
        data: dict[str, Any] = default.to_dict()
        data["name"] = "dist_minimal"
        data["steps"] = [s for s in data["steps"] if s["step"] in MINIMAL_STEPS]
        return Pipeline.from_dict(data, origin="dist_minimal")
    return default


@pytest.fixture(scope="module")
def dask_exe() -> Iterator[DaskExecutor]:
    """A local Dask cluster of 2 worker processes (1 case each), shared by a test module."""
    with DaskExecutor(workers=2, retries=2) as exe:
        yield exe
