"""DICOM Structured Report, TID 1500 Measurement Report (highdicom Comprehensive 3D SR).

Content (one measurement group per finding):

* per nodule: a **volumetric** ROI group referencing the nodule's SEG segment when the
  SEG was written, else a **planar** ROI group with a circle of the nodule's mean
  diameter on the source image of its centre slice. Measurements: mean diameter (SCT
  Diameter, derivation Mean), long and short axis, volume, mean attenuation (HU),
  solid-component diameter and detection score (private codes); qualitative
  evaluations: nodule type and Lung-RADS category (private codes); finding type SCT
  Nodule, finding site the lung zone with laterality.
* per lung segment in the SEG: a volumetric group with the lung volume (ml).
* one image-level group with the exam's Lung-RADS category.

The SR is marked COMPLETE and UNVERIFIED (nobody has reviewed it). Like the SEG, it
copies the patient and study modules of the source images, as DICOM requires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from medsnowball.core.findings import CaseResult, Nodule, NoduleType, Side, Zone
from medsnowball.core.volume import ImageGeometry
from medsnowball.report.dicom_common import (
    CODE_DETECTION_SCORE,
    CODE_LUNG_RADS,
    CODE_NODULE_TYPE,
    CODE_SOLID_COMPONENT,
    DEVICE_UID,
    MANUFACTURER,
    MODEL_NAME,
    NODULE_TYPE_CODES,
    SR_SERIES_NUMBER,
    content_uid,
    lung_rads_code,
)
from medsnowball.report.dicom_seg import SegmentationBuild

_MILLILITER = Code("ml", "UCUM", "milliliter")


def _finding_site(side: Side | None, zone: Zone | None) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    zone_codes = {
        Zone.UPPER: codes.SCT.UpperZoneOfLung,
        Zone.MIDDLE: codes.SCT.MiddleZoneOfLung,
        Zone.LOWER: codes.SCT.LowerZoneOfLung,
    }
    location = zone_codes.get(Zone(zone), codes.SCT.Lung) if zone is not None else codes.SCT.Lung
    laterality = None
    if side is not None:
        laterality = codes.SCT.Right if Side(side) is Side.RIGHT else codes.SCT.Left
    return hd.sr.FindingSite(anatomic_location=location, laterality=laterality)


def _measurements(nodule: Nodule) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mm, mm3 = codes.UCUM.Millimeter, codes.UCUM.CubicMillimeter
    items = [
        hd.sr.Measurement(
            name=codes.SCT.Diameter,
            value=round(float(nodule.diameter_mm), 2),
            unit=mm,
            derivation=codes.SCT.Mean,
        ),
        hd.sr.Measurement(
            name=codes.SCT.LongAxis, value=round(float(nodule.long_axis_mm), 2), unit=mm
        ),
        hd.sr.Measurement(
            name=codes.SCT.ShortAxis, value=round(float(nodule.short_axis_mm), 2), unit=mm
        ),
        hd.sr.Measurement(
            name=codes.SCT.Volume, value=round(float(nodule.volume_mm3), 2), unit=mm3
        ),
        hd.sr.Measurement(
            name=CODE_SOLID_COMPONENT, value=round(float(nodule.solid_component_mm), 2), unit=mm
        ),
        hd.sr.Measurement(
            name=CODE_DETECTION_SCORE,
            value=round(float(nodule.score), 4),
            unit=codes.UCUM.NoUnits,
        ),
    ]
    if math.isfinite(nodule.mean_hu):
        items.append(
            hd.sr.Measurement(
                name=codes.DCM.MeanAttenuationCoefficient,
                value=round(float(nodule.mean_hu), 1),
                unit=codes.UCUM.HounsfieldUnit,
            )
        )
    return items


def _evaluations(nodule: Nodule, category: str | None) -> list[Any]:
    import highdicom as hd

    items = [
        hd.sr.QualitativeEvaluation(
            name=CODE_NODULE_TYPE, value=NODULE_TYPE_CODES[NoduleType(nodule.type).value]
        )
    ]
    if category is not None:
        items.append(
            hd.sr.QualitativeEvaluation(name=CODE_LUNG_RADS, value=lung_rads_code(category))
        )
    return items


def _circle_region(nodule: Nodule, geometry: ImageGeometry, headers: Sequence[Dataset]) -> Any:
    """A CIRCLE on the source image nearest the nodule centre (column, row pixel coords)."""
    import highdicom as hd

    k, j, i = (float(v) for v in geometry.world_to_index(nodule.center_lps))
    slice_index = int(np.clip(np.rint(k), 0, len(headers) - 1))
    radius_px = max(float(nodule.diameter_mm) / 2.0 / geometry.spacing_zyx[2], 1.0)
    ds = headers[slice_index]
    # DICOM SCOORD pixel coordinates: (column, row), origin at the top left pixel's corner
    center = (i + 0.5, j + 0.5)
    data = np.array([center, (center[0] + radius_px, center[1])], dtype=np.float32)
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.CIRCLE,
        graphic_data=data,
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=ds.SOPClassUID,
            referenced_sop_instance_uid=ds.SOPInstanceUID,
        ),
    )


def build_sr(
    result: CaseResult,
    geometry: ImageGeometry,
    headers: Sequence[Dataset],
    segmentation: SegmentationBuild | None,
    *,
    document: dict[str, Any],
    medsnowball_version: str,
) -> Any:
    """Build the TID 1500 measurement report of a case.

    Args:
        result: The case.
        geometry: Grid of the analysed volume (the source grid).
        headers: Source image headers in slice order.
        segmentation: The SEG written alongside (its segments are referenced), or None.
        document: The case's findings document (seeds the deterministic UIDs).
        medsnowball_version: Recorded in the algorithm identification.

    Returns:
        A ``highdicom.sr.Comprehensive3DSR``.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.sr.AlgorithmIdentification(
        name="medsnowball", version=medsnowball_version[:64], manufacturer=MANUFACTURER
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=DEVICE_UID,
        name="medsnowball",
        manufacturer_name=MANUFACTURER,
        model_name=MODEL_NAME,
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    seg_ds = segmentation.dataset if segmentation is not None else None
    nodule_segments = segmentation.nodule_segments if segmentation is not None else {}
    categories = result.assessment.nodule_categories if result.assessment is not None else {}
    groups: list[Any] = []
    for nodule in result.nodules:
        tracking = hd.sr.TrackingIdentifier(
            uid=content_uid(result, f"nodule-{nodule.id}", document),
            identifier=f"Nodule {nodule.id}",
        )
        common: dict[str, Any] = {
            "tracking_identifier": tracking,
            "finding_type": codes.SCT.Nodule,
            "finding_category": codes.SCT.MorphologicallyAbnormalStructure,
            "algorithm_id": algorithm,
            "finding_sites": [_finding_site(nodule.side, nodule.zone)],
            "measurements": _measurements(nodule),
            "qualitative_evaluations": _evaluations(
                nodule, nodule.lung_rads or categories.get(nodule.id)
            ),
        }
        if seg_ds is not None and nodule.id in nodule_segments:
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=hd.sr.ReferencedSegment.from_segmentation(
                        seg_ds, segment_number=nodule_segments[nodule.id]
                    ),
                    **common,
                )
            )
        else:
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    referenced_region=_circle_region(nodule, geometry, headers), **common
                )
            )
    if segmentation is not None and seg_ds is not None:
        lungs_ml = result.lungs_ml or {}
        for side, number in segmentation.lung_segments.items():
            if side not in lungs_ml or not math.isfinite(lungs_ml[side]):
                continue
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=content_uid(result, f"seg-lung-{side}", document),
                        identifier=f"{side} lung",
                    ),
                    referenced_segment=hd.sr.ReferencedSegment.from_segmentation(
                        seg_ds, segment_number=number
                    ),
                    finding_type=codes.SCT.Lung,
                    finding_category=codes.SCT.AnatomicalStructure,
                    algorithm_id=algorithm,
                    finding_sites=[_finding_site(Side(side), None)],
                    measurements=[
                        hd.sr.Measurement(
                            name=codes.SCT.Volume,
                            value=round(float(lungs_ml[side]), 2),
                            unit=_MILLILITER,
                        )
                    ],
                )
            )
    if result.assessment is not None:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=content_uid(result, "exam-assessment", document),
                    identifier="Exam assessment",
                ),
                algorithm_id=algorithm,
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        name=CODE_LUNG_RADS, value=lung_rads_code(result.assessment.lung_rads)
                    )
                ],
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    evidence: list[Dataset] = [*headers]
    if seg_ds is not None:
        evidence.append(seg_ds)
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=content_uid(result, "sr-series", document),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=content_uid(result, "sr-instance", document),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description="medsnowball nodule measurements (research)",
    )


__all__ = ["build_sr"]
