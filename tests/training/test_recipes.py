"""The shipped-weights recipe: its phantom configurations (no phantom is generated here)."""

from __future__ import annotations

from collections import Counter

from medsnowball.training.recipes import (
    DEFAULT_SEED,
    ENRICHED_NODULES,
    ENRICHED_SEED_OFFSET,
    N_ENRICHED,
    enriched_phantom_config,
    phantom_config,
)


def test_enriched_phantoms_are_rich_in_attached_and_subsolid_nodules() -> None:
    seeds = range(DEFAULT_SEED + ENRICHED_SEED_OFFSET, DEFAULT_SEED + ENRICHED_SEED_OFFSET + 40)
    enriched = [n for s in seeds for n in enriched_phantom_config(s).nodules]
    standard = [n for s in seeds for n in phantom_config(s).nodules]
    assert len(enriched) == 40 * ENRICHED_NODULES
    assert max(n.diameter_mm for n in enriched) <= 15.0
    assert max(n.diameter_mm for n in standard) > 15.0

    def attached(nodules: list) -> float:  # type: ignore[type-arg]
        loc = Counter(n.location for n in nodules)
        return (loc["juxtapleural"] + loc["juxtavascular"]) / len(nodules)

    def subsolid(nodules: list) -> float:  # type: ignore[type-arg]
        return sum(n.type != "solid" for n in nodules) / len(nodules)

    assert attached(enriched) > 0.7 > 0.6 > attached(standard)
    assert subsolid(enriched) > 0.4 > 0.35 > subsolid(standard)
    # same seed, same phantom: the recipe is reproducible
    assert enriched_phantom_config(DEFAULT_SEED + ENRICHED_SEED_OFFSET) == enriched_phantom_config(
        DEFAULT_SEED + ENRICHED_SEED_OFFSET
    )


def test_enriched_seeds_do_not_overlap_the_standard_or_benchmark_seeds() -> None:
    enriched = set(
        range(DEFAULT_SEED + ENRICHED_SEED_OFFSET, DEFAULT_SEED + ENRICHED_SEED_OFFSET + N_ENRICHED)
    )
    standard = set(range(DEFAULT_SEED, DEFAULT_SEED + 48))  # 40 training + 8 validation
    assert not enriched & standard
    assert max(enriched) < 20000  # benchmarks and tuning use 20000+
