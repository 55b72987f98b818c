"""``nodules.csv``: one row per reported nodule, columns in :data:`NODULE_CSV_COLUMNS`.

Numbers use the same rounding as ``findings.json``; empty cells mean "unknown". The file
always has its header, even for a case without nodules. No patient identifiers. The only
cell that can come from the inputs, ``case_id``, goes through
:func:`~medsnowball.core.csvsafe.csv_safe` (formula injection).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.csvsafe import csv_safe
from medsnowball.core.findings import CaseResult, Nodule
from medsnowball.report.findings import HU_DECIMALS, MM_DECIMALS, SCORE_DECIMALS, nodule_dict

#: Columns of nodules.csv, in order (documented in docs/findings.md).
NODULE_CSV_COLUMNS: tuple[str, ...] = (
    "case_id",
    "nodule_id",
    "center_x_mm",
    "center_y_mm",
    "center_z_mm",
    "score",
    "diameter_mm",
    "long_axis_mm",
    "short_axis_mm",
    "volume_mm3",
    "equivalent_diameter_mm",
    "type",
    "solid_component_mm",
    "mean_hu",
    "side",
    "zone",
    "juxtapleural",
    "calcified",
    "lung_rads",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def nodule_rows(result: CaseResult) -> list[dict[str, str]]:
    """Rows of nodules.csv (strings keyed by column name) for one case."""
    rows: list[dict[str, str]] = []
    nodules: Sequence[Nodule] = result.nodules
    for index, nodule in enumerate(nodules):
        d = nodule_dict(nodule, index, result.assessment)
        eq = nodule.equivalent_diameter_mm
        values: dict[str, Any] = {
            "case_id": csv_safe(result.case_id),  # may come from a file name
            "nodule_id": d["id"],
            "center_x_mm": d["center_mm"][0],
            "center_y_mm": d["center_mm"][1],
            "center_z_mm": d["center_mm"][2],
            "score": round(d["score"], SCORE_DECIMALS),
            "diameter_mm": d["diameter_mm"],
            "long_axis_mm": d["long_axis_mm"],
            "short_axis_mm": d["short_axis_mm"],
            "volume_mm3": d["volume_mm3"],
            "equivalent_diameter_mm": (
                round(float(eq), MM_DECIMALS) + 0.0 if math.isfinite(eq) else None
            ),
            "type": d["type"],
            "solid_component_mm": d["solid_component_mm"],
            "mean_hu": None if d["mean_hu"] is None else round(d["mean_hu"], HU_DECIMALS),
            "side": d["location"]["side"],
            "zone": d["location"]["zone"],
            "juxtapleural": d["juxtapleural"],
            "calcified": d["calcified"],
            "lung_rads": d["lung_rads"],
        }
        rows.append({k: _cell(values[k]) for k in NODULE_CSV_COLUMNS})
    return rows


def nodules_csv_text(result: CaseResult) -> str:
    """The complete nodules.csv text (header + rows, ``\\n`` line endings)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(NODULE_CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(nodule_rows(result))
    return buffer.getvalue()


def write_nodules_csv(result: CaseResult, path: str | os.PathLike[str]) -> Path:
    """Write nodules.csv atomically and return its path."""
    return atomic_write_text(path, nodules_csv_text(result))


__all__ = ["NODULE_CSV_COLUMNS", "nodule_rows", "nodules_csv_text", "write_nodules_csv"]
