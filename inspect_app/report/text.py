"""How the reports write numbers and times, the same in every format."""

from __future__ import annotations

from datetime import datetime

HOURLY_TABLE_MAX = 72
"""Up to this many hours the HTML and PDF reports list the trend as a table too."""
CORRECTIONS_SHOWN = 10
"""Class corrections (machine class -> operator class) listed; the rest are summed up."""


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


def more_corrections(corrections: list[tuple[str, str, int]]) -> str:
    """The line that sums up the class corrections not listed."""
    rest = corrections[CORRECTIONS_SHOWN:]
    return (
        f"… and {sum(n for *_, n in rest)} more corrections in {len(rest)} other class pairs "
        "(every one is in the CSV report)."
    )


def passes_checked(checked: int, escapes: int) -> str:
    """What the operators found on passed parts they checked (audits, finds downstream)."""
    if not checked:
        return (
            "Passed parts checked by operators: none (nothing here says how many defects "
            "passed; `serve --audit-every N` picks a sample to check)."
        )
    return (
        f"Passed parts checked by operators: {checked}, of which {escapes} defective "
        f"({pct(100.0 * escapes / checked)}: escapes)."
    )
