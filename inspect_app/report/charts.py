"""The report's charts as PNG bytes (matplotlib, Agg; no pyplot state, safe off the main thread)."""

from __future__ import annotations

import io
from datetime import timedelta, tzinfo
from pathlib import Path

import cv2
import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from inspect_app.report.data import HourBucket

_BAR = "#c0392b"
_LINE = "#2c3e50"
_DPI = 150


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def pareto_png(fails_by_class: list[tuple[str, int]], max_classes: int = 12) -> bytes:
    """Fails per defect class, largest first, with the cumulative share as a line."""
    items = fails_by_class[:max_classes]
    rest = sum(n for _, n in fails_by_class[max_classes:])
    if rest:
        items = [*items, ("other", rest)]
    names = [name for name, _ in items]
    counts = [n for _, n in items]
    total = sum(counts) or 1
    cumulative, running = [], 0
    for n in counts:
        running += n
        cumulative.append(100.0 * running / total)
    fig = Figure(figsize=(7.0, 3.4))
    # Fixed margins: constrained layout costs a second draw, a second per chart on a busy CPU.
    fig.subplots_adjust(left=0.09, right=0.9, top=0.9, bottom=0.3)
    ax = fig.add_subplot()
    x = list(range(len(names)))
    ax.bar(x, counts, color=_BAR)
    tilt = len(names) > 5 or max((len(n) for n in names), default=0) > 12
    ax.set_xticks(x, names, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel("failed parts")
    ax.set_title("Fails by defect class (Pareto)")
    for xi, n in zip(x, counts, strict=True):
        ax.annotate(str(n), (xi, n), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(counts, default=1) * 1.15)
    ax2 = ax.twinx()
    ax2.plot(x, cumulative, color=_LINE, marker="o")
    ax2.set_ylim(0, 105)
    ax2.yaxis.set_major_formatter(PercentFormatter())
    ax2.set_ylabel("cumulative share")
    return _png(fig)


def trend_png(hourly: list[HourBucket], tz: tzinfo, tz_name: str) -> bytes:
    """Fail rate per hour (line) over the parts inspected per hour (bars), in plant time."""
    fig = Figure(figsize=(7.0, 3.2))
    fig.subplots_adjust(left=0.09, right=0.9, top=0.9, bottom=0.16)
    ax = fig.add_subplot()
    # One filled step artist for the volume, not one bar per hour: fast for weeks of hours.
    edges = mdates.date2num([h.start for h in hourly] + [hourly[-1].start + timedelta(hours=1)])
    ax.stairs([h.parts for h in hourly], edges, fill=True, color="#d5dbdb")
    ax.set_ylabel("parts per hour")
    ax2 = ax.twinx()
    rates = [h.fail_pct for h in hourly]
    middles = mdates.date2num([h.start + timedelta(minutes=30) for h in hourly])
    ax2.plot(middles, rates, color=_BAR, marker="o" if len(hourly) <= 48 else None, markersize=3)
    ax2.set_ylim(0, max(rates, default=1.0) * 1.2 + 0.5)
    ax2.yaxis.set_major_formatter(PercentFormatter())
    ax2.set_ylabel("fail rate", color=_BAR)
    # Tick labels in the plant's zone (matplotlib would show UTC otherwise).
    locator = mdates.AutoDateLocator(tz=tz, minticks=3, maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    ax.set_title(f"Hourly fail rate (times in {tz_name})")
    return _png(fig)


def thumbnail_png(path: Path, max_side: int = 360) -> bytes | None:
    """A heat-map snapshot shrunk to `max_side` pixels as PNG, or None if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(
            image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    ok, encoded = cv2.imencode(".png", image)
    return encoded.tobytes() if ok else None
