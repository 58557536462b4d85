"""``stats`` (library and command), the deny-rate series, and the inline SVG charts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.dom import minidom

import polars as pl
import pytest
from support.cli import cli
from support.crafted import HOSTILE, chain_events, crafted_events, ev, write_jsonl
from support.paths import VECTOR_EXPORT as VECTORS

import caracal_forensics as cf
from caracal_forensics import charts
from caracal_forensics.stats import NICE_STEPS, choose_step, deny_rate_series, series_step


def _iso(text: str) -> str:
    """A PostgreSQL JSON timestamp as the stats' ``...Z`` text."""
    moment = datetime.fromisoformat(text).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_stats_of_the_vectors_match_a_plain_reading() -> None:
    with open(VECTORS / "db.jsonl", encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle]
    numbers = cf.open(str(VECTORS)).stats()
    assert numbers["events"] == len(events) == 240
    assert numbers["rows"] == 5 * 240 and numbers["duplicate_rows"] == 4 * 240
    assert numbers["alerts"] == 1
    assert numbers["by_decision"] == dict(Counter(e["decision"].lower() for e in events))
    assert numbers["by_zone"] == dict(sorted(Counter(e["zone_id"] for e in events).items()))
    assert numbers["by_event_type"] == dict(Counter(e["event_type"] for e in events))
    counts = list(numbers["by_event_type"].values())
    assert counts == sorted(counts, reverse=True)
    times = sorted(e["occurred_at"] for e in events)
    assert numbers["first_occurred_at"] == _iso(times[0])
    assert numbers["last_occurred_at"] == _iso(times[-1])
    for zone in numbers["zones"]:
        seqs = [e["chain_seq"] for e in events if e["zone_id"] == zone["zone_id"]]
        assert (zone["first_seq"], zone["last_seq"]) == (min(seqs), max(seqs))
        assert zone["events"] == len(seqs) and zone["missing_seq"] == 0
        assert zone["allows"] + zone["denies"] == len(seqs)


def test_stats_count_gaps_and_missing_decisions(tmp_path: Path) -> None:
    events = crafted_events()
    events.append(ev("e22", "z1", "control.invoke", 950, None, request="req-x"))
    rows = chain_events(events)
    kept = [r for r in rows if not (r["zone_id"] == "z1" and r["chain_seq"] in (3, 4))]
    numbers = cf.open(str(write_jsonl(tmp_path / "db.jsonl", kept))).stats()
    assert numbers["events"] == 20 and numbers["duplicate_rows"] == 0
    assert numbers["by_decision"] == {"allow": 8, "deny": 11, "(none)": 1}
    z1 = next(z for z in numbers["zones"] if z["zone_id"] == "z1")
    assert (z1["first_seq"], z1["last_seq"], z1["events"], z1["missing_seq"]) == (1, 12, 10, 2)


def test_a_seq_carried_twice_counts_once(tmp_path: Path) -> None:
    """missing_seq: the seqs of the zone's range no row carries (counted per zone apart
    from the other numbers), a seq held by two events once."""
    rows = chain_events(crafted_events())
    z1 = [r for r in rows if r["zone_id"] == "z1"]
    z1[5]["chain_seq"] = z1[4]["chain_seq"]  # another event at the same seq
    numbers = cf.open(str(write_jsonl(tmp_path / "db.jsonl", rows))).stats()
    zone = next(z for z in numbers["zones"] if z["zone_id"] == "z1")
    seqs = [r["chain_seq"] for r in z1]
    assert zone["events"] == len(seqs)
    assert zone["missing_seq"] == (max(seqs) - min(seqs) + 1) - len(set(seqs)) == 1
    other = next(z for z in numbers["zones"] if z["zone_id"] == "z2")
    assert other["missing_seq"] == 0


def test_stats_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "stats", "--source", str(VECTORS), "--json")
    assert code == 0
    numbers = json.loads(out)
    assert set(numbers) >= {
        "events", "by_decision", "by_zone", "by_event_type", "first_occurred_at",
        "last_occurred_at", "zones",
    }  # fmt: skip
    assert numbers == cf.open(str(VECTORS)).stats()
    code, out, _ = cli(capsys, "stats", "--source", str(VECTORS))
    assert code == 0
    for text in ("zone:prod/eu-1", "1..66", "token_exchange", "240", "2026-05-11T07:59:58.157404Z"):
        assert text in out


def test_stats_of_nothing_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "stats", "--source", str(tmp_path))
    assert code == 2 and "no export files" in err


# --- the deny rate over time -------------------------------------------------------------


def test_choose_step() -> None:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert choose_step(t, t) == 1
    assert choose_step(t, t + timedelta(minutes=16)) == 30
    assert choose_step(t, t + timedelta(hours=2)) == 300
    assert choose_step(t, t + timedelta(days=7)) == 21600
    assert choose_step(None, None) == 3600
    assert choose_step(t, t + timedelta(days=100_000)) == NICE_STEPS[-1]


def test_deny_rate_series_fills_empty_buckets(tmp_path: Path) -> None:
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", chain_events(crafted_events()))))
    series = deny_rate_series(snap.duckdb)
    assert series_step(series) == 300
    assert series.height == 25  # 10:00 to 12:00 in 5-minute buckets
    assert series["events"].sum() == 21 and series["denies"].sum() == 13
    empty = series.filter(pl.col("events") == 0)
    assert empty.height > 0 and empty["deny_rate"].null_count() == empty.height
    first = series.row(0, named=True)
    assert first["bucket"] == datetime(2026, 5, 11, 10, 0, tzinfo=timezone.utc)
    assert first["events"] == 8 and first["denies"] == 6 and first["deny_rate"] == 0.75
    hourly = deny_rate_series(snap.duckdb, step_seconds=3600)
    assert hourly["events"].to_list() == [20, 0, 1]


def test_deny_rate_series_of_an_event_on_the_first_day_of_year_1(tmp_path: Path) -> None:
    """Buckets are aligned to the epoch: the one holding 0001-01-01 began in a year 0,
    which no datetime holds (report stopped with "unexpected ValueError: year 0 is out
    of range"). It begins on 0001-01-01; the step is read from the buckets after it."""
    events = crafted_events()[:2]
    events[0]["occurred_at"] = datetime(1, 1, 1, tzinfo=timezone.utc)
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", chain_events(events))))
    series = deny_rate_series(snap.duckdb)
    assert series["bucket"][0] == datetime(1, 1, 1, tzinfo=timezone.utc)
    assert series["events"].sum() == 2 and series_step(series) == choose_step(
        datetime(1, 1, 1, tzinfo=timezone.utc), events[1]["occurred_at"], 48)
    chart = str(charts.deny_rate_chart(series))
    _parse(chart)  # its time labels, from year 1
    # the year in four digits, as everywhere else (strftime's %Y wrote "1-01-01")
    assert "0001-01-01 00:00:00Z to " in chart
    assert snap.stats()["first_occurred_at"] == "0001-01-01T00:00:00.000000Z"


# --- charts -------------------------------------------------------------------------------


def _parse(svg: str) -> minidom.Document:
    return minidom.parseString(svg)  # well-formed XML or it raises


def test_deny_rate_chart(tmp_path: Path) -> None:
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", chain_events(crafted_events()))))
    svg = charts.deny_rate_over_time(snap)
    doc = _parse(svg)
    assert doc.documentElement.tagName == "svg"
    assert isinstance(svg, charts.Svg) and svg._repr_svg_() == str(svg)
    assert len(doc.getElementsByTagName("rect")) >= 25
    path = doc.getElementsByTagName("path")[0].getAttribute("d")
    assert path.count("M") > 1  # empty buckets break the line
    assert "13 of 21 events denied, per 5 min bucket" in svg
    empty = charts.deny_rate_chart(pl.DataFrame(schema=series_schema()))
    assert "no events" in empty and _parse(empty)


def series_schema() -> dict:
    return {
        "bucket": pl.Datetime("us", "UTC"),
        "events": pl.Int64,
        "denies": pl.Int64,
        "deny_rate": pl.Float64,
    }


def test_top_denied_chart_escapes_hostile_labels(tmp_path: Path) -> None:
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", chain_events(crafted_events()))))
    svg = charts.top_denied_principals(snap, limit=5)
    _parse(svg)
    assert "app-burst" in svg and "5 denies (100% of 5)" in svg
    assert "<img" not in svg and "&lt;img src=x onerror=alert(1)&gt;" in svg
    sneaky = charts.bar_chart(
        ["right\u202eto-left", "bell\x07", None, "x" * 80, '"quoted" & <b>'],
        [3, 2, 1, 1, 1],
        title="<title>",
    )
    doc = _parse(sneaky)
    text = doc.documentElement.toxml()
    assert "\u202e" not in sneaky and "\\u202e" in sneaky and "\\u0007" in sneaky
    assert "(none)" in sneaky and "x" * 29 + "\u2026" in sneaky and "x" * 80 in sneaky
    assert "&quot;quoted&quot; &amp; &lt;b&gt;" in sneaky and "<b>" not in text
    assert ">nothing to show</text>" in charts.bar_chart([], [], title="t")


def test_escape_text() -> None:
    assert charts.escape_text(HOSTILE) == "&lt;img src=x onerror=alert(1)&gt;"
    assert charts.escape_text("a\x1b[2Jb\ud800") == "a\\u001b[2Jb\\ud800"
    assert charts.escape_text("tab\tand\nline") == "tab\tand\nline"
    assert charts.escape_text(None) == ""
