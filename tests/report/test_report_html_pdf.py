"""report.html and report.pdf: images, table, assessment, privacy and escaping."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from report_factories import make_case

from medsnowball.core import AcquisitionInfo, CaseResult, CTVolume, ImageGeometry, PatientInfo
from medsnowball.report import pdf as pdf_module
from medsnowball.report.context import build_context
from medsnowball.report.render import CaseView
from medsnowball.report.writer import write_case_outputs

PATIENT = PatientInfo(
    name="Doe^Jane", patient_id="PID778899", birth_date="19511231", sex="F", age="071Y"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _html(tmp_path: Path, result: CaseResult, volume: CTVolume, **kwargs: object) -> str:
    outputs = write_case_outputs(result, volume, tmp_path, formats=("html",), **kwargs)  # type: ignore[arg-type]
    return outputs["html"].read_text(encoding="utf-8")


def pdf_text(data: bytes) -> str:
    """Text of an uncompressed matplotlib PDF: the strings of every TJ operator."""
    parts = []
    for array in re.findall(rb"\[(.*?)\]\s*TJ", data, flags=re.S):
        parts.append(b"".join(re.findall(rb"\(((?:[^()\\]|\\.)*)\)", array)))
    return b"\n".join(parts).decode("latin-1")


def pdf_page_count(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", data))


def test_html_holds_images_table_and_assessment(
    tmp_path: Path, phantom_case: tuple[CaseResult, CTVolume]
) -> None:
    result, volume = phantom_case
    html = _html(tmp_path, result, volume)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert html.count("<img") == len(images) == len(result.nodules) + 1  # per nodule + overview
    for data in images:
        assert base64.b64decode(data).startswith(PNG_SIGNATURE)
    assert html.count('<tr class="nodule">') == 2
    assert "Lung-RADS 4A" in html
    assert "Lung-RADS v2022" in html
    assert "Fleischner Society 2017" in html
    assert "Research software, not for clinical use" in html
    assert "3-month LDCT" in html
    # self-contained: no scripts, no external resources
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html


def test_html_hides_patient_fields_by_default(
    tmp_path: Path,
) -> None:
    result, volume = make_case(patient=PATIENT)
    html = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", _html(tmp_path / "a", result, volume))
    for secret in ("Doe^Jane", "Jane", "PID778899", "19511231", "1951", "071Y"):
        assert secret not in html
    shown = _html(tmp_path / "b", result, volume, include_patient_info=True)
    for secret in ("Doe^Jane", "PID778899", "19511231"):
        assert secret in shown


def test_dicom_strings_are_escaped(tmp_path: Path) -> None:
    patient = PatientInfo(name="<script>alert(1)</script>", patient_id='"><img src=x>')
    result, volume = make_case(patient=patient)
    volume = volume.with_array(
        volume.array, acquisition=AcquisitionInfo(manufacturer="<b>ACME</b> & Co")
    )
    html = _html(tmp_path, result, volume, include_patient_info=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    assert "&lt;b&gt;ACME&lt;/b&gt; &amp; Co" in html
    assert html.count("<img") == len(result.nodules) + 1  # the injected tag is text


def test_html_without_label_maps_draws_circles(tmp_path: Path) -> None:
    result, volume = make_case(with_labels=False)
    html = _html(tmp_path, result, volume)
    assert html.count("<img") == 3


def test_pdf_pages_and_content(tmp_path: Path) -> None:
    result, volume = make_case(patient=PATIENT)
    with matplotlib.rc_context({"pdf.compression": 0}):
        plain = write_case_outputs(result, volume, tmp_path / "a", formats=("pdf",))["pdf"]
        shown = write_case_outputs(
            result, volume, tmp_path / "b", formats=("pdf",), include_patient_info=True
        )["pdf"]
    data = plain.read_bytes()
    assert data.startswith(b"%PDF")
    assert pdf_page_count(data) == len(result.nodules) + 2 == pdf_module.expected_page_count(2, 2)
    assert b"CreationDate" not in data
    text = pdf_text(data)
    assert "Lung-RADS 4A" in text
    assert "Lung-RADS v2022" in text
    assert "Fleischner Society 2017" in text
    assert "research software, not for clinical use" in text.lower()
    assert "Nodule 1: right middle" in text
    assert "Nodule 2: left lower" in text
    assert "PID778899" not in text
    assert "Doe^Jane" not in text
    assert "19511231" not in text
    shown_text = pdf_text(shown.read_bytes())
    assert "Patient ID: PID778899" in shown_text
    assert "Patient name: Doe^Jane" in shown_text


def test_pdf_shows_dollar_signs_literally(tmp_path: Path) -> None:
    result, volume = make_case(patient=PatientInfo(name="$x^2$"))
    with matplotlib.rc_context({"pdf.compression": 0}):
        path = write_case_outputs(
            result, volume, tmp_path, formats=("pdf",), include_patient_info=True
        )["pdf"]
    assert "$x^2$" in pdf_text(path.read_bytes())


def test_pdf_long_table_adds_continuation_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf_module, "TITLE_TABLE_ROWS", 1)
    monkeypatch.setattr(pdf_module, "CONTINUATION_TABLE_ROWS", 1)
    result, volume = make_case()
    path = write_case_outputs(result, volume, tmp_path, formats=("pdf",))["pdf"]
    # title + 1 continuation page (row 2) + 2 nodule pages + overview
    assert pdf_page_count(path.read_bytes()) == 5 == pdf_module.expected_page_count(2, 2)


def test_case_without_nodules(tmp_path: Path) -> None:
    result, volume = make_case(())
    outputs = write_case_outputs(result, volume, tmp_path, formats=("html", "pdf"))
    html = outputs["html"].read_text(encoding="utf-8")
    assert html.count("<img") == 1
    assert "No nodules above the operating threshold" in html
    assert "Lung-RADS 1" in html
    assert pdf_page_count(outputs["pdf"].read_bytes()) == 2


def test_context_without_patient_info_has_none() -> None:
    result, volume = make_case(patient=PATIENT)
    context = build_context(result, volume, medsnowball_version="0")
    assert context.patient is None
    context = build_context(result, volume, medsnowball_version="0", include_patient_info=True)
    assert context.patient is not None
    assert ("Patient ID", "PID778899") in context.patient


def test_view_flips_arrays_into_display_orientation() -> None:
    result, volume = make_case()
    flipped_geometry = ImageGeometry(
        volume.shape,
        volume.spacing_zyx,
        volume.geometry.index_to_world((0, 0, volume.shape[2] - 1)),
        np.diag([-1.0, 1.0, 1.0]),
    )
    flipped = CTVolume(np.ascontiguousarray(volume.array[:, :, ::-1]), flipped_geometry)
    assert result.nodule_labels is not None
    canonical = CaseView(volume, result.lung_labels, result.nodule_labels)
    view = CaseView(flipped, None, np.ascontiguousarray(result.nodule_labels[:, :, ::-1]))
    assert view.flips == (False, False, True)
    np.testing.assert_array_equal(view.hu, canonical.hu)
    # the same nodule lands on the same display position and slice
    for nodule in result.nodules:
        a, b = canonical.placement(nodule), view.placement(nodule)
        assert a.slice_index == b.slice_index
        np.testing.assert_allclose(a.center_zyx, b.center_zyx, atol=1e-6)


def test_placement_picks_the_slice_of_largest_area() -> None:
    result, volume = make_case()
    view = CaseView(volume, result.lung_labels, result.nodule_labels)
    placement = view.placement(result.nodules[0])
    assert placement.has_mask
    assert placement.slice_index == 20  # sphere centre slice
    np.testing.assert_allclose(placement.center_zyx, (20.0, 48.0, 28.0), atol=1e-6)


def test_unknown_mean_hu_shows_a_dash(tmp_path: Path) -> None:
    result, volume = make_case()
    nodule = dataclasses.replace(result.nodules[0], mean_hu=math.nan)
    html = _html(tmp_path, dataclasses.replace(result, nodules=(nodule,)), volume)
    assert "nan" not in re.sub(r"base64,[A-Za-z0-9+/=]+", "", html).lower()


def test_overview_plane_follows_the_z_extent() -> None:
    result, volume = make_case()
    view = CaseView(volume, result.lung_labels, result.nodule_labels)
    assert view.overview_plane() == "coronal"  # 100 mm in z for 77 mm in x
    assert 0 < view.coronal_index() < volume.shape[1]
    thin = CTVolume(
        np.asarray(volume.array[18:21]), ImageGeometry((3, 96, 96), (2.5, 0.8, 0.8), (0, 0, 0))
    )
    assert CaseView(thin).overview_plane() == "axial"
    assert CaseView(thin).axial_index() == 1
