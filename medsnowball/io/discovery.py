"""Find DICOM series and image files under folders, reading DICOM headers only.

:func:`discover` walks the given paths (any file names, nested folders), reads each
candidate file's DICOM header in parallel threads (no pixel data), groups the DICOM
files into series by (StudyInstanceUID, SeriesInstanceUID), and lists NIfTI, MetaImage
and NRRD files as cases of their own. Everything else is skipped with a logged reason
collected in :attr:`Discovery.skipped`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medsnowball.core.errors import CorruptFileError
from medsnowball.io.dicom_headers import DicomHeader, NotDicomError, read_header_cached
from medsnowball.io.writers import image_suffix

__all__ = ["DicomSeries", "Discovery", "discover", "iter_files"]

logger = logging.getLogger(__name__)

#: File names that are never images (DICOMDIR indexes, MetaImage/NRRD detached data...).
_IGNORED_NAMES = frozenset({"dicomdir", "lockfile", "version", ".ds_store", "thumbs.db"})
_DATA_SUFFIXES = (".raw", ".zraw", ".raw.gz", ".img", ".hdr")
_IMAGE = "\0image"


@dataclass(frozen=True)
class DicomSeries:
    """The files of one DICOM series (headers only).

    Attributes:
        study_uid: StudyInstanceUID ("" when absent).
        series_uid: SeriesInstanceUID ("" when absent; then one series per folder).
        headers: Headers of the instances, sorted by path (not by slice position).
    """

    study_uid: str
    series_uid: str
    headers: tuple[DicomHeader, ...]

    @property
    def first(self) -> DicomHeader:
        """The first header (by path); representative for series-level attributes."""
        return self.headers[0]

    @property
    def files(self) -> tuple[str, ...]:
        """Instance file paths, sorted by path."""
        return tuple(h.path for h in self.headers)

    @property
    def n_slices(self) -> int:
        """Number of slices (frames summed over instances)."""
        return sum(h.number_of_frames for h in self.headers)

    @property
    def modality(self) -> str | None:
        """Modality of the first instance that has one, else None."""
        for h in self.headers:
            if h.modality:
                return h.modality
        return None

    @property
    def description(self) -> str:
        """SeriesDescription of the first instance."""
        return self.first.series_description

    @property
    def slice_thickness(self) -> float | None:
        """Median SliceThickness over frames (mm), else the median position step, else None."""
        vals = [f.thickness for h in self.headers for f in h.frames if f.thickness]
        if vals:
            return float(np.median(vals))
        step = self.position_step()
        return step if step else None

    def normal(self) -> np.ndarray | None:
        """Unit slice normal (row x column cosines) of the first oriented frame, or None."""
        for h in self.headers:
            for f in h.frames:
                if f.orientation is not None:
                    r = np.asarray(f.orientation[:3])
                    c = np.asarray(f.orientation[3:])
                    n = np.cross(r, c)
                    norm = float(np.linalg.norm(n))
                    if norm > 1e-6:
                        return n / norm
        return None

    def position_step(self) -> float | None:
        """Median distance between distinct sorted slice positions along the normal."""
        n = self.normal()
        if n is None:
            return None
        d = sorted(
            float(np.dot(f.position, n))
            for h in self.headers
            for f in h.frames
            if f.position is not None
        )
        steps = np.diff(d)
        steps = steps[steps > 1e-3]
        return float(np.median(steps)) if steps.size else None


@dataclass
class Discovery:
    """Result of :func:`discover`.

    Attributes:
        series: DICOM series found, sorted by (study, series UID).
        images: NIfTI / MetaImage / NRRD files found, sorted.
        skipped: ``(path, reason)`` for every file that is neither.
    """

    series: list[DicomSeries] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yield every regular file under ``paths`` (files themselves, folders recursively).

    Hidden files and folders (names starting with ``.``) are not entered, which also
    skips the ``.tmp-*`` leftovers of interrupted atomic writes.

    Raises:
        FileNotFoundError: A given path does not exist.
    """
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist; expected a file or folder of CT images.")
        if p.is_file():
            yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(root) / name


def _classify(path: Path) -> tuple[DicomHeader | None, str]:
    """Return ``(header, "")`` for DICOM, ``(None, "image")`` for image files, else a reason."""
    lower = path.name.lower()
    if lower in _IGNORED_NAMES:
        return None, "DICOMDIR or index file (ignored; files are found by walking folders)"
    if image_suffix(path) is not None:
        return None, _IMAGE
    if lower.endswith(_DATA_SUFFIXES):
        return None, "data file of a header-plus-data image format"
    try:
        return read_header_cached(path), ""
    except (NotDicomError, CorruptFileError) as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read file ({exc.strerror or exc})"


def discover(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    max_workers: int | None = None,
) -> Discovery:
    """Walk ``paths`` and group what is found into DICOM series and image files.

    Only DICOM headers are read (``stop_before_pixels``), in a thread pool.

    Args:
        paths: A file or folder, or several.
        max_workers: Threads for header reading (default ``min(16, 2 * cpu_count)``).

    Returns:
        A :class:`Discovery`. Files that are not images are listed in ``skipped`` with a
        reason and logged at INFO level. DICOM objects without pixel data (reports,
        structured reports, presentation states) are skipped too.

    Raises:
        FileNotFoundError: A given path does not exist.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files = list(iter_files(items))
    workers = max_workers or min(16, 2 * (os.cpu_count() or 1))
    if len(files) > 1 and workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_classify, files))
    else:
        results = [_classify(f) for f in files]

    out = Discovery()
    groups: dict[tuple[str, str], list[DicomHeader]] = {}
    for path, (h, reason) in zip(files, results, strict=True):
        if reason == _IMAGE:
            out.images.append(path)
        elif h is None:
            out.skipped.append((str(path), reason))
            logger.info("Skipping %s: %s", path, reason)
        else:
            if not h.rows or not h.columns or not h.has_pixel_data:
                reason = "DICOM object without image pixel data"
                out.skipped.append((str(path), reason))
                logger.info("Skipping %s: %s", path, reason)
                continue
            series_key = h.series_uid or f"no-series-uid:{path.parent}"
            groups.setdefault((h.study_uid, series_key), []).append(h)
    for (study, series), headers in sorted(groups.items()):
        out.series.append(DicomSeries(study, series, tuple(sorted(headers, key=lambda h: h.path))))
    out.images.sort()
    return out
