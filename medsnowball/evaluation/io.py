"""Reading evaluation inputs: LUNA16 CSVs, phantom truth JSON, ``medsnowball run`` outputs.

Predictions:

* a LUNA16 submission CSV ``seriesuid,coordX,coordY,coordZ,probability`` (world LPS mm;
  ``luna16_candidates.csv`` of a run), read by :func:`read_luna16_candidates`;
* a run output folder (:func:`read_run_predictions`): its ``luna16_candidates.csv``, plus
  from ``summary.csv`` each finished (ok or needs_review) case's id, source and folder,
  where ``findings.json`` (the measured nodules) and ``nodules.nii.gz`` (their instance
  mask) are used when present.

Truth:

* a LUNA16 ``annotations.csv`` ``seriesuid,coordX,coordY,coordZ,diameter_mm``
  (:func:`read_luna16_truth`); LUNA16's ``annotations_excluded.csv`` (same columns,
  diameter -1 when unknown) adds *irrelevant* findings;
* the ``truth.json`` that :func:`medsnowball.synth.write_phantom` writes beside a phantom
  (``nodules_truth.nii.gz`` beside it is the truth mask), read by :func:`read_truth_json`;
* a folder searched recursively for such JSON files.

A truth case is known under several *keys* (:attr:`TruthCase.keys`): for a phantom the
folder name, the DICOM SeriesInstanceUID the phantom writer gives it, and the file stem
of an image stored beside it. :func:`pair_cases` pairs predictions with truth by key, or
by folder (a prediction whose source image lies in the truth file's folder).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsnowball.core.errors import ConfigError, CorruptFileError
from medsnowball.core.quality import STATUS_NEEDS_REVIEW, STATUS_OK
from medsnowball.evaluation.matching import Prediction, TruthNodule, as_truth

logger = logging.getLogger(__name__)

CANDIDATE_COLUMNS: tuple[str, ...] = ("seriesuid", "coordX", "coordY", "coordZ", "probability")
ANNOTATION_COLUMNS: tuple[str, ...] = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
TRUTH_FORMAT = "medsnowball.synth.truth/1"
TRUTH_MASK_NAME = "nodules_truth.nii.gz"
RUN_CANDIDATES_CSV = "luna16_candidates.csv"
RUN_SUMMARY_CSV = "summary.csv"
RUN_FINDINGS_JSON = "findings.json"
#: summary.csv statuses of cases that ran to the end (their predictions are evaluated).
FINISHED_STATUSES: tuple[str, ...] = (STATUS_OK, STATUS_NEEDS_REVIEW)
RUN_NODULES_NIFTI = "nodules.nii.gz"
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mhd", ".mha", ".nrrd", ".nhdr")


@dataclass(frozen=True)
class TruthCase:
    """Reference nodules of one scan.

    Attributes:
        key: Main key (LUNA16 seriesuid, or the phantom's folder name / file stem).
        nodules: Reference nodules (relevant and irrelevant).
        keys: Every key the scan is known under (``key`` included).
        folder: Folder of the truth file (``None`` for a CSV truth).
        mask_path: Truth instance mask (value = nodule id), when present.
    """

    key: str
    nodules: tuple[TruthNodule, ...]
    keys: tuple[str, ...] = ()
    folder: Path | None = None
    mask_path: Path | None = None


@dataclass(frozen=True)
class PredictionCase:
    """Scored detections of one scan.

    Attributes:
        key: The ``seriesuid`` of its rows (or the case id when it has none).
        predictions: The detections.
        case_id: Case id of a run (``None`` for a bare CSV).
        source: Input image path or DICOM folder of the run.
        case_dir: The run's per-case folder.
    """

    key: str
    predictions: tuple[Prediction, ...]
    case_id: str | None = None
    source: Path | None = None
    case_dir: Path | None = None

    @property
    def findings_path(self) -> Path | None:
        """``findings.json`` of the case, when it exists."""
        p = self.case_dir / RUN_FINDINGS_JSON if self.case_dir is not None else None
        return p if p is not None and p.is_file() else None

    @property
    def mask_path(self) -> Path | None:
        """``nodules.nii.gz`` of the case, when it exists."""
        p = self.case_dir / RUN_NODULES_NIFTI if self.case_dir is not None else None
        return p if p is not None and p.is_file() else None


@dataclass(frozen=True)
class Pairing:
    """Outcome of :func:`pair_cases`.

    Attributes:
        pairs: ``(truth, predictions or None)`` for every truth scan, in truth order.
        unmatched_predictions: Prediction cases that no truth scan claims.
    """

    pairs: tuple[tuple[TruthCase, PredictionCase | None], ...]
    unmatched_predictions: tuple[PredictionCase, ...] = field(default=())


def _read_csv(path: Path, columns: Sequence[str], what: str) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist.")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        found = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in found]
        if missing:
            raise CorruptFileError(
                f"{path} is not a {what}: header {','.join(found) or '(empty)'} lacks "
                f"{','.join(missing)}; expected the columns {','.join(columns)}."
            )
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _floats(row: Mapping[str, str], cols: Sequence[str], path: Path, line: int) -> list[float]:
    try:
        return [float(row[c]) for c in cols]
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(
            f"{path} line {line}: expected numbers in {','.join(cols)}, found "
            f"{[row.get(c) for c in cols]}."
        ) from exc


def read_luna16_candidates(path: str | os.PathLike[str]) -> dict[str, list[Prediction]]:
    """Read a LUNA16 submission CSV (``seriesuid,coordX,coordY,coordZ,probability``).

    Args:
        path: The CSV (world LPS mm; extra columns are ignored).

    Returns:
        seriesuid -> predictions, in file order.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptFileError: Wrong header (names the missing columns) or a non-numeric value.
    """
    p = Path(path)
    out: dict[str, list[Prediction]] = defaultdict(list)
    for line, row in enumerate(_read_csv(p, CANDIDATE_COLUMNS, "LUNA16 candidates CSV"), 2):
        x, y, z, score = _floats(row, CANDIDATE_COLUMNS[1:], p, line)
        out[row["seriesuid"]].append(Prediction((x, y, z), score))
    return dict(out)


def read_luna16_truth(
    annotations: str | os.PathLike[str],
    excluded: str | os.PathLike[str] | None = None,
    scans: Iterable[str] = (),
) -> list[TruthCase]:
    """Read LUNA16 ``annotations.csv`` (and optionally ``annotations_excluded.csv``).

    Args:
        annotations: ``seriesuid,coordX,coordY,coordZ,diameter_mm`` (world mm).
        excluded: Findings that must neither count nor cause false positives.
        scans: Extra seriesuids that belong to the evaluation without any nodule (LUNA16's
            scan list): their detections count as false positives.

    Returns:
        One :class:`TruthCase` per seriesuid, sorted by uid.

    Raises:
        FileNotFoundError: A file does not exist.
        CorruptFileError: Wrong header or non-numeric values.
    """
    cases: dict[str, list[TruthNodule]] = defaultdict(list)
    p = Path(annotations)
    for line, row in enumerate(_read_csv(p, ANNOTATION_COLUMNS, "LUNA16 annotations CSV"), 2):
        x, y, z, d = _floats(row, ANNOTATION_COLUMNS[1:], p, line)
        cases[row["seriesuid"]].append(as_truth(TruthNodule((x, y, z), d)))
    if excluded is not None:
        q = Path(excluded)
        for line, row in enumerate(_read_csv(q, ANNOTATION_COLUMNS, "LUNA16 excluded CSV"), 2):
            x, y, z, d = _floats(row, ANNOTATION_COLUMNS[1:], q, line)
            cases[row["seriesuid"]].append(as_truth(TruthNodule((x, y, z), d, relevant=False)))
    for uid in scans:
        cases.setdefault(uid, [])
    return [TruthCase(uid, tuple(n), (uid,)) for uid, n in sorted(cases.items())]


def read_scan_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a list of seriesuids: one per line, or a CSV with a ``seriesuid`` column."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"scan list {p} does not exist.")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    if lines and "seriesuid" in [c.strip() for c in lines[0].split(",")]:
        col = [c.strip() for c in lines[0].split(",")].index("seriesuid")
        return [ln.split(",")[col].strip() for ln in lines[1:]]
    return lines


def phantom_series_uid(config: Mapping[str, Any]) -> str:
    """SeriesInstanceUID the phantom generator gives a phantom with this config.

    The generator derives it as ``2.25.<uuid of sha256("series" + sorted config JSON)>``;
    ``truth.json`` stores the config, so the UID of a phantom written as DICOM (the
    ``seriesuid`` of its LUNA16 rows) can be recovered from its truth.
    """
    from medsnowball.synth.specs import phantom_uid

    return phantom_uid(config, "series")


def _image_stems(folder: Path) -> list[str]:
    stems = []
    for f in sorted(folder.iterdir()) if folder.is_dir() else []:
        for suf in _IMAGE_SUFFIXES:
            if f.name.endswith(suf) and not f.name.endswith("_truth" + suf):
                stems.append(f.name[: -len(suf)])
    return stems


def read_truth_json(path: str | os.PathLike[str]) -> TruthCase:
    """Read a phantom ``truth.json`` (or any JSON with a ``nodules`` list).

    Each nodule needs ``center_lps`` (x, y, z LPS mm) and ``diameter_mm``; ``type``,
    ``location``, ``id`` and ``volume_mm3`` are used when present. Optional top-level
    ``seriesuid`` / ``series_uid`` / ``case_id`` keys name the scan.

    Args:
        path: The JSON file.

    Returns:
        The truth case (keys: explicit ids, the folder name for ``truth.json`` or the file
        stem otherwise, the DICOM series UID of a generated phantom, stems of images
        beside it).

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptFileError: Not JSON, or not a truth document.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"truth file {p} does not exist.")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"truth file {p} is not valid JSON: {exc}.") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodules"), list):
        raise CorruptFileError(
            f"{p} is not a truth document: expected an object with a 'nodules' list "
            f"(the truth.json medsnowball.synth writes), found {type(doc).__name__}."
        )
    try:
        nodules = tuple(as_truth(n) for n in doc["nodules"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"truth file {p}: {exc}") from exc
    keys: list[str] = [str(doc[k]) for k in ("seriesuid", "series_uid", "case_id") if doc.get(k)]
    keys.append(p.parent.name if p.name == "truth.json" else p.name[: -len(".json")])
    if doc.get("format") == TRUTH_FORMAT and isinstance(doc.get("config"), dict):
        keys.append(phantom_series_uid(doc["config"]))
    keys.extend(_image_stems(p.parent) if p.name == "truth.json" else [])
    mask = p.parent / TRUTH_MASK_NAME
    unique = tuple(dict.fromkeys(keys))
    return TruthCase(
        unique[0], nodules, unique, p.parent.resolve(), mask if mask.is_file() else None
    )


def read_truth(
    path: str | os.PathLike[str],
    excluded: str | os.PathLike[str] | None = None,
    scans: Iterable[str] = (),
) -> list[TruthCase]:
    """Read a truth given as a LUNA16 CSV, one truth JSON, or a folder of truth JSONs.

    Args:
        path: ``annotations.csv``, a ``truth.json`` or a folder searched recursively for
            JSON truth documents (other JSON files are skipped).
        excluded: LUNA16 ``annotations_excluded.csv`` (CSV truth only).
        scans: seriesuids without nodules that belong to the evaluation (CSV truth only).

    Returns:
        The truth cases.

    Raises:
        FileNotFoundError: Missing path, or a folder without truth files.
        CorruptFileError: Unreadable truth.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"truth {p} does not exist.")
    if p.is_dir():
        cases = []
        for f in sorted(p.rglob("*.json")):
            try:
                cases.append(read_truth_json(f))
            except CorruptFileError:
                logger.debug("%s: not a truth document, skipped", f)
        if not cases:
            raise FileNotFoundError(
                f"no truth JSON (a 'nodules' list, e.g. truth.json) found under {p}."
            )
        return cases
    if p.suffix.lower() == ".json":
        return [read_truth_json(p)]
    return read_luna16_truth(p, excluded, scans)


def _summary_rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / RUN_SUMMARY_CSV
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_run_predictions(run_dir: str | os.PathLike[str]) -> list[PredictionCase]:
    """Read the predictions of a ``medsnowball run`` output folder.

    Args:
        run_dir: The folder (holds ``luna16_candidates.csv``; ``summary.csv`` and the
            per-case folders are used when present).

    Returns:
        One :class:`PredictionCase` per finished case (``ok`` or ``needs_review``;
        cases without candidates included) and per seriesuid of the CSV that no case
        claims.

    Raises:
        FileNotFoundError: No ``luna16_candidates.csv`` in the folder.
        CorruptFileError: A CSV with a wrong header.
    """
    root = Path(run_dir)
    csv_path = root / RUN_CANDIDATES_CSV
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{root} has no {RUN_CANDIDATES_CSV}: pass the output folder of 'medsnowball run' "
            "or a LUNA16 candidates CSV."
        )
    by_uid = read_luna16_candidates(csv_path)
    out: list[PredictionCase] = []
    claimed: set[str] = set()
    for row in _summary_rows(root):
        if row.get("status") not in FINISHED_STATUSES or not row.get("case_id"):
            continue
        case_id = row["case_id"]
        case_dir = root / case_id
        key = ""
        per_case = case_dir / "candidates.csv"
        if per_case.is_file():
            rows = read_luna16_candidates(per_case)
            key = next(iter(rows), "")
        if not key:
            key = next(
                (k for k in (row.get("series_uid"), case_id) if k and k in by_uid),
                row.get("series_uid") or case_id,
            )
        claimed.add(key)
        src = row.get("source")
        out.append(
            PredictionCase(
                key,
                tuple(by_uid.get(key, [])),
                case_id,
                Path(src).resolve() if src else None,
                case_dir if case_dir.is_dir() else None,
            )
        )
    out.extend(PredictionCase(k, tuple(v)) for k, v in by_uid.items() if k not in claimed)
    return out


def read_predictions(path: str | os.PathLike[str]) -> list[PredictionCase]:
    """Read predictions from a run output folder or a LUNA16 candidates CSV.

    Raises:
        FileNotFoundError: Missing path or missing candidates CSV.
        CorruptFileError: Wrong CSV header or values.
    """
    p = Path(path)
    if p.is_dir():
        return read_run_predictions(p)
    return [PredictionCase(k, tuple(v)) for k, v in read_luna16_candidates(p).items()]


def pair_cases(truth: Sequence[TruthCase], predictions: Sequence[PredictionCase]) -> Pairing:
    """Pair every truth scan with its predictions.

    A prediction case belongs to a truth scan when its key or case id is one of the
    scan's keys, or when its source (image file or DICOM folder) lies in the truth file's
    folder (``phantom/image.nii.gz``, ``phantom/dicom/``) or is that folder.

    Args:
        truth: Truth scans.
        predictions: Prediction cases.

    Returns:
        The pairing (truth scans without predictions get ``None``: they are scans where
        nothing was detected).

    Raises:
        ConfigError: Two truth scans share a key, one prediction case fits two scans, or
            two prediction cases fit one scan.
    """
    index: dict[str, int] = {}
    for i, t in enumerate(truth):
        for k in t.keys or (t.key,):
            if k in index and index[k] != i:
                raise ConfigError(
                    f"two truth scans are both known as {k!r}; give each scan a unique "
                    "folder name or seriesuid."
                )
            index[k] = i
    folders = {t.folder: i for i, t in enumerate(truth) if t.folder is not None}
    chosen: dict[int, PredictionCase] = {}
    unmatched: list[PredictionCase] = []
    for pc in predictions:
        hits = {index[k] for k in (pc.key, pc.case_id) if k is not None and k in index}
        if not hits and pc.source is not None:
            for folder in (pc.source.parent, pc.source):
                if folder in folders:
                    hits = {folders[folder]}
                    break
        if len(hits) > 1:
            raise ConfigError(
                f"predictions of {pc.key!r} fit several truth scans "
                f"({', '.join(truth[i].key for i in sorted(hits))})."
            )
        if not hits:
            unmatched.append(pc)
            continue
        i = hits.pop()
        if i in chosen:
            raise ConfigError(
                f"truth scan {truth[i].key!r} fits the predictions of two cases "
                f"({chosen[i].case_id or chosen[i].key!r} and {pc.case_id or pc.key!r}); give "
                "each scan its own truth folder or seriesuid."
            )
        chosen[i] = pc
    return Pairing(
        tuple((t, chosen.get(i)) for i, t in enumerate(truth)),
        tuple(unmatched),
    )


__all__ = [
    "ANNOTATION_COLUMNS",
    "CANDIDATE_COLUMNS",
    "Pairing",
    "PredictionCase",
    "TruthCase",
    "pair_cases",
    "phantom_series_uid",
    "read_luna16_candidates",
    "read_luna16_truth",
    "read_predictions",
    "read_run_predictions",
    "read_scan_list",
    "read_truth",
    "read_truth_json",
]
