"""How the reports write numbers and times, the same in every format."""

from __future__ import annotations

from datetime import datetime


def when(t: datetime) -> str:
    """A time in the plant's zone, to the second, with its zone abbreviation."""
    return t.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def pct(value: float) -> str:
    """A percentage with two decimals, e.g. `97.25 %`."""
    return f"{value:.2f} %"


def score(value: float | None) -> str:
    """A score with three decimals, or an empty string."""
    return "" if value is None else f"{value:.3f}"


def span(data_first: datetime, data_last: datetime) -> str:
    """The first and last inspection times of a report."""
    return f"{when(data_first)} – {when(data_last)}"
