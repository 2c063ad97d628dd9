"""The HTML report: one self-contained file (inline CSS, charts and snapshots as base64 PNG).

Every value that came from the log (line names, classes, part ids, operators, notes) goes
through `html.escape`; nothing from data is ever written as markup.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from inspect_app.report.atomic import atomic_file
from inspect_app.report.charts import pareto_png, thumbnail_png, trend_png
from inspect_app.report.data import ReportData
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
    pct,
    score,
    span,
    when,
)

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 2px solid #c0392b; padding-bottom: 0.2em;
     margin-top: 1.8em; }
.meta { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.kpi { display: inline-block; margin: 0 1.5em 0.5em 0; }
.kpi b { display: block; font-size: 1.6em; }
img.chart { max-width: 100%; }
.parts { display: flex; flex-wrap: wrap; gap: 1em; }
.parts figure { margin: 0; width: 15em; }
.parts img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 0.8em; color: #444; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(table: ReportTable) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = "".join(
            f'<td class="n">{_e(v)}</td>' if i in table.numeric else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str, css: str = "chart") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{css}" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def render_html(data: ReportData) -> str:
    """The report as one HTML document."""
    q = data.query
    t = data.totals
    scope = f"line {q.line}" if q.line else "all lines"
    requested = (
        f"{when(q.since.astimezone(q.tz)) if q.since else 'start of log'} to "
        f"{when(q.until.astimezone(q.tz)) if q.until else 'now'}"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Defect report – {_e(scope)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Defect report – {_e(scope)}</h1>",
        '<p class="meta">',
        f"Inspections from {_e(span(data.first, data.last))} (requested: {_e(requested)}).<br>",
        f"All times are in the plant's time zone: <b>{_e(q.tz_name)}</b>.<br>",
        f"Defect log: {_e(data.db)}. Generated {_e(when(data.generated))}.",
        "</p>",
        "<h2>Totals and yield</h2>",
        f'<div class="kpi">parts<b>{t.parts}</b></div>',
        f'<div class="kpi">yield<b>{_e(pct(t.yield_pct))}</b></div>',
        f'<div class="kpi">failed<b>{t.failed}</b></div>',
        f'<div class="kpi">faults (not inspected)<b>{t.faults}</b></div>',
        _table(totals_table(data)),
        f"<p>Defects found: {data.defects}. A fault is a part that could not be inspected; "
        "it is never counted as good.</p>",
    ]
    if data.faults_by_cause:
        out += ["<h2>Faults by cause</h2>", _table(faults_table(data))]
    out.append("<h2>Fails by defect class</h2>")
    if data.fails_by_class:
        out.append(_img(pareto_png(data.fails_by_class), "Pareto chart of fails by class"))
        out.append(_table(pareto_table(data)))
    else:
        out.append("<p>No failed parts in this range.</p>")
    out += [
        "<h2>Hourly trend of the fail rate</h2>",
        _img(trend_png(data.hourly, q.tz, q.tz_name), "Hourly fail rate"),
    ]
    if len(data.hourly) <= HOURLY_TABLE_MAX:
        out.append(_table(hourly_table(data)))
    else:
        out.append(
            f"<p>{len(data.hourly)} hours; see the chart (the CSV report has every part).</p>"
        )
    out += [
        "<h2>Per line</h2>",
        _table(groups_table(data.by_line, "line")),
        "<h2>Per model version</h2>",
        _table(groups_table(data.by_version, "line / model version")),
        "<h2>Operator overrides</h2>",
        f"<p>False alarms: <b>{data.false_alarms}</b> &middot; classes corrected (relabels): "
        f"<b>{data.relabels}</b> &middot; machine calls confirmed: <b>{data.confirms}</b></p>",
        f"<p>{_e(passes_checked(data.passes_checked, data.escapes))}</p>",
    ]
    if data.corrections:
        out.append(_table(corrections_table(data)))
        if len(data.corrections) > CORRECTIONS_SHOWN:
            out.append(f"<p>{_e(more_corrections(data.corrections))}</p>")
    if data.overrides:
        out.append(f"<p>Latest {len(data.overrides)} overrides:</p>")
        out.append(_table(overrides_table(data)))
    out.append("<h2>Worst parts</h2>")
    if data.worst:
        out.append(_table(worst_table(data)))
        figures = []
        for w in data.worst:
            png = thumbnail_png(w.snapshot) if w.snapshot else None
            if png is None:
                continue
            caption = f"{w.line} / {w.part_id}: {w.defect_class or ''} ({score(w.defect_score)})"
            image = _img(png, caption, "snap")
            figures.append(f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>")
        if figures:
            out.append(f'<div class="parts">{"".join(figures)}</div>')
        else:
            out.append("<p>No heat-map snapshots were found for these parts.</p>")
    else:
        out.append("<p>No failed parts in this range.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(data: ReportData, out: Path) -> Path:
    """Write the HTML report to `out` (whole or not at all)."""
    with atomic_file(out, "w", encoding="utf-8") as f:
        f.write(render_html(data))
    return out
