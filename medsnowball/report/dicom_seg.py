"""DICOM Segmentation (SEG) of the lungs and nodules, referencing the source CT series.

One BINARY SEG instance (highdicom) with these segments, numbered consecutively from 1
in this order, each only if it has voxels: right lung, left lung, then one segment per
reported nodule (``Nodule.id`` ascending). Segments are mutually exclusive: nodule voxels
belong to their nodule segment only, so the lung segments are "lung minus nodules"
(their union with the nodule segments is the full lung mask). Empty frames are omitted.

Like every derived DICOM object, the SEG copies the patient and study modules of the
source images (PatientName, PatientID, birth date ...): that is what DICOM requires for
it to file into the right study. Treat SEG files as patient data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medsnowball.core.findings import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, CaseResult
from medsnowball.report.dicom_common import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MODEL_NAME,
    SEG_SERIES_NUMBER,
    content_uid,
)


@dataclass
class SegmentationBuild:
    """A SEG dataset and which segment number holds what.

    Attributes:
        dataset: The highdicom ``Segmentation``.
        lung_segments: ``{"right": n, "left": n}`` for the lungs present.
        nodule_segments: ``{Nodule.id: segment number}``.
    """

    dataset: Any
    lung_segments: dict[str, int] = field(default_factory=dict)
    nodule_segments: dict[int, int] = field(default_factory=dict)


def _algorithm(result: CaseResult, version: str) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.AlgorithmIdentificationSequence(
        name=f"medsnowball {result.pipeline}".strip()[:64],
        family=codes.cid7162.ArtificialIntelligence,
        version=version[:64],
        source=MANUFACTURER,
    )


def _label_map(
    result: CaseResult,
) -> tuple[NDArray[np.uint16], list[tuple[str, str | int]]] | None:
    """Mutually exclusive label map and the (kind, key) of each segment number (1-based).

    Only a few cheap passes over the full volume; nodules are written inside their
    bounding boxes.
    """
    from scipy import ndimage

    segments: list[tuple[str, str | int]] = []
    lungs = None if result.lung_labels is None else np.asarray(result.lung_labels)
    nodules = None if result.nodule_labels is None else np.asarray(result.nodule_labels)
    reference = lungs if lungs is not None else nodules
    if reference is None:
        return None
    if lungs is not None:
        lut = np.zeros(max(int(lungs.max()), LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG) + 1, np.uint16)
        for side, value in (("right", LABEL_RIGHT_LUNG), ("left", LABEL_LEFT_LUNG)):
            if np.count_nonzero(lungs == value) > 0:
                segments.append(("lung", side))
                lut[value] = len(segments)
        identity = all(lut[v] == v for v in range(lut.size))
        out = lungs.astype(np.uint16) if identity else lut[lungs]
    else:
        out = np.zeros(reference.shape, dtype=np.uint16)
    if nodules is not None:
        boxes = ndimage.find_objects(nodules)
        for nodule in sorted(result.nodules, key=lambda n: n.id):
            box = boxes[nodule.id - 1] if 0 < nodule.id <= len(boxes) else None
            if box is None:
                continue
            segments.append(("nodule", nodule.id))
            region = out[box]
            region[nodules[box] == nodule.id] = len(segments)
    if not segments:
        return None
    return out, segments


def build_segmentation(
    result: CaseResult,
    headers: Sequence[Dataset],
    *,
    document: dict[str, Any],
    medsnowball_version: str,
) -> SegmentationBuild | None:
    """Build the SEG of a case.

    Args:
        result: The case, with ``lung_labels`` and/or ``nodule_labels`` on the source grid.
        headers: Source image headers, ``headers[k]`` being slice ``k`` of the labels
            (checked beforehand with :func:`~medsnowball.report.dicom_common.source_grid_problem`).
        document: The case's findings document (seeds the deterministic UIDs).
        medsnowball_version: Recorded as software version.

    Returns:
        The SEG and its segment map, or ``None`` when there is nothing to segment.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    built = _label_map(result)
    if built is None:
        return None
    label_map, segments = built
    algorithm = _algorithm(result, medsnowball_version)
    descriptions = []
    lung_segments: dict[str, int] = {}
    nodule_segments: dict[int, int] = {}
    for number, (kind, key) in enumerate(segments, start=1):
        if kind == "lung":
            laterality = codes.SCT.Right if key == "right" else codes.SCT.Left
            desc = hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"{str(key).capitalize()} lung",
                segmented_property_category=codes.SCT.AnatomicalStructure,
                segmented_property_type=codes.SCT.Lung,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_id=f"{key} lung",
                tracking_uid=content_uid(result, f"seg-lung-{key}", document),
            )
            desc.SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(laterality)
            ]
            lung_segments[str(key)] = number
        else:
            desc = hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"Nodule {key}",
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Nodule,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_id=f"Nodule {key}",
                tracking_uid=content_uid(result, f"nodule-{key}", document),
                anatomic_regions=[codes.SCT.Lung],
            )
            nodule_segments[int(key)] = number
        descriptions.append(desc)
    seg = hd.seg.Segmentation(
        source_images=list(headers),
        pixel_array=label_map,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=content_uid(result, "seg-series", document),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=content_uid(result, "seg-instance", document),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=medsnowball_version,
        device_serial_number=DEVICE_SERIAL_NUMBER,
        content_description="Lungs and nodules (medsnowball, research use only)",
        content_label="MEDSNOWBALL",
        series_description="medsnowball lungs and nodules (research)",
    )
    return SegmentationBuild(seg, lung_segments, nodule_segments)


__all__ = ["SegmentationBuild", "build_segmentation"]
