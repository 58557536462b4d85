"""Small charts as hand-written inline SVG: no plotting library, no external loads, no script.

Every chart is a self-contained ``<svg>`` string (an :class:`Svg`, which notebooks display
inline; ``IPython.display.SVG(chart)`` works too) that the HTML report embeds as is. All
text that comes from the data is escaped, with invisible and direction-changing
characters made visible, because event data is hostile.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .timetext import iso_text

if TYPE_CHECKING:
    import duckdb
    import polars as pl

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
DENY = "#c0392b"
VOLUME = "#9fb7cf"
BAR = "#c0392b"
INK = "#222222"
MUTED = "#666666"
GRID = "#e3e3e3"

# C0/C1 controls (but tab, newline, carriage return), zero-width and bidi controls,
# line/paragraph separators, BOM, interlinear annotations and lone surrogates.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


class Svg(str):
    """An SVG document as text; Jupyter renders it inline."""

    def _repr_svg_(self) -> str:
        return str(self)


def reveal(text: str) -> str:
    """Make invisible and bidi control characters visible as ``\\uXXXX``."""
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escape_text(value: Any) -> str:
    """Data as safe HTML/SVG text or attribute value: revealed, then entity-escaped."""
    return html.escape(reveal("" if value is None else str(value)), quote=True)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(width: int, height: int, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape_text(title)}" '
        f'font-family="{FONT}" font-size="12">',
        f"<title>{escape_text(title)}</title>",
        f"<desc>{escape_text(description)}</desc>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="12" y="20" font-size="15" font-weight="600" fill="{INK}">'
        f"{escape_text(title)}</text>",
    ]


def _empty(width: int, height: int, title: str, message: str) -> Svg:
    parts = _open(width, height, title, message)
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{MUTED}">'
        f"{escape_text(message)}</text>"
    )
    parts.append("</svg>")
    return Svg("\n".join(parts))


def _utc(value: datetime) -> datetime:
    return (
        value.replace(tzinfo=timezone.utc)
        if value.tzinfo is None
        else value.astimezone(timezone.utc)
    )


def _time_label(value: datetime, step: int | None) -> str:
    value = _utc(value)
    if step is not None and step >= 86400:
        return iso_text(value)[:10]
    if step is not None and step < 60:
        return value.strftime("%H:%M:%S")
    return value.strftime("%H:%M")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "one bucket"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def deny_rate_chart(
    frame: pl.DataFrame,
    *,
    title: str = "Deny rate over time",
    width: int = 720,
    height: int = 300,
) -> Svg:
    """Deny rate (line, left axis, 0-100 %) over event volume (bars, right axis).

    ``frame`` is :func:`caracal_forensics.stats.deny_rate_series`'s: columns bucket,
    events, denies, deny_rate (null for an empty bucket, which breaks the line).
    """
    rows = list(frame.select("bucket", "events", "denies", "deny_rate").iter_rows())
    if not rows:
        return _empty(width, height, title, "no events")
    step = None
    if len(rows) > 1:
        step = int((_utc(rows[1][0]) - _utc(rows[0][0])).total_seconds())
    left, right, top, bottom = 52, 56, 58, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(rows)
    slot = plot_w / n
    max_events = max(r[1] for r in rows) or 1
    total_events = sum(r[1] for r in rows)
    total_denies = sum(r[2] for r in rows)
    first, last = _utc(rows[0][0]), _utc(rows[-1][0])
    subtitle = (
        f"{total_denies} of {total_events} events denied, per {_duration(step)} bucket, "
        f"{iso_text(first, 'seconds', ' ')}Z to {iso_text(last, 'seconds', ' ')}Z "
        "(bucket starts, UTC)"
    )
    parts = _open(width, height, title, subtitle)
    parts.append(f'<text x="12" y="38" fill="{MUTED}">{escape_text(subtitle)}</text>')
    # grid and the left axis (deny rate)
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{left + plot_w}" y2="{_n(y)}" stroke="{GRID}"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{DENY}">{pct}%</text>'
        )
    # right axis (events)
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(
            f'<text x="{left + plot_w + 6}" y="{_n(y + 4)}" fill="{MUTED}">'
            f"{_n(max_events * fraction)}</text>"
        )
    # volume bars, each with a tooltip
    for i, (bucket, events, denies, rate) in enumerate(rows):
        bar_h = plot_h * events / max_events
        x = left + i * slot + slot * 0.1
        tip = f"{iso_text(_utc(bucket), 'seconds', ' ')}Z: {events} events, {denies} denied"
        if rate is not None:
            tip += f" ({rate:.1%})"
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(top + plot_h - bar_h)}" width="{_n(slot * 0.8)}" '
            f'height="{_n(bar_h)}" fill="{VOLUME}"><title>{escape_text(tip)}</title></rect>'
        )
    # the deny-rate line, broken where a bucket is empty
    path: list[str] = []
    pen_down = False
    for i, (_, _, _, rate) in enumerate(rows):
        if rate is None:
            pen_down = False
            continue
        x = left + (i + 0.5) * slot
        y = top + plot_h * (1 - float(rate))
        path.append(f"{'L' if pen_down else 'M'}{_n(x)} {_n(y)}")
        pen_down = True
        parts.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.5" fill="{DENY}"/>')
    if path:
        parts.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{DENY}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        )
    # x labels: about six, on bucket starts
    every = max(1, round(n / 6))
    for i in range(0, n, every):
        x = left + i * slot
        parts.append(
            f'<line x1="{_n(x)}" y1="{top + plot_h}" x2="{_n(x)}" y2="{top + plot_h + 4}" '
            f'stroke="{MUTED}"/>'
        )
        parts.append(
            f'<text x="{_n(x)}" y="{top + plot_h + 17}" text-anchor="middle" fill="{MUTED}">'
            f"{escape_text(_time_label(rows[i][0], step))}</text>"
        )
    # legend
    ly = height - 10
    parts.append(
        f'<line x1="{left}" y1="{ly - 4}" x2="{left + 18}" y2="{ly - 4}" '
        f'stroke="{DENY}" stroke-width="2"/>'
    )
    parts.append(f'<text x="{left + 24}" y="{ly}" fill="{INK}">deny rate (left axis)</text>')
    parts.append(f'<rect x="{left + 170}" y="{ly - 10}" width="12" height="10" fill="{VOLUME}"/>')
    parts.append(f'<text x="{left + 188}" y="{ly}" fill="{INK}">events (right axis)</text>')
    parts.append("</svg>")
    return Svg("\n".join(parts))


def bar_chart(
    labels: Sequence[Any],
    values: Sequence[float],
    *,
    title: str,
    notes: Sequence[str] | None = None,
    subtitle: str = "",
    width: int = 720,
    label_chars: int = 30,
    color: str = BAR,
) -> Svg:
    """Horizontal bars, largest first as given; ``notes`` print after each bar's value.

    A label longer than ``label_chars`` is shortened on screen; its tooltip holds it whole.
    A None label shows as ``(none)``.
    """
    if not labels:
        return _empty(width, 120, title, "nothing to show")
    row_h, top, left, right = 24, 50 if subtitle else 36, 16 + 7 * label_chars, 150
    height = top + row_h * len(labels) + 12
    plot_w = width - left - right
    peak = max(values) or 1
    parts = _open(width, height, title, subtitle or title)
    if subtitle:
        parts.append(f'<text x="12" y="38" fill="{MUTED}">{escape_text(subtitle)}</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_h
        name = "(none)" if label is None else str(label)
        note = notes[i] if notes else ""
        tip = f"{name}: {value}" + (f" {note}" if note else "")
        bar_w = plot_w * value / peak
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" fill="{INK}">'
            f"<title>{escape_text(tip)}</title>{escape_text(shorten(name, label_chars))}</text>"
        )
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{_n(max(bar_w, 1))}" height="{row_h - 8}" '
            f'fill="{color}"><title>{escape_text(tip)}</title></rect>'
        )
        text = f"{value:g}" + (f" {note}" if note else "")
        parts.append(
            f'<text x="{_n(left + bar_w + 6)}" y="{y + 16}" fill="{INK}">{escape_text(text)}</text>'
        )
    parts.append("</svg>")
    return Svg("\n".join(parts))


def top_denied_chart(frame: pl.DataFrame, *, title: str = "Top denied principals") -> Svg:
    """Bars of the ``top_denied_principals`` query: denies per principal, with deny rate."""
    labels = frame["principal_id"].to_list() if frame.height else []
    values = frame["denies"].to_list() if frame.height else []
    notes = [
        f"denies ({rate:.0%} of {events})"
        for rate, events in zip(
            frame["deny_rate"].to_list() if frame.height else [],
            frame["events"].to_list() if frame.height else [],
            strict=True,
        )
    ]
    return bar_chart(
        labels,
        values,
        title=title,
        notes=notes,
        subtitle=("application_id (else principal_id) from event metadata; share of that "
                  "principal's events denied"),
    )


# --- straight from a snapshot -------------------------------------------------------------


def _con(source: Any) -> duckdb.DuckDBPyConnection:
    """A Snapshot or a DuckDB connection."""
    return getattr(source, "duckdb", source)


def deny_rate_over_time(source: Any, step_seconds: int | None = None) -> Svg:
    """:func:`deny_rate_chart` of a Snapshot (or connection), buckets chosen from its span."""
    from .stats import deny_rate_series

    return deny_rate_chart(deny_rate_series(_con(source), step_seconds))


def top_denied_principals(source: Any, limit: int = 10) -> Svg:
    """:func:`top_denied_chart` of a Snapshot (or connection)."""
    from .stats import top_denied_principals as query

    return top_denied_chart(query(_con(source), limit))
