"""Training datalists in MONAI's detection datalist format, and converters to it.

A datalist is a JSON object with ``"training"`` and ``"validation"`` lists. Each item::

    {"image": "scans/case.mhd",            # relative to the datalist file, or absolute
     "box": [[x, y, z, w, h, d], ...],      # world LPS mm, centre + size ("cccwhd")
     "label": [0, ...],                     # class per box (0 = nodule)
     "seg": "masks/case.nii.gz",            # optional: nodule instance labels (1..n)
     "seg_label": [1, ...],                 # optional: label value of each box in "seg"
     "lung": "lungs/case.nii.gz",           # optional: lung mask (> 0 inside)
     "case_id": "..."}                      # optional

This is the layout of the MONAI ``lung_nodule_ct_detection`` bundle's datalists
(``monai.data.load_decathlon_datalist(..., is_segmentation=True)`` reads it) with
optional extra keys medsnowball uses for segmentation training.

Converters: :func:`luna16_to_datalist` (``annotations.csv`` + a folder of ``.mhd``),
:func:`lidc_to_datalist` (pylidc; consensus masks at 50 % agreement) and
:func:`synthetic_to_datalist` (the phantom generator of :mod:`medsnowball.synth`).
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medsnowball.core.atomic import atomic_write_text
from medsnowball.core.errors import ConfigError, CorruptFileError, MissingDependencyError
from medsnowball.validation.registry import refuse_heldout

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation")
LUNA16_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")

Datalist = dict[str, list[dict[str, Any]]]


def _check_item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping) or "image" not in item:
        raise ConfigError(f"{where}: each item needs an 'image' key, found {item!r:.120}.")
    boxes = item.get("box", [])
    labels = item.get("label", [0] * len(boxes))
    if not isinstance(boxes, list) or any(
        not isinstance(b, list) or len(b) != 6 or not all(isinstance(v, (int, float)) for v in b)
        for b in boxes
    ):
        raise ConfigError(
            f"{where}: 'box' of {item['image']} must be a list of [x, y, z, w, h, d] (world mm)."
        )
    if not isinstance(labels, list) or len(labels) != len(boxes):
        raise ConfigError(f"{where}: 'label' of {item['image']} needs one entry per box.")
    if "seg_label" in item and len(item["seg_label"]) != len(boxes):
        raise ConfigError(f"{where}: 'seg_label' of {item['image']} needs one entry per box.")
    return {**item, "box": boxes, "label": labels}


def read_datalist(
    path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None
) -> Datalist:
    """Read and validate a datalist; relative paths become absolute.

    Args:
        path: The JSON file.
        base_dir: Folder relative paths refer to (default: the JSON file's folder).

    Returns:
        ``{"training": [...], "validation": [...]}`` (a missing split is empty).

    Raises:
        CorruptFileError: Not valid JSON.
        ConfigError: Wrong structure (names the split and image).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"datalist {p} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict) or not any(k in data for k in SPLITS):
        raise ConfigError(f"datalist {p} must be an object with 'training' and/or 'validation'.")
    base = Path(base_dir) if base_dir is not None else p.parent
    out: Datalist = {}
    for split in SPLITS:
        items = data.get(split, [])
        if not isinstance(items, list):
            raise ConfigError(f"datalist {p}: '{split}' must be a list.")
        checked = []
        for i, raw in enumerate(items):
            item = _check_item(raw, f"datalist {p} [{split}][{i}]")
            for key in ("image", "seg", "lung"):
                if key in item and item[key] and not Path(item[key]).is_absolute():
                    item[key] = str(base / item[key])
            refuse_heldout(paths=[str(item[k]) for k in ("image", "seg", "lung") if item.get(k)])
            checked.append(item)
        out[split] = checked
    return out


def write_datalist(
    path: str | os.PathLike[str], datalist: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Path:
    """Write a datalist atomically, with paths relative to its folder where possible."""
    dest = Path(path).resolve()
    rel: Datalist = {}
    for split in SPLITS:
        items = []
        for item in datalist.get(split, []):
            new = dict(item)
            for key in ("image", "seg", "lung"):
                if new.get(key):
                    try:
                        new[key] = str(Path(new[key]).resolve().relative_to(dest.parent))
                    except ValueError:
                        new[key] = str(Path(new[key]).resolve())
            items.append(new)
        rel[split] = items
    return atomic_write_text(dest, json.dumps(rel, indent=1) + "\n")


def split_cases(
    keys: Sequence[str], validation_fraction: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Seeded random split of case keys into (training, validation).

    Raises:
        ConfigError: Fraction outside [0, 1).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {validation_fraction}.")
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * validation_fraction)
    if validation_fraction > 0 and n_val == 0 and len(order) > 1:
        n_val = 1
    val = set(order[:n_val])
    return [k for k in sorted(keys) if k not in val], [k for k in sorted(keys) if k in val]


def read_luna16_annotations(path: str | os.PathLike[str]) -> dict[str, list[tuple[float, ...]]]:
    """Read a LUNA16 ``annotations.csv``: seriesuid -> [(x, y, z, diameter_mm), ...].

    Raises:
        CorruptFileError: Missing columns or non-numeric values (names the line).
    """
    p = Path(path)
    out: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in LUNA16_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorruptFileError(
                f"{p} is not a LUNA16 annotations file: missing column(s) {missing}; expected "
                f"{','.join(LUNA16_COLUMNS)}."
            )
        for line, row in enumerate(reader, start=2):
            try:
                vals = tuple(float(row[c]) for c in LUNA16_COLUMNS[1:])
            except (TypeError, ValueError) as exc:
                raise CorruptFileError(f"{p} line {line}: non-numeric value ({exc}).") from exc
            out[row["seriesuid"]].append(vals)
    return dict(out)


def luna16_to_datalist(
    annotations_csv: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    validation_fraction: float = 0.2,
    seed: int = 0,
    include_empty: bool = True,
) -> Datalist:
    """Build a datalist from LUNA16's ``annotations.csv`` and its folder of ``.mhd`` images.

    Images are found recursively as ``<seriesuid>.mhd`` (LUNA16's ``subset0..9``
    layout). Annotations whose image is absent are skipped (counted in the log).

    Args:
        annotations_csv: ``seriesuid,coordX,coordY,coordZ,diameter_mm`` (world mm).
        image_dir: Folder searched recursively for ``*.mhd``.
        out_path: Where to write the JSON (optional).
        validation_fraction: Share of scans put in ``"validation"``.
        seed: Seed of the split.
        include_empty: Keep scans without nodules (they give negatives).

    Returns:
        The datalist (absolute paths).

    Raises:
        NoSeriesFoundError-like ConfigError: No image of the CSV was found.
    """
    refuse_heldout(paths=(annotations_csv, image_dir))
    ann = read_luna16_annotations(annotations_csv)
    images = {p.name[: -len(".mhd")]: p for p in Path(image_dir).rglob("*.mhd")}
    if not images:
        raise ConfigError(f"no .mhd images found under {image_dir}; point to the LUNA16 subsets.")
    uids = sorted(u for u in images if include_empty or u in ann)
    skipped = sum(len(v) for u, v in ann.items() if u not in images)
    if skipped:
        logger.info("%d annotation(s) refer to images not found under %s", skipped, image_dir)
    train, val = split_cases(uids, validation_fraction, seed)
    dl: Datalist = {"training": [], "validation": []}
    for split, keys in (("training", train), ("validation", val)):
        for uid in keys:
            rows = ann.get(uid, [])
            dl[split].append(
                {
                    "image": str(images[uid].resolve()),
                    "box": [[x, y, z, d, d, d] for x, y, z, d in rows],
                    "label": [0] * len(rows),
                    "case_id": uid,
                }
            )
    if out_path is not None:
        write_datalist(out_path, dl)
    return dl


def lidc_to_datalist(
    out_dir: str | os.PathLike[str],
    validation_fraction: float = 0.2,
    seed: int = 0,
    agreement: float = 0.5,
    min_readers: int = 1,
    max_scans: int | None = None,
) -> Datalist:
    """Convert LIDC-IDRI (through ``pylidc``) to images, consensus masks and a datalist.

    For every scan pylidc knows, the annotations are clustered into nodules
    (``scan.cluster_annotations()``); each nodule with at least ``min_readers``
    readers gets a consensus mask at ``agreement`` reader agreement
    (``pylidc.utils.consensus``). Writes ``images/<id>.nii.gz``,
    ``masks/<id>.nii.gz`` (instance labels 1..n) and ``datalist.json`` in ``out_dir``.

    Args:
        out_dir: Output folder.
        validation_fraction: Share of scans in ``"validation"``.
        seed: Split seed.
        agreement: Consensus level (0.5 = voxels marked by at least half the readers).
        min_readers: Nodules marked by fewer readers are skipped.
        max_scans: Convert at most this many scans (for trials).

    Returns:
        The datalist.

    Raises:
        MissingDependencyError: pylidc is not installed or not configured.
        HeldOutDataError: pylidc imports: the LIDC-IDRI contours are reserved for the
            independent validation set (:mod:`medsnowball.validation.registry`).
    """
    try:
        import pylidc as pl
        from pylidc.utils import consensus
    except ImportError as exc:
        raise MissingDependencyError(
            "LIDC-IDRI conversion needs pylidc (pip install pylidc) configured with the "
            "path of the LIDC-IDRI DICOM folder (~/.pylidcrc)."
        ) from exc
    # the LIDC-IDRI reader contours are the held-out real-shape validation source
    refuse_heldout(shape_source="lidc")
    import numpy as np

    from medsnowball.core.volume import CTVolume, ImageGeometry
    from medsnowball.io import write_image

    out = Path(out_dir)
    items: dict[str, dict[str, Any]] = {}
    scans = pl.query(pl.Scan).order_by(pl.Scan.series_instance_uid)
    for n, scan in enumerate(scans):
        if max_scans is not None and n >= max_scans:
            break
        case_id = f"lidc{n:04d}"
        dicoms = scan.load_all_dicom_images(verbose=False)
        if not dicoms:
            continue
        vol_yxz = scan.to_volume(verbose=False)  # (row, col, slice) = (y, x, z) HU
        z_pos = [float(d.ImagePositionPatient[2]) for d in dicoms]
        first = dicoms[int(np.argmin(z_pos))]
        ipp = [float(v) for v in first.ImagePositionPatient]
        sy, sx = (float(v) for v in first.PixelSpacing)
        sz = float(scan.slice_spacing)
        if len(z_pos) > 1:
            sz = float(abs(np.median(np.diff(sorted(z_pos)))))
        if z_pos[0] > z_pos[-1]:
            vol_yxz = vol_yxz[:, :, ::-1]
        hu_zyx = np.ascontiguousarray(vol_yxz.transpose(2, 0, 1)).astype(np.int16)
        geom = ImageGeometry(hu_zyx.shape, (sz, sy, sx), (ipp[0], ipp[1], ipp[2]))
        volume = CTVolume(hu_zyx, geom)
        labels = np.zeros(geom.shape_zyx, dtype=np.uint16)
        boxes: list[list[float]] = []
        seg_labels: list[int] = []
        for anns in scan.cluster_annotations():
            if len(anns) < min_readers:
                continue
            result = consensus(anns, clevel=agreement)  # (mask, bbox[, reader masks])
            mask_yxz, bbox = result[0], result[1]
            if not mask_yxz.any():
                continue
            full = np.zeros(vol_yxz.shape, dtype=bool)
            full[bbox] = mask_yxz
            if z_pos[0] > z_pos[-1]:
                full = full[:, :, ::-1]
            full_zyx = full.transpose(2, 0, 1)
            label = len(boxes) + 1
            labels[full_zyx & (labels == 0)] = label
            idx = np.argwhere(full_zyx)
            centre = geom.index_to_world(idx.mean(axis=0))
            diam = float(np.mean([a.diameter for a in anns]))
            boxes.append([*map(float, centre), diam, diam, diam])
            seg_labels.append(label)
        img_path = write_image(volume, out / "images" / f"{case_id}.nii.gz")
        seg_path = write_image(volume.with_array(labels), out / "masks" / f"{case_id}.nii.gz")
        items[case_id] = {
            "image": str(img_path),
            "seg": str(seg_path),
            "box": boxes,
            "label": [0] * len(boxes),
            "seg_label": seg_labels,
            "case_id": case_id,
        }
    train, val = split_cases(list(items), validation_fraction, seed)
    dl: Datalist = {"training": [items[k] for k in train], "validation": [items[k] for k in val]}
    write_datalist(out / "datalist.json", dl)
    return dl


def synthetic_to_datalist(
    out_dir: str | os.PathLike[str],
    n_cases: int,
    seed: int = 0,
    shape_zyx: tuple[int, int, int] = (96, 128, 128),
    spacing_zyx: tuple[float, float, float] = (1.5, 1.5, 1.5),
    nodules_per_case: int = 3,
    validation_fraction: float = 0.2,
    progress: Callable[[int, int], None] | None = None,
) -> Datalist:
    """Generate synthetic phantoms and a datalist describing them.

    Each case is ``medsnowball.synth.generate_phantom`` with seed ``seed + i`` and
    ``nodules_per_case`` random nodules (LUNA16 size distribution, all types and
    locations). Writes ``images/``, ``masks/`` (nodule instance labels), ``lungs/`` and
    ``datalist.json`` in ``out_dir``.

    Args:
        out_dir: Output folder.
        n_cases: Number of phantoms.
        seed: First seed.
        shape_zyx: Phantom grid.
        spacing_zyx: Phantom voxel size (mm).
        nodules_per_case: Random nodules per phantom.
        validation_fraction: Share of phantoms in ``"validation"``.
        progress: Called with ``(done, total)`` after each phantom.

    Returns:
        The datalist.
    """
    import numpy as np

    from medsnowball.io import write_image
    from medsnowball.synth.specs import PhantomConfig, random_nodule_specs

    # resolved at run time: the generator's public entry point lives in medsnowball.synth
    generate_phantom = importlib.import_module("medsnowball.synth").generate_phantom

    refuse_heldout(seeds=range(seed, seed + n_cases))
    out = Path(out_dir)
    items: dict[str, dict[str, Any]] = {}
    for i in range(n_cases):
        case_seed = seed + i
        rng = np.random.default_rng(case_seed)
        specs = tuple(random_nodule_specs(rng, nodules_per_case))
        cfg = PhantomConfig(
            shape_zyx=shape_zyx, spacing_zyx=spacing_zyx, seed=case_seed, nodules=specs
        )
        ph = generate_phantom(cfg)
        case_id = f"synth{case_seed:05d}"
        vol = ph.volume
        img = write_image(vol, out / "images" / f"{case_id}.nii.gz")
        seg = write_image(
            vol.with_array(np.asarray(ph.nodule_labels).astype(np.uint16)),
            out / "masks" / f"{case_id}.nii.gz",
        )
        lung = write_image(
            vol.with_array(np.asarray(ph.lung_labels).astype(np.uint8)),
            out / "lungs" / f"{case_id}.nii.gz",
        )
        nods = list(ph.truth.nodules)
        items[case_id] = {
            "image": str(img),
            "seg": str(seg),
            "lung": str(lung),
            "box": [[*map(float, n.center_lps), *([float(n.diameter_mm)] * 3)] for n in nods],
            "label": [0] * len(nods),
            "seg_label": [int(n.id) for n in nods],
            "nodule_type": [str(n.type) for n in nods],
            "case_id": case_id,
        }
        if progress is not None:
            progress(i + 1, n_cases)
    train, val = split_cases(list(items), validation_fraction, seed)
    dl: Datalist = {"training": [items[k] for k in train], "validation": [items[k] for k in val]}
    write_datalist(out / "datalist.json", dl)
    return dl


def iter_items(datalist: Datalist, split: str) -> Iterable[dict[str, Any]]:
    """Items of one split (``"training"`` or ``"validation"``).

    Raises:
        ConfigError: Unknown split.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}.")
    return iter(datalist.get(split, []))


__all__ = [
    "Datalist",
    "iter_items",
    "lidc_to_datalist",
    "luna16_to_datalist",
    "read_datalist",
    "read_luna16_annotations",
    "split_cases",
    "synthetic_to_datalist",
    "write_datalist",
]
