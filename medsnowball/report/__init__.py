"""Reporting: guideline assessment and the per-case outputs.

* :mod:`medsnowball.report.guidelines`: Lung-RADS v2022 (baseline) and Fleischner 2017.
* :func:`write_case_outputs`: findings.json, nodules.csv, NIfTI label maps, report.html,
  report.pdf, DICOM SEG and SR for one case.
* :func:`findings_dict` / :func:`validate_findings`: the findings.json document and its
  JSON Schema check.

Heavy libraries (matplotlib, jinja2, highdicom) are imported only when a writer runs.
"""

from __future__ import annotations

from medsnowball.report.errors import InvalidFindingsError
from medsnowball.report.findings import (
    FINDINGS_SCHEMA_VERSION,
    dumps_findings,
    findings_dict,
    load_schema,
    validate_findings,
)
from medsnowball.report.guidelines import (
    FLEISCHNER_VERSION,
    LUNG_RADS_VERSION,
    assess,
    fleischner_recommendation,
    lung_rads_category,
)
from medsnowball.report.tables import NODULE_CSV_COLUMNS, nodules_csv_text
from medsnowball.report.writer import ALL_FORMATS, FILE_NAMES, CaseOutputs, write_case_outputs

__all__ = [
    "ALL_FORMATS",
    "FILE_NAMES",
    "FINDINGS_SCHEMA_VERSION",
    "FLEISCHNER_VERSION",
    "LUNG_RADS_VERSION",
    "NODULE_CSV_COLUMNS",
    "CaseOutputs",
    "InvalidFindingsError",
    "assess",
    "dumps_findings",
    "findings_dict",
    "fleischner_recommendation",
    "load_schema",
    "lung_rads_category",
    "nodules_csv_text",
    "validate_findings",
    "write_case_outputs",
]
