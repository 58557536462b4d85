"""The Admin API's exports (FORMAT.md 6) read into the event schema: the JSON page, items
one per line, ``fields=`` projections, the by-request array, the explain trace and the
CSV export, from Caracal's own samples (tests/vectors/upstream/api/)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import VECTOR_API

from caracal_forensics.errors import InputError
from caracal_forensics.model import EVENT_SCHEMA, Shape
from caracal_forensics.sources import api_csv, api_json
from caracal_forensics.sources._batch import BadLines
from caracal_forensics.sources.detect import detect_shape

ZONES = {"zone-alpha": "zone-alpha", "zone-beta": "zone-beta", "zone-gamma": "zone-gamma",
         "zone_prod_eu-1": "zone:prod/eu-1"}
CHAIN = {"content_sha256", "prev_content_sha256", "chain_hmac", "chain_seq",
         "ingest_signature"}


def _json_rows(path: Path, zone: str | None = None) -> list[dict]:
    table = pa.Table.from_batches(list(api_json.read(str(path), BadLines(), zone)),
                                  schema=EVENT_SCHEMA)
    return table.to_pylist()


def _csv_rows(path: Path, zone: str | None = None) -> list[dict]:
    table = pa.Table.from_batches(list(api_csv.read(str(path), BadLines(), zone)),
                                  schema=EVENT_SCHEMA)
    return table.to_pylist()


@pytest.mark.parametrize("name", sorted(ZONES))
def test_a_page_reads_every_item_without_hashes(name: str) -> None:
    path = VECTOR_API / f"audit-{name}-page0.json"
    page = json.loads(path.read_text())
    rows = _json_rows(path)
    assert detect_shape(str(path)) == Shape.API_JSON
    assert [row["id"] for row in rows] == [item["id"] for item in page["items"]]
    assert {row["zone_id"] for row in rows} == {ZONES[name]}
    for index, row in enumerate(rows, start=1):
        assert row["source_shape"] == Shape.API_JSON and row["source_line"] == index
        assert row["occurred_at_digits"] == 3
        assert CHAIN <= set(row["absent_fields"].split(","))
        assert all(row[field] is None for field in CHAIN)


def test_a_row_keeps_its_values_as_the_api_sent_them() -> None:
    row = next(r for r in _json_rows(VECTOR_API / "audit-zone-alpha-page0.json")
               if r["id"] == "ev-0000235")
    assert row["occurred_at"].isoformat() == "2026-05-11T08:15:56.539000+00:00"
    assert row["ingested_at"].isoformat() == "2026-05-11T08:15:56.898000+00:00"
    assert row["decision"] == "allow" and row["evaluation_status"] == "upstream_error"
    assert json.loads(row["determining_policies_json"]) == [{"policy": "step-up-policy"}]
    assert row["diagnostics_json"] is None
    metadata = json.loads(row["metadata_json"])
    assert metadata["session_id"] == "[redacted]"  # kept, never guessed
    assert '"latency_ms": 0.75' in row["metadata_json"]  # the number as given
    assert metadata["aa"] == "tab\tnewline\nreturn\r"


def test_items_one_per_line_read_as_the_page(tmp_path: Path) -> None:
    page = json.loads((VECTOR_API / "audit-zone-beta-page0.json").read_text())
    lines = tmp_path / "items.jsonl"
    lines.write_text("".join(json.dumps(item) + "\n" for item in page["items"]))
    assert detect_shape(str(lines)) == Shape.API_JSON
    from_lines = _json_rows(lines)
    from_page = _json_rows(VECTOR_API / "audit-zone-beta-page0.json")
    ignore = {"source_file"}
    assert [{k: v for k, v in r.items() if k not in ignore} for r in from_lines] == [
        {k: v for k, v in r.items() if k not in ignore} for r in from_page]


def test_a_projection_puts_flat_fields_back_and_lists_what_it_lacks(tmp_path: Path) -> None:
    item = {"id": "ev-1", "occurred_at": "2026-05-11T08:00:03.212Z", "decision": "partial",
            "determining_policies": ["p-1", "p-2"], "application_id": "app-9",
            "latency_ms": 1.50, "requested_scopes": ["a:read", "b:write"]}
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"items": [item], "next_cursor": None}, indent=2))
    assert detect_shape(str(page)) == Shape.API_JSON
    [row] = _json_rows(page, zone="zone-x")
    assert row["zone_id"] == "zone-x" and row["decision"] == "partial"
    assert json.loads(row["determining_policies_json"]) == [{"policy": "p-1"},
                                                           {"policy": "p-2"}]
    assert json.loads(row["metadata_json"]) == {"application_id": "app-9", "latency_ms": 1.5,
                                                "requested_scopes": ["a:read", "b:write"]}
    absent = set(row["absent_fields"].split(","))
    assert {"event_type", "request_id", "ingested_at", "diagnostics_json"} <= absent
    assert "metadata_json" not in absent and "decision" not in absent


def test_by_request_array_and_explain_trace(tmp_path: Path) -> None:
    trace_path = VECTOR_API / "explain-trace.json"
    trace = json.loads(trace_path.read_text())
    assert detect_shape(str(trace_path)) == Shape.API_JSON
    rows = _json_rows(trace_path)
    assert [r["id"] for r in rows] == [e["id"] for e in trace["events"]]
    assert {r["request_id"] for r in rows} == {trace["request_id"]}
    array = tmp_path / "by-request.json"
    array.write_text(json.dumps(trace["events"]))
    assert detect_shape(str(array)) == Shape.API_JSON
    assert [r["id"] for r in _json_rows(array)] == [r["id"] for r in rows]


def test_a_dump_row_is_still_a_dump(tmp_path: Path) -> None:
    """A ``row_to_json`` line has chain columns and a microsecond time: not an API item."""
    dump = tmp_path / "db.jsonl"
    dump.write_text(json.dumps({
        "id": "ev-1", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03.212345+00:00",
        "determining_policies_json": None, "chain_hmac": "00"}) + "\n")
    assert detect_shape(str(dump)) == Shape.DB_JSONL


@pytest.mark.parametrize("name", sorted(ZONES))
def test_the_csv_export_reads_as_its_json_page(name: str) -> None:
    path = VECTOR_API / f"audit-{name}.csv"
    assert b"\r\n" in path.read_bytes()[:2000]
    assert detect_shape(str(path)) == Shape.API_CSV
    rows = _csv_rows(path)
    page = {r["id"]: r for r in _json_rows(VECTOR_API / f"audit-{name}-page0.json")}
    assert len(rows) == len(page)
    for row in rows:
        other = page[row["id"]]
        # the file name cannot hold ":" or "/": the API writes "_" in their place
        assert row["zone_id"] == name
        for field in ("event_type", "decision", "occurred_at", "ingested_at", "request_id",
                      "evaluation_status", "policy_set_id", "policy_set_version_id",
                      "manifest_sha", "determining_policies_json"):
            assert row[field] == other[field], (row["id"], field)
        assert row["occurred_at_digits"] == 3 and row["source_shape"] == Shape.API_CSV
        metadata = json.loads(row["metadata_json"] or "{}")
        full = json.loads(other["metadata_json"] or "{}")
        for key, value in metadata.items():
            want = full[key]
            assert value == (" ".join(want) if isinstance(want, list) else want), key
        assert {"diagnostics_json", *CHAIN} <= set(row["absent_fields"].split(","))


def test_the_zone_parameter_gives_back_the_real_zone_id(tmp_path: Path) -> None:
    path = VECTOR_API / "audit-zone_prod_eu-1.csv"
    assert {r["zone_id"] for r in _csv_rows(path, zone="zone:prod/eu-1")} == {
        "zone:prod/eu-1"}
    other = tmp_path / "export.csv"
    other.write_bytes(path.read_bytes())
    assert detect_shape(str(other)) == Shape.API_CSV
    with pytest.raises(InputError) as error:
        _csv_rows(other)
    assert str(other) in str(error.value) and "audit-{zone}.csv" in str(error.value)
    assert len(_csv_rows(other, zone="zone-q")) == 66


HOSTILE = (
    "id,occurred_at,decision,determining_policies,application_id,reason,latency_ms,"
    "requested_scopes,agent_labels\r\n"
    "ev-1,2026-05-11T08:00:03.212Z,partial,p-1 p-2,'=cmd(),\"a, \"\"b\"\"\r\nc\",'-5,"
    "a:read b:write,[object Object]\r\n"
    "ev-2,2026-05-11T08:00:04.000Z,deny,,'@x,'+1,,,\r\n"
    "ev-3,2026-05-11T08:00:05.000Z,allow,,'plain,\"'\t\",3,,\r\n"
)


def test_hostile_cells_are_undone_and_lost_objects_named(tmp_path: Path) -> None:
    path = tmp_path / "audit-zone-h.csv"
    path.write_bytes(HOSTILE.encode())
    assert detect_shape(str(path)) == Shape.API_CSV
    one, two, three = _csv_rows(path)
    assert one["zone_id"] == "zone-h" and one["decision"] == "partial"
    assert json.loads(one["determining_policies_json"]) == [{"policy": "p-1"},
                                                           {"policy": "p-2"}]
    assert json.loads(one["metadata_json"]) == {
        "application_id": "=cmd()", "reason": 'a, "b"\r\nc', "latency_ms": -5,
        "requested_scopes": "a:read b:write"}
    assert "agent_labels" not in json.loads(one["metadata_json"])  # never invented
    assert "metadata_json.agent_labels" in one["absent_fields"].split(",")
    assert json.loads(two["metadata_json"]) == {"application_id": "@x", "reason": "+1"}
    assert two["determining_policies_json"] is None
    assert json.loads(three["metadata_json"]) == {"application_id": "'plain", "reason": "\t",
                                                  "latency_ms": 3}
    assert {"event_type", "request_id", "ingested_at"} <= set(three["absent_fields"].split(","))
    assert (one["source_line"], two["source_line"], three["source_line"]) == (2, 4, 5)


def test_a_short_record_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "audit-z.csv"
    path.write_bytes(b"id,occurred_at,decision\r\nev-1,2026-05-11T08:00:03.212Z\r\n")
    with pytest.raises(InputError, match="line 2"):
        _csv_rows(path)
    bad = BadLines(skip=True)
    assert list(api_csv.read(str(path), bad)) == [] and bad.count == 1


def test_a_record_after_one_spanning_lines_names_the_line_it_starts_on(tmp_path: Path):
    """A quoted newline makes a record two lines long: the next record's error names its
    own first line (an editor's line), not 1 + the records before it, as the admin
    chain's CSVs do."""
    path = tmp_path / "audit-z.csv"
    path.write_bytes(b"id,occurred_at,decision,reason\r\n"
                     b'ev-1,2026-05-11T08:00:03.212Z,deny,"two\r\nlines"\r\n'
                     b"ev-2,2026-05-11T08:00:04.212Z\r\n")
    with pytest.raises(InputError, match="line 4: expected 4 cells, got 2"):
        _csv_rows(path)


def _export_cell(value: str) -> str:
    """What the API writes for a text value (before CSV quoting): the formula guard."""
    return "'" + value if value[:1] in api_csv.GUARDED else value


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1).filter(
    lambda v: v != api_csv.LOST and not (v[:1] == "'" and v[1:2] in api_csv.GUARDED))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=5))
def test_any_text_cell_survives_the_export_rules(tmp_path_factory, values) -> None:
    """Guard, quoting (``"``, ``,``, CR, LF) and CRLF lines: read back as written. (A text
    that itself starts with ``'`` and a guarded character cannot be told from a guarded
    one: it comes back without its ``'``, as documented.)"""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["id", "occurred_at", "reason", "subject"])
    for index, (reason, subject) in enumerate(values):
        writer.writerow([f"ev-{index}", "2026-05-11T08:00:03.212Z", _export_cell(reason),
                         _export_cell(subject)])
    path = tmp_path_factory.mktemp("csv") / "audit-z.csv"
    path.write_bytes(buffer.getvalue().encode())
    rows = _csv_rows(path)
    assert [json.loads(r["metadata_json"]) for r in rows] == [
        {"reason": reason, "subject": subject} for reason, subject in values]


def test_a_bad_item_names_its_place_or_is_skipped(tmp_path: Path) -> None:
    good = json.loads((VECTOR_API / "audit-zone-alpha-page0.json").read_text())["items"][0]
    broken = {k: v for k, v in good.items() if k != "id"}
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"items": [good, broken, good], "next_cursor": None}))
    with pytest.raises(InputError, match="item 2: missing required field 'id'"):
        _json_rows(page)
    bad = BadLines(skip=True)
    rows = pa.Table.from_batches(list(api_json.read(str(page), bad))).to_pylist()
    assert [r["source_line"] for r in rows] == [1, 3] and bad.count == 1
    lines = tmp_path / "items.jsonl"
    lines.write_text(json.dumps(good) + "\n" + '{"id": "ev-9", "occurred_at": \n'
                     + json.dumps(good) + "\n")
    with pytest.raises(InputError, match="line 2: malformed JSON"):
        _json_rows(lines)
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps({"items": [good], "next_cursor": None})[:-20])
    with pytest.raises(InputError, match="not a complete Admin API response"):
        _json_rows(truncated)


def test_projected_items_one_per_line_are_detected(tmp_path: Path) -> None:
    lines = tmp_path / "projection.jsonl"
    lines.write_text("".join(json.dumps(
        {"id": f"ev-{n}", "occurred_at": "2026-05-11T08:00:03.212Z", "decision": "deny"}
    ) + "\n" for n in range(3)))
    assert detect_shape(str(lines)) == Shape.API_JSON
    rows = _json_rows(lines, zone="zone-p")
    assert [(r["id"], r["zone_id"], r["source_line"]) for r in rows] == [
        ("ev-0", "zone-p", 1), ("ev-1", "zone-p", 2), ("ev-2", "zone-p", 3)]
    assert all("metadata_json" in r["absent_fields"].split(",") for r in rows)
    with pytest.raises(InputError, match="line 1: a fields= projection without zone_id"):
        _json_rows(lines)


def test_chain_seq_as_a_string_and_big_numbers_as_given(tmp_path: Path) -> None:
    item = json.loads((VECTOR_API / "audit-zone-alpha-page0.json").read_text())["items"][0]
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"items": [item], "next_cursor": None})[:-1].replace(
        '"metadata_json": {', '"chain_seq": "9007199254740993", "metadata_json": {"n": 1e21, ', 1)
        + "}")
    [row] = _json_rows(page)
    assert row["chain_seq"] == 9007199254740993
    assert "chain_seq" not in row["absent_fields"].split(",")
    assert '"n": 1000000000000000000000' in row["metadata_json"]


def test_a_long_cell_is_read_and_a_record_past_the_maximum_names_its_line(tmp_path: Path):
    """Python's csv refuses cells over 128 KiB by default: the Admin API's CSV reads cells
    as long as a record may be, and refuses a longer record as a bad line, like every
    reader's bound."""
    default = csv.field_size_limit(131072)  # as a fresh process starts
    try:
        long = "a" * 200_000
        path = tmp_path / "audit-z.csv"
        path.write_bytes(("id,occurred_at,decision,reason\r\n"
                          f"ev-1,2026-05-11T08:00:03.212Z,allow,{long}\r\n"
                          "ev-2,2026-05-11T08:00:04.212Z,deny,short\r\n").encode())
        [one, two] = _csv_rows(path)
        assert json.loads(one["metadata_json"]) == {"reason": long}
        assert two["id"] == "ev-2"
        with pytest.raises(InputError, match="line 2"):
            list(api_csv.read(str(path), BadLines(max_line=100_000)))
        bad = BadLines(skip=True, max_line=100_000)
        rows = pa.Table.from_batches(list(api_csv.read(str(path), bad)), schema=EVENT_SCHEMA)
        assert rows.column("id").to_pylist() == ["ev-2"] and bad.count == 1
    finally:
        csv.field_size_limit(default)
