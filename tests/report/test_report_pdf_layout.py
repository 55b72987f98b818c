"""report.pdf layout: the nodule table fits inside the page width."""

from __future__ import annotations

import dataclasses

import matplotlib
import pytest
from report_factories import make_case

from medsnowball.report import pdf as pdf_module
from medsnowball.report.context import TABLE_HEADER, build_context

matplotlib.use("Agg")

# Realistic worst-case cells (long location/type strings, negative LPS centres).
_LONG_ROWS = (
    ("1", "right upper", "ground-glass (juxtapleural)", "14.9", "15.6 / 14.1", "4.0", "1462",
     "-560", "1.00", "4A", "-104.9, -76.0, -132.4"),
    ("2", "left middle", "part-solid (juxtapleural)", "10.7", "11.1 / 10.2", "7.4", "551",
     "-237", "1.00", "4B", "-31.4, 45.7, -80.0"),
    ("12", "right lower", "solid", "6.7", "7.9 / 5.4", "6.7", "199", "-273", "0.98", "3",
     "-105.7, -14.9, -190.3"),
)  # fmt: skip


def _table_extent_px(fig: matplotlib.figure.Figure) -> tuple[float, float, float, float]:
    fig.canvas.draw()  # type: ignore[no-untyped-call]
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    tables = [t for ax in fig.axes for t in ax.tables]
    assert len(tables) == 1
    box = tables[0].get_window_extent(renderer)
    return float(box.x0), float(box.x1), float(box.y0), float(box.y1)


def test_title_page_table_fits_page_width() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    result, volume = make_case()
    context = build_context(result, volume, medsnowball_version="test")
    context = dataclasses.replace(context, table_rows=_LONG_ROWS)
    fig = pdf_module._title_page(context)
    FigureCanvasAgg(fig)
    x0, x1, _, _ = _table_extent_px(fig)
    width_px = fig.get_figwidth() * fig.dpi
    # inside the page with a margin of at least 2 % on each side
    assert x0 >= 0.02 * width_px
    assert x1 <= 0.98 * width_px
    # and it is not shrunk to nothing: it spans most of the page
    assert x1 - x0 >= 0.6 * width_px
    # every cell's text stays inside the table columns (wrapped, not overflowing)
    table = next(t for ax in fig.axes for t in ax.tables)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for cell in table.get_celld().values():
        cell_box = cell.get_window_extent(renderer)
        text_box = cell.get_text().get_window_extent(renderer)
        assert text_box.x1 <= cell_box.x1 + 1.0
        assert text_box.x0 >= cell_box.x0 - 1.0


@pytest.mark.parametrize("n_rows", [1, 3, 20])
def test_table_layout_widths_sum_to_one_and_font_in_range(n_rows: int) -> None:
    rows = [_LONG_ROWS[i % len(_LONG_ROWS)] for i in range(n_rows)]
    header = TABLE_HEADER
    body, head, widths, font = pdf_module.table_layout(rows, header, 540.0)
    assert len(body) == n_rows
    assert len(head) == len(header) == len(widths)
    assert sum(widths) == pytest.approx(1.0)
    assert pdf_module.TABLE_MIN_FONT_PT <= font <= pdf_module.TABLE_MAX_FONT_PT
    # the wide "Type" and "Centre" cells were wrapped onto two lines
    assert "\n" in body[0][2]
    # wrapping keeps every character of the cell (only whitespace becomes line breaks)
    assert body[0][2].replace("\n", " ") == rows[0][2]
