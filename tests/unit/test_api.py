"""The notebook API: ``caracal_forensics.open(...)`` and the Snapshot's tail and explain."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from support.cli import run_cli
from support.tail import KEY_FILE, SHAPES

import caracal_forensics as cf
from caracal_forensics.errors import NotFoundError, UsageError
from caracal_forensics.explain import Explanation
from caracal_forensics.model import EVENT_SCHEMA
from caracal_forensics.render.records import LiteralFloat, parse_json


@pytest.fixture(scope="module")
def snap():
    return cf.open(str(SHAPES["db_csv"]))


def test_tail_returns_a_polars_frame_of_events(snap):
    frame = snap.tail()
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == EVENT_SCHEMA.names
    assert frame.height == 100
    assert frame["occurred_at"].is_sorted()
    assert snap.tail(limit=0).height == 240 == snap.count()


def test_tail_takes_the_cli_filters(snap):
    frame = snap.tail(
        decision="deny",
        zone=["zone-beta", "zone-gamma"],
        event_type="token_exchange",
        since="2026-05-11T08:00:00Z",
        until=dt.datetime(2026, 5, 11, 8, 10),
        limit=0,
    )
    assert frame.height > 0
    assert set(frame["decision"]) == {"deny"}
    assert set(frame["zone_id"]) <= {"zone-beta", "zone-gamma"}
    assert frame["occurred_at"].max() < dt.datetime(2026, 5, 11, 8, 10, tzinfo=dt.timezone.utc)
    cli = run_cli(
        "audit",
        "tail",
        "-s",
        SHAPES["db_csv"],
        "--json",
        "--decision",
        "deny",
        "--zone",
        "zone-beta",
        "--zone",
        "zone-gamma",
        "--event-type",
        "token_exchange",
        "--since",
        "2026-05-11T08:00:00Z",
        "--until",
        "2026-05-11T08:10:00",
        "--limit",
        "0",
    )
    assert [json.loads(line)["id"] for line in cli.lines] == frame["id"].to_list()


def test_tail_dates_and_aware_datetimes(snap):
    day = snap.tail(since=dt.date(2026, 5, 11), until=dt.date(2026, 5, 12), limit=0)
    assert day.height == 240
    cet = dt.timezone(dt.timedelta(hours=2))
    assert snap.tail(since=dt.datetime(2026, 5, 11, 10, 5, tzinfo=cet), limit=0).equals(
        snap.tail(since="2026-05-11T08:05:00Z", limit=0)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decision": "maybe"},
        {"since": "soon"},
        {"limit": -5},
        {"zone": ""},
        {"since": "2026-05-12", "until": "2026-05-11"},
        {"limit": True},
        {"zone": 5},
        {"event_type": [1]},
        {"zone": [b"zone-beta"]},
    ],
)
def test_tail_rejects_bad_filters(snap, kwargs):
    """Each a UsageError naming its parameter (a zone given as a number was a TypeError,
    "'int' object is not iterable")."""
    with pytest.raises(UsageError) as raised:
        snap.tail(**kwargs)
    named = raised.value.parameter
    assert set((named,) if isinstance(named, str) else named) <= kwargs.keys()


def test_tail_rejects_unknown_keywords(snap):
    with pytest.raises(TypeError):
        snap.tail(zones="zone-beta")


def test_explain_returns_a_typed_result(snap):
    result = snap.explain("req-000027")
    assert isinstance(result, Explanation)
    assert (result.request_id, result.zone_id, result.decision) == (
        "req-000027",
        "zone-beta",
        "deny",
    )
    assert isinstance(result.events, pl.DataFrame) and result.events.height == 4
    assert result.events.columns == EVENT_SCHEMA.names
    assert result.denied_by == ["ev-0000039", "ev-0000041"]
    assert result.chain is None
    data = result.to_dict()
    assert list(data) == ["request_id", "zone_id", "decision", "events"]
    assert [e["id"] for e in data["events"]] == result.events["id"].to_list()
    assert json.loads(result.to_json()) == json.loads(json.dumps(data))
    assert "Final decision: deny" in str(result)


def test_explain_keeps_number_literals(snap):
    events = snap.explain("req-000027").to_dict()["events"]
    latency = events[-1]["metadata"]["latency_ms"]
    assert isinstance(latency, LiteralFloat) and latency == 12.5 and latency.literal == "12.50"
    assert '"latency_ms": 12.50' in snap.explain("req-000027").to_json()


def test_explain_with_key(snap):
    result = snap.explain("req-000027", key=KEY_FILE.read_text())
    assert [link.verified for link in result.chain] == [True] * 4
    assert result.key_fingerprint and result.key_fingerprint.startswith("sha256:")
    assert all(e["chain_verified"] is True for e in result.to_dict()["events"])
    assert snap.explain("req-000027", key=bytes.fromhex(KEY_FILE.read_text().strip())).chain


def test_explain_errors(snap):
    with pytest.raises(NotFoundError, match="req-none"):
        snap.explain("req-none")
    with pytest.raises(NotFoundError, match="zone-alpha"):
        snap.explain("req-000027", zone="zone-alpha")
    with pytest.raises(UsageError):
        snap.explain("")


def test_events_sql_and_duckdb(snap):
    lazy = snap.events
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.filter(pl.col("decision") == "deny").collect().height == 57
    assert (
        snap.sql("SELECT count(*) AS n FROM events WHERE zone_id = $z", {"z": "zone-beta"})["n"][0]
        == snap.tail(zone="zone-beta", limit=0).height
    )
    assert snap.duckdb.sql("SELECT count(*) FROM events").fetchall() == [(240,)]


def test_open_several_sources():
    both = cf.open(str(SHAPES["cli_jsonl"]), str(SHAPES["ocsf"]))
    assert both.count() == 480  # every row is kept ...
    # ... but tail shows each event once, the copy with microsecond time
    assert both.tail(limit=0).height == 240
    shapes = both.tail(request_id="req-000027", limit=0)["source_shape"].to_list()
    assert shapes == ["cli_jsonl"] * 4


def test_open_takes_paths_and_lists_of_them(tmp_path):
    """A notebook hands over pathlib paths, or a list as one argument; nothing, or what is
    no path, is a UsageError naming ``paths`` (they were "no export files found in " and
    a TypeError from lstat)."""
    from pathlib import Path

    assert cf.open(Path(SHAPES["db_csv"])).tail(limit=0).height == 240
    assert cf.open([str(SHAPES["cli_jsonl"]), Path(SHAPES["ocsf"])]).count() == 480
    for sources in ((), (5,), ([],), (None,)):
        with pytest.raises(UsageError) as raised:
            cf.open(*sources)
        assert raised.value.parameter == "paths", sources


def test_ingest_out_dir_must_be_a_path(snap, tmp_path):
    """A number as out_dir was os.fspath's TypeError; a pathlib path is taken."""
    with pytest.raises(UsageError, match="must be a path, not 5"):
        snap.ingest(5)
    assert snap.ingest(tmp_path / "snapshot")["events"] == 240


def test_a_snapshot_part_changed_in_place_is_named_by_sql_and_tail(snap, tmp_path):
    """A part damaged in place (its size kept, which opening checks) failed in DuckDB
    with a message naming no file ("don't know what type"): the API's errors name it."""
    from caracal_forensics.errors import InputError

    snap.ingest(tmp_path / "snapshot")
    part = sorted((tmp_path / "snapshot" / "events").glob("*.parquet"))[0]
    data = bytearray(part.read_bytes())
    data[4:2004] = bytes(2000)
    part.write_bytes(bytes(data))
    damaged = cf.open(tmp_path / "snapshot")
    for read in (lambda: damaged.sql("SELECT max(id) FROM events"),
                 lambda: damaged.arrow("SELECT max(id) FROM events"), damaged.tail,
                 lambda: damaged.query("jti_collisions")):  # on its confined twin
        with pytest.raises(InputError, match="SHA-256 differs from") as raised:
            read()
        assert raised.value.path == str(part)
    # a statement's own error stays its own (nothing hashed for a typo)
    with pytest.raises(Exception, match="SQL error: Parser Error") as raised:
        damaged.sql("SELEC 1")
    assert not isinstance(raised.value, InputError)


def test_parse_json_literals():
    value = parse_json('{"a": 1.50, "b": 12345678901234567890123, "c": [0.000000001]}')
    assert value["a"].literal == "1.50" and value["b"] == 12345678901234567890123
    assert repr(value["c"][0]) == "0.000000001"
    assert parse_json(None) is None


def test_jsonb_text_names_what_is_wrong():
    """cf.jsonb_text prints jsonb's text; text PostgreSQL rejects is a ValueError saying
    why, anything not a str a TypeError naming the parameter."""
    assert cf.jsonb_text('{"b": 1.50, "a": 1e2}') == '{"a": 100, "b": 1.50}'
    for text, why in (("{bad", "invalid JSON"), ('"\\u0000"', "jsonb"),
                      ("[1e999999]", "overflows")):
        with pytest.raises(ValueError, match=why):
            cf.jsonb_text(text)
    for value in (None, b"{}", 5):
        with pytest.raises(TypeError, match=r"^raw_json must be str, not "):
            cf.jsonb_text(value)
