"""What a snapshot holds: counts by decision, zone and event type, time span, chain ranges.

Everything is computed in DuckDB over ``unique_events`` (one row per event, however many
shapes of it were given) in a single grouped pass, so it scales like the view does.
Also the time series behind the deny-rate chart.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .alerts import count_alerts
from .queries import ensure_views, format_time

if TYPE_CHECKING:
    import duckdb
    import polars as pl

#: The key ``by_decision`` uses for events without a decision.
NO_DECISION = "(none)"

_GROUPED = """
SELECT
    GROUPING(zone_id, decision, event_type) AS level,
    zone_id,
    decision,
    event_type,
    count(*) AS events,
    min(occurred_at) AS first_occurred_at,
    max(occurred_at) AS last_occurred_at,
    min(chain_seq) AS first_seq,
    max(chain_seq) AS last_seq,
    count(*) FILTER (WHERE decision = 'allow') AS allows,
    count(*) FILTER (WHERE decision = 'deny') AS denies,
    count(*) FILTER (WHERE decision = 'partial') AS partials
FROM (
    SELECT zone_id, lower(decision) AS decision, event_type, occurred_at, chain_seq
    FROM unique_events
)
GROUP BY GROUPING SETS ((), (zone_id), (decision), (event_type))
"""

#: Per zone, how many sequence numbers some row carries (``missing_seq`` is the rest of
#: its range): a statement of its own, as a distinct count in ``_GROUPED`` was made for
#: every grouping set, four hash tables of every seq (10M events: 2.7 s and 1.05 GB for
#: both, 1.2 s and 0.74 GB apart).
_DISTINCT_SEQ = "SELECT zone_id, count(DISTINCT chain_seq) FROM unique_events GROUP BY zone_id"

# GROUPING(zone_id, decision, event_type) bits: 4 = zone_id rolled up, 2 = decision, 1 = type.
_TOTAL, _BY_ZONE, _BY_DECISION, _BY_TYPE = 7, 3, 5, 6


def stats(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The snapshot's numbers as a JSON-ready dict (times as ``...Z`` text).

    ``events`` counts distinct events (zone_id, id); ``rows`` every input row, so
    ``duplicate_rows`` says how many were further copies (several shapes of one export,
    or duplicated lines). ``zones`` gives each zone's chain_seq range and how many
    sequence numbers inside that range no row carries (``missing_seq``).
    """
    ensure_views(con)
    rows = con.sql(_GROUPED).fetchall()
    distinct_seqs = dict(con.sql(_DISTINCT_SEQ).fetchall())
    input_rows = con.sql("SELECT count(*) FROM events").fetchall()[0][0]
    alerts = count_alerts(con)  # each alert once, however many dumps hold it
    return assemble(rows, distinct_seqs, input_rows, alerts)


def assemble(rows: list[tuple], distinct_seqs: dict[str | None, int], input_rows: int,
             alerts: int) -> dict[str, Any]:
    """The numbers from ``_GROUPED``'s rows and ``_DISTINCT_SEQ``'s counts per zone
    (computed here, or by the Spark engine)."""
    columns = [
        "level", "zone_id", "decision", "event_type", "events", "first_occurred_at",
        "last_occurred_at", "first_seq", "last_seq", "allows", "denies", "partials",
    ]  # fmt: skip
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    total = next((r for r in records if r["level"] == _TOTAL), None)
    by_zone = sorted((r for r in records if r["level"] == _BY_ZONE), key=lambda r: r["zone_id"])
    by_decision = [r for r in records if r["level"] == _BY_DECISION]
    by_type = [r for r in records if r["level"] == _BY_TYPE]
    events = total["events"] if total else 0
    return {
        "events": events,
        "rows": input_rows,
        "duplicate_rows": input_rows - events,
        "alerts": alerts,
        "first_occurred_at": _time(total["first_occurred_at"]) if total else None,
        "last_occurred_at": _time(total["last_occurred_at"]) if total else None,
        "by_decision": _counts(by_decision, "decision", NO_DECISION),
        "by_zone": {r["zone_id"]: r["events"] for r in by_zone},
        "by_event_type": _counts(by_type, "event_type", "(none)"),
        "zones": [_zone(r, distinct_seqs.get(r["zone_id"], 0)) for r in by_zone],
    }


def _zone(row: dict[str, Any], distinct_seq: int) -> dict[str, Any]:
    first, last = row["first_seq"], row["last_seq"]
    missing = None if first is None else (last - first + 1) - distinct_seq
    return {
        "zone_id": row["zone_id"],
        "events": row["events"],
        "first_seq": first,
        "last_seq": last,
        "missing_seq": missing,
        "allows": row["allows"],
        "denies": row["denies"],
        "partials": row["partials"],
        "first_occurred_at": _time(row["first_occurred_at"]),
        "last_occurred_at": _time(row["last_occurred_at"]),
    }


def _counts(rows: list[dict[str, Any]], key: str, none: str) -> dict[str, int]:
    """{value: count}, largest first then by name; NULL under ``none``."""
    ordered = sorted(rows, key=lambda r: (-r["events"], r[key] is None, r[key] or ""))
    return {(r[key] if r[key] is not None else none): r["events"] for r in ordered}


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


# --- the deny rate over time ----------------------------------------------------------

#: Bucket widths (seconds) a chart may use: the smallest giving at most ``max_buckets``.
NICE_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400,
)  # fmt: skip

_SERIES = """
WITH bucketed AS (
    SELECT CAST(floor(epoch_us(occurred_at) / $step_us) AS BIGINT) AS k,
           lower(decision) = 'deny' AS denied
    FROM unique_events
    WHERE occurred_at IS NOT NULL
),
counted AS (
    SELECT k, count(*) AS events, count(*) FILTER (WHERE denied) AS denies
    FROM bucketed
    GROUP BY k
),
every_bucket AS (
    SELECT unnest(range(min(k), max(k) + 1)) AS k FROM counted
)
SELECT
    -- the first bucket of an event on 0001-01-01 begins there, not in a year 0 (before
    -- any time Python or the report can show)
    make_timestamp(greatest(b.k * $step_us, -62135596800000000))::TIMESTAMPTZ AS bucket,
    coalesce(c.events, 0) AS events,
    coalesce(c.denies, 0) AS denies,
    CASE WHEN coalesce(c.events, 0) = 0 THEN NULL ELSE c.denies / c.events END AS deny_rate
FROM every_bucket b
LEFT JOIN counted c USING (k)
ORDER BY bucket
"""


def choose_step(first: datetime | None, last: datetime | None, max_buckets: int = 48) -> int:
    """A bucket width in seconds from NICE_STEPS giving at most ``max_buckets`` buckets."""
    if first is None or last is None:
        return 3600
    span = max((last - first).total_seconds(), 1.0)
    for step in NICE_STEPS:
        if span / step < max_buckets:
            return step
    return NICE_STEPS[-1]


def deny_rate_series(
    con: duckdb.DuckDBPyConnection,
    step_seconds: int | None = None,
    max_buckets: int = 48,
) -> pl.DataFrame:
    """Events, denies and deny rate per time bucket (UTC), empty buckets included.

    ``step_seconds`` defaults to a round width (:func:`choose_step`) that gives at most
    ``max_buckets`` buckets over the data's span; :func:`series_step` reads it back.
    """
    ensure_views(con)
    if step_seconds is None:
        first, last = con.sql("SELECT min(occurred_at), max(occurred_at) FROM events").fetchall()[0]
        step_seconds = choose_step(first, last, max_buckets)
    if int(step_seconds) < 1:
        from .errors import UsageError

        raise UsageError(f"step_seconds must be at least 1, not {step_seconds}")
    return con.sql(_SERIES, params={"step_us": int(step_seconds) * 1_000_000}).pl()


def series_step(frame: pl.DataFrame) -> int | None:
    """The bucket width (seconds) of a :func:`deny_rate_series` frame, None if under 2 rows."""
    if frame.height < 2:
        return None
    delta = frame["bucket"][-1] - frame["bucket"][-2]  # the first may begin at year 1
    return int(delta.total_seconds())


def top_denied_principals(con: duckdb.DuckDBPyConnection, limit: int = 10) -> pl.DataFrame:
    """The named query ``top_denied_principals`` as a frame."""
    from .queries import run_named

    return run_named(con, "top_denied_principals", {"limit": int(limit)}).frame
