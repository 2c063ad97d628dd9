"""The PDF report (reportlab): the same sections and numbers as the HTML report, A4 portrait.

Text from the log is escaped before it reaches reportlab's paragraph markup. DejaVu Sans (shipped
with matplotlib) is embedded so names in any script print.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from inspect_app.report.atomic import atomic_file
from inspect_app.report.charts import pareto_png, thumbnail_png, trend_png
from inspect_app.report.data import GroupCount, ReportData
from inspect_app.report.tables import (
    ReportTable,
    corrections_table,
    faults_table,
    groups_table,
    hourly_table,
    overrides_table,
    pareto_table,
    totals_table,
    worst_table,
)
from inspect_app.report.text import (
    CORRECTIONS_SHOWN,
    HOURLY_TABLE_MAX,
    more_corrections,
    passes_checked,
    score,
    span,
    when,
)

_RED = colors.HexColor("#c0392b")
_FONT, _BOLD = "DejaVuSans", "DejaVuSans-Bold"


def _fonts() -> tuple[str, str]:
    """Register DejaVu Sans once; fall back to Helvetica if matplotlib's copy is missing."""
    if _FONT in pdfmetrics.getRegisteredFontNames():
        return _FONT, _BOLD
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    try:
        pdfmetrics.registerFont(TTFont(_FONT, str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont(_BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    except Exception:
        return "Helvetica", "Helvetica-Bold"
    return _FONT, _BOLD


class _Styles:
    def __init__(self) -> None:
        font, bold = _fonts()
        base = getSampleStyleSheet()
        self.font, self.bold = font, bold
        self.title = ParagraphStyle("t", parent=base["Title"], fontName=bold, fontSize=18)
        self.h2 = ParagraphStyle(
            "h2", parent=base["Heading2"], fontName=bold, fontSize=13, textColor=_RED
        )
        self.body = ParagraphStyle("b", parent=base["BodyText"], fontName=font, fontSize=9)
        self.meta = ParagraphStyle("m", parent=self.body, textColor=colors.HexColor("#555555"))
        self.cell = ParagraphStyle("c", parent=self.body, fontSize=7.5, leading=9)


def _p(text: object, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)), style)


def _table(
    st: _Styles,
    table: ReportTable,
    widths: Sequence[float] | None = None,
    wrap: set[int] | None = None,
) -> Table:
    """`table` laid out for the page: `wrap` columns flow as paragraphs within `widths`."""
    wrap = wrap or set()
    body: list[list[Any]] = [list(table.headers)]
    for row in table.rows:
        body.append(
            [
                _p(v, st.cell) if i in wrap else ("" if v is None else str(v))
                for i, v in enumerate(row)
            ]
        )
    laid_out = Table(body, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, 0), st.bold, 8),
        ("FONT", (0, 1), (-1, -1), st.font, 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2f2f2")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    style += [("ALIGN", (i, 1), (i, -1), "RIGHT") for i in table.numeric]
    laid_out.setStyle(TableStyle(style))
    return laid_out


def _chart(png: bytes, width: float) -> Image:
    image = Image(io.BytesIO(png))
    scale = width / image.imageWidth
    image.drawWidth, image.drawHeight = width, image.imageHeight * scale
    return image


def _groups(st: _Styles, groups: list[GroupCount], first: str) -> Table:
    return _table(
        st,
        groups_table(groups, first),
        wrap={0},
        widths=[60 * mm, 18 * mm, 18 * mm, 18 * mm, 18 * mm, 20 * mm, 20 * mm],
    )


def build_story(data: ReportData, st: _Styles, width: float) -> list[Any]:
    """The PDF's flowables, section by section."""
    q = data.query
    scope = f"line {q.line}" if q.line else "all lines"
    requested = (
        f"{when(q.since.astimezone(q.tz)) if q.since else 'start of log'} to "
        f"{when(q.until.astimezone(q.tz)) if q.until else 'now'}"
    )
    story: list[Any] = [
        _p(f"Defect report – {scope}", st.title),
        _p(f"Inspections from {span(data.first, data.last)} (requested: {requested}).", st.meta),
        _p(f"All times are in the plant's time zone: {q.tz_name}.", st.meta),
        _p(f"Defect log: {data.db}. Generated {when(data.generated)}.", st.meta),
        _p("Totals and yield", st.h2),
        _table(st, totals_table(data)),
        Spacer(1, 2 * mm),
        _p(
            f"Defects found: {data.defects}. A fault is a part that could not be inspected; "
            "it is never counted as good.",
            st.body,
        ),
    ]
    if data.faults_by_cause:
        cause_widths = [45 * mm, 14 * mm, 14 * mm, 27 * mm, 80 * mm]
        story += [
            _p("Faults by cause", st.h2),
            _table(st, faults_table(data), cause_widths, wrap={0, 4}),
        ]
    story.append(_p("Fails by defect class", st.h2))
    if data.fails_by_class:
        story += [
            _chart(pareto_png(data.fails_by_class), width * 0.92),
            _table(st, pareto_table(data), wrap={0}),
        ]
    else:
        story.append(_p("No failed parts in this range.", st.body))
    trend: list[Any] = [
        _p("Hourly trend of the fail rate", st.h2),
        _chart(trend_png(data.hourly, q.tz, q.tz_name), width * 0.92),
    ]
    story.append(KeepTogether(trend))
    if len(data.hourly) <= HOURLY_TABLE_MAX:
        story.append(_table(st, hourly_table(data)))
    else:
        story.append(_p(f"{len(data.hourly)} hours; see the chart.", st.body))
    story += [
        KeepTogether([_p("Per line", st.h2), _groups(st, data.by_line, "line")]),
        KeepTogether(
            [_p("Per model version", st.h2), _groups(st, data.by_version, "line / model version")]
        ),
        _p("Operator overrides", st.h2),
        _p(
            f"False alarms: {data.false_alarms} · classes corrected (relabels): {data.relabels}"
            f" · machine calls confirmed: {data.confirms}",
            st.body,
        ),
        _p(passes_checked(data.passes_checked, data.escapes), st.body),
    ]
    if data.corrections:
        story.append(
            _table(
                st,
                corrections_table(data),
                wrap={0, 1},
                widths=[60 * mm, 60 * mm, 20 * mm],
            )
        )
        if len(data.corrections) > CORRECTIONS_SHOWN:
            story.append(_p(more_corrections(data.corrections), st.body))
    if data.overrides:
        story += [
            Spacer(1, 2 * mm),
            _p(f"Latest {len(data.overrides)} overrides:", st.body),
            _table(
                st,
                overrides_table(data),
                wrap={0, 1, 2, 3, 4, 5, 6, 7},
                widths=[23 * mm, 16 * mm, 27 * mm, 20 * mm, 18 * mm, 26 * mm, 26 * mm, 24 * mm],
            ),
        ]
    story.append(_p("Worst parts", st.h2))
    if not data.worst:
        story.append(_p("No failed parts in this range.", st.body))
        return story
    story.append(
        _table(
            st,
            worst_table(data),
            wrap={1, 2, 3},
            widths=[40 * mm, 20 * mm, 34 * mm, 30 * mm, 14 * mm, 16 * mm, 22 * mm],
        )
    )
    story += _snapshot_grid(data, st, width)
    return story


def _snapshot_grid(data: ReportData, st: _Styles, width: float) -> list[Any]:
    cells: list[Any] = []
    per_row = 4
    side = width / per_row - 4 * mm
    for w in data.worst:
        png = thumbnail_png(w.snapshot) if w.snapshot else None
        if png is None:
            continue
        caption = f"{w.line} / {w.part_id}: {w.defect_class or ''} ({score(w.defect_score)})"
        image = Image(io.BytesIO(png))
        scale = min(side / image.imageWidth, 45 * mm / image.imageHeight)
        image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
        cells.append([image, _p(caption, st.cell)])
    if not cells:
        return [Spacer(1, 2 * mm), _p("No heat-map snapshots were found for these parts.", st.body)]
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    rows[-1] += [""] * (per_row - len(rows[-1]))
    grid = Table(rows, colWidths=[width / per_row] * per_row, hAlign="LEFT")
    grid.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    heading = _p("Heat-map snapshots of the worst parts:", st.body)
    return [Spacer(1, 3 * mm), KeepTogether([heading, grid])]


def write_pdf(data: ReportData, out: Path) -> Path:
    """Write the PDF report to `out` (whole or not at all)."""
    st = _Styles()
    q = data.query
    scope = f"line {q.line}" if q.line else "all lines"

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(st.font, 7.5)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(doc.leftMargin, 9 * mm, f"Defect report – {scope} – times in {q.tz_name}")
        canvas.drawRightString(A4[0] - doc.rightMargin, 9 * mm, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
        title=f"Defect report – {scope}",
        author="inspect-app",
    )
    doc.build(build_story(data, st, doc.width), onFirstPage=footer, onLaterPages=footer)
    with atomic_file(out, "wb") as f:
        f.write(buf.getvalue())
    return out
