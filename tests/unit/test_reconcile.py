"""reconcile (caracal_forensics/reconcile.py): two sets of sources compared by event id,
on PostgreSQL's dump of the vectors against Caracal's own Admin API exports of the same
events (tests/vectors/upstream/api/), and against copies edited the way a rewrite would."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.paths import VECTOR_API, VECTOR_EXPORT

import caracal_forensics as cf
from caracal_forensics.errors import InputError, UsageError
from caracal_forensics.reconcile_fields import caps, js_number, json_diffs
from caracal_forensics.sources.api_csv import zones_given

ZONES = ["zone-alpha", "zone-beta", "zone-gamma", "zone:prod/eu-1"]
PAGES = sorted(str(p) for p in VECTOR_API.glob("audit-*-page0.json"))
DUMP = str(VECTOR_EXPORT / "db.csv")


def _page(tmp_path: Path, edit) -> str:
    """A copy of zone-alpha's Admin API page with ``edit(items)`` applied."""
    page = json.loads((VECTOR_API / "audit-zone-alpha-page0.json").read_text())
    edit(page["items"])
    path = tmp_path / "audit-zone-alpha-page0.json"
    path.write_text(json.dumps(page))
    return str(path)


def test_the_dump_and_the_admin_api_pages_of_the_same_events_agree() -> None:
    result = cf.reconcile(DUMP, PAGES)
    assert result.status == "agree" and result.exit_code == 0, result.findings[:3]
    assert result.source_events == result.against_events == result.matched == 240
    assert not result.findings and not result.totals
    hours = {(h.zone_id, h.hour): (h.source, h.against) for h in result.hours}
    assert hours[("zone:prod/eu-1", "2026-05-11T07:00:00Z")] == (1, 1)
    assert sum(s for s, _ in hours.values()) == 240
    assert "admin api" in result.checks  # says what the weaker shape could not carry


def test_the_csv_exports_agree_once_their_zones_are_named() -> None:
    """The CSV's file name holds ``_`` for ``:`` and ``/``: a zone given names it back."""
    with zones_given(ZONES):
        result = cf.reconcile(DUMP, str(VECTOR_API), zone=ZONES)
    assert result.status == "agree", result.findings[:3]
    assert result.matched == 240


def test_without_the_zone_the_csv_is_another_zone() -> None:
    result = cf.reconcile(DUMP, [str(VECTOR_API / "audit-zone_prod_eu-1.csv")])
    assert result.totals == {"missing_in_source": 240 + 66}
    sides = {f.zone_id: f.missing_from for f in result.findings_of("missing_in_source")}
    assert sides == {"zone-alpha": "against", "zone-beta": "against",
                     "zone-gamma": "against", "zone:prod/eu-1": "against",
                     "zone_prod_eu-1": "source"}


def test_a_rewritten_missing_or_added_event_is_named(tmp_path: Path) -> None:
    def edit(items: list[dict]) -> None:
        items[0]["decision"] = "deny" if items[0]["decision"] == "allow" else "allow"
        items[1]["metadata_json"]["principal_id"] = "app-9999"
        items[2]["occurred_at"] = "2026-05-11T09:00:00.000Z"
        del items[3]
        items.append(dict(items[4], id="ev-forged"))

    result = cf.reconcile(DUMP, _page(tmp_path, edit), zone="zone-alpha")
    assert result.status == "differ" and result.exit_code == 1
    page = json.loads((VECTOR_API / "audit-zone-alpha-page0.json").read_text())["items"]
    mismatches = {(f.event_id, f.field): (f.source_value, f.against_value)
                  for f in result.findings_of("field_mismatch")}
    assert mismatches.keys() == {(page[0]["id"], "decision"),
                                 (page[1]["id"], "metadata_json.principal_id"),
                                 (page[2]["id"], "occurred_at")}
    assert mismatches[(page[1]["id"], "metadata_json.principal_id")][1] == '"app-9999"'
    assert mismatches[(page[2]["id"], "occurred_at")][1] == "2026-05-11T09:00:00.000Z"
    missing = {f.event_id: f.missing_from for f in result.findings_of("missing_in_source")}
    assert missing == {page[3]["id"]: "against", "ev-forged": "source"}
    finding = result.findings_of("missing_in_source")[0]
    assert finding.source and finding.source.rsplit(":", 1)[1].isdigit()
    hour = {h.hour: h for h in result.hours if h.zone_id == "zone-alpha"}
    assert hour["2026-05-11T08:00:00Z"].field_mismatch == 3  # by the source side's hour
    assert hour["2026-05-11T08:00:00Z"].missing_in_source == 2
    assert hour["2026-05-11T09:00:00Z"].against == 1
    data = json.loads(result.to_json())
    assert data["totals"] == {"missing_in_source": 2, "field_mismatch": 3}
    assert {f["kind"] for f in data["findings"]} == {"missing_in_source", "field_mismatch"}


def test_what_the_admin_api_cannot_carry_is_not_a_difference(tmp_path: Path) -> None:
    """Redacted values, number spellings and doubles: the API's own limits."""
    def edit(items: list[dict]) -> None:
        for item in items:
            meta = item["metadata_json"]
            if meta is None:
                continue
            if "session_id" in meta:
                meta["session_id"] = "[redacted]"
            if "latency_ms" in meta:
                meta["latency_ms"] = float(meta["latency_ms"])
            item["metadata_json"] = dict(reversed(list(meta.items())))  # key order

    assert cf.reconcile(DUMP, _page(tmp_path, edit), zone="zone-alpha").ok


def test_a_redacted_key_that_is_not_sensitive_is_a_difference(tmp_path: Path) -> None:
    def edit(items: list[dict]) -> None:
        items[0]["metadata_json"]["resource_id"] = "[redacted]"

    result = cf.reconcile(DUMP, _page(tmp_path, edit), zone="zone-alpha")
    assert [f.field for f in result.findings] == ["metadata_json.resource_id"]


def test_a_fields_projection_is_compared_on_its_fields(tmp_path: Path) -> None:
    items = json.loads((VECTOR_API / "audit-zone-beta-page0.json").read_text())["items"]
    projected = [{"id": i["id"], "zone_id": i["zone_id"], "occurred_at": i["occurred_at"],
                  "decision": i["decision"], "requested_scopes":
                  (i["metadata_json"] or {}).get("requested_scopes")} for i in items]
    path = tmp_path / "projection.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in projected))
    assert cf.reconcile(DUMP, str(path), zone="zone-beta").ok
    projected[0]["decision"] = "partial"
    path.write_text("".join(json.dumps(p) + "\n" for p in projected))
    result = cf.reconcile(DUMP, str(path), zone="zone-beta")
    assert [(f.event_id, f.field) for f in result.findings] == [(items[0]["id"], "decision")]


def test_the_csv_is_held_to_its_cells(tmp_path: Path) -> None:
    rows = list(csv.reader((VECTOR_API / "audit-zone-gamma.csv").open(newline="")))
    header = rows[0]
    latency = rows[1][header.index("latency_ms")]
    assert latency
    rows[1][header.index("latency_ms")] = latency + ("0" if "." in latency else ".0")  # spelling
    rows[2][header.index("requested_scopes")] = "payments:write"
    path = tmp_path / "audit-zone-gamma.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)
    result = cf.reconcile(DUMP, str(path), zone="zone-gamma")
    assert [(f.event_id, f.field, f.source_value, f.against_value)
            for f in result.findings] == [
        (rows[2][0], "metadata_json.requested_scopes", "payments:read", "payments:write")]


def test_two_dumps_differ_in_a_number_spelling_the_api_would_lose(tmp_path: Path) -> None:
    """Between two shapes that keep number literals, 0.75 and 0.750 are not the same jsonb."""
    text = Path(DUMP).read_text()
    assert '""latency_ms"": 0.75' in text
    edited = tmp_path / "db.csv"
    edited.write_text(text.replace('""latency_ms"": 0.75', '""latency_ms"": 0.750', 1))
    result = cf.reconcile(DUMP, str(edited))
    assert [f.field for f in result.findings] == ["metadata_json.latency_ms"]
    assert result.findings[0].against_value == "0.750"


def test_hourly_files_agree_with_the_dump_to_the_millisecond() -> None:
    result = cf.reconcile(str(VECTOR_EXPORT / "ocsf"), DUMP)
    assert result.ok and result.matched == 240


def test_a_window_narrows_both_sides_alike() -> None:
    result = cf.reconcile(DUMP, PAGES, since="2026-05-11T08:10:00Z", until="2026-05-11T08:12")
    assert result.ok and 0 < result.matched < 240
    assert "window" in result.checks


def test_findings_beyond_the_cap_are_counted() -> None:
    from caracal_forensics.reconcile import reconcile

    result = reconcile(DUMP, PAGES[0], cap=5)
    per_zone = [f for f in result.findings if f.zone_id == "zone-beta"]
    assert len(per_zone) == 6 and per_zone[-1].event_id is None
    assert "more missing_in_source" in per_zone[-1].detail


def test_opened_snapshots_are_taken_as_they_are() -> None:
    left, right = cf.open(DUMP), cf.open(*PAGES)
    assert cf.reconcile(left, right).ok


def test_parameters_are_checked() -> None:
    with pytest.raises(UsageError) as error:
        cf.reconcile(DUMP, [])
    assert error.value.parameter == "against"
    with pytest.raises(UsageError):
        cf.reconcile(DUMP, PAGES, since="yesterday-ish")
    with pytest.raises(InputError):
        cf.reconcile(DUMP, "/nonexistent/export.csv")
    # a pathlib path is a path (it was a TypeError, "not iterable"), a number is not one
    from pathlib import Path

    assert cf.reconcile(Path(DUMP), [Path(page) for page in PAGES]).ok
    with pytest.raises(UsageError) as error:
        cf.reconcile(5, DUMP)
    assert error.value.parameter == "source"


@pytest.mark.parametrize("number, text", [
    (1.5, "1.5"), (100.0, "100"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.000001, "0.000001"),
    (-0.0, "0"), (123456789012345680000.0, "123456789012345680000"), (2.5e-5, "0.000025")])
def test_numbers_are_written_as_javascript_writes_them(number: float, text: str) -> None:
    assert js_number(number) == text


def test_a_lost_object_is_not_compared() -> None:
    dump = caps("db_csv", None, 6)
    export = caps("api_csv", "metadata_json.agent_labels", 3)
    assert json_diffs("metadata_json", '{"agent_labels": {"a": 1}, "latency_ms": 3}',
                      '{"latency_ms": 3}', dump, export) == []
    assert json_diffs("metadata_json", '{"agent_labels": {"a": 1}, "latency_ms": 3}',
                      '{"latency_ms": 4}', dump, export) == [
        ("metadata_json.latency_ms", "3", "4")]


def test_a_boolean_is_not_a_number() -> None:
    dump, page = caps("db_csv", None, 6), caps("api_json", None, 3)
    assert json_diffs("metadata_json", '{"a": true}', '{"a": 1}', dump, page) == [
        ("metadata_json.a", "true", "1")]


def test_a_snapshot_not_laid_out_in_files_is_brought_over_as_arrow(tmp_path: Path) -> None:
    """A Snapshot read otherwise (from PostgreSQL: no layout) is compared all the same."""
    def edit(items: list[dict]) -> None:
        items[0]["decision"] = "partial"

    left = cf.open(DUMP)
    left.layout = None
    result = cf.reconcile(left, _page(tmp_path, edit), zone="zone-alpha")
    assert [f.field for f in result.findings] == ["decision"] and result.matched == 67


def test_a_sensitive_key_is_redacted_at_any_depth(tmp_path: Path) -> None:
    dump = caps("db_csv", None, 6)
    page = caps("api_json", None, 3)
    strong = '{"headers": {"Authorization": "Bearer x", "n": 1.50}, "token": {"a": 1}}'
    weak = '{"headers": {"Authorization": "[redacted]", "n": 1.5}, "token": "[redacted]"}'
    assert json_diffs("metadata_json", strong, weak, dump, page) == []
    assert json_diffs("metadata_json", strong, weak.replace("1.5", "1.6"), dump, page) == [
        ("metadata_json.headers", '{"n": 1.50, "Authorization": "Bearer x"}',
         '{"n": 1.6, "Authorization": "[redacted]"}')]


@pytest.mark.parametrize("against", ["dump", "pages"])
def test_a_jsonb_cell_that_is_no_json_is_a_difference(tmp_path: Path, against: str) -> None:
    """A dump's metadata_json cut short (``x{``; the CSV reader keeps jsonb text as
    stored) against the intact dump or the Admin API's pages: a field_mismatch showing
    the texts. DuckDB's json() was handed it and failed the whole comparison, said as
    "reading the data failed: Malformed JSON ... (`verify` checks a snapshot's files)"."""
    with open(DUMP, newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    header = rows[0]
    row = next(r for r in rows[1:] if r[header.index("zone_id")] == "zone-alpha")
    row[header.index("metadata_json")] = "x{"
    cut = tmp_path / "db.csv"
    with open(cut, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    other = DUMP if against == "dump" else PAGES
    result = cf.reconcile(str(cut), other, zone="zone-alpha")
    assert result.status == "differ"
    [finding] = result.findings_of("field_mismatch")
    assert (finding.event_id, finding.field, finding.source_value) == (
        row[header.index("id")], "metadata_json", "x{")


def test_the_short_fields_and_the_chain_compared_by_value(tmp_path: Path) -> None:
    """Two dumps of the same events (compared through an MD5 of each value): a changed
    decision, manifest or HMAC is named with both values; a request id NULL on one side
    and empty on the other is no difference (the CSV export cannot tell them apart), a
    prev NULL on one side and empty on the other is."""
    from support.crafted import chain_events, crafted_events, write_jsonl

    rows = chain_events(crafted_events())
    edited = [dict(row) for row in rows]
    edited[0]["decision"] = "allow-edited"
    edited[1]["manifest_sha"] = "sha256:" + "cd" * 32
    edited[2]["chain_hmac"] = "0" * 64
    rows[3]["request_id"], edited[3]["request_id"] = None, ""
    rows[4]["prev_content_sha256"], edited[4]["prev_content_sha256"] = None, ""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source = write_jsonl(tmp_path / "a" / "db.jsonl", rows)
    against = write_jsonl(tmp_path / "b" / "db.jsonl", edited)
    result = cf.reconcile(str(source), str(against))
    found = {(f.event_id, f.field): (f.source_value, f.against_value)
             for f in result.findings_of("field_mismatch")}
    assert found == {
        (rows[0]["id"], "decision"): (rows[0]["decision"], "allow-edited"),
        (rows[1]["id"], "manifest_sha"): (rows[1]["manifest_sha"], "sha256:" + "cd" * 32),
        (rows[2]["id"], "chain_hmac"): (rows[2]["chain_hmac"], "0" * 64),
        (rows[4]["id"], "prev_content_sha256"): (None, ""),
    }


def test_the_differences_listed_under_the_cap_are_the_first_in_time(tmp_path: Path) -> None:
    """Past the cap, the field differences listed are a zone's first ones by occurred_at
    (then id), whatever order the files hold them in, short fields and jsonb alike: the
    same findings in every run, as the missing events are listed."""
    from caracal_forensics.reconcile import reconcile

    # not splitlines: U+2028 in values
    lines = (VECTOR_EXPORT / "db.jsonl").read_text(encoding="utf-8").rstrip("\n").split("\n")
    edited = []
    for number, line in enumerate(lines):
        if '"zone_id":"zone-alpha"' in line:
            line = (line.replace('"decision":"allow"', '"decision":"deny"', 1)
                    .replace('"decision":"deny"', '"decision":"allow"', 1)
                    if number % 2 else line.replace('"latency_ms": ', '"latency_ms": 1', 1))
        edited.append(line)
    path = tmp_path / "edited.jsonl"
    path.write_text("\n".join(reversed(edited)) + "\n", encoding="utf-8")
    result = reconcile(str(VECTOR_EXPORT / "db.jsonl"), str(path), zone="zone-alpha", cap=5)
    whole = reconcile(str(VECTOR_EXPORT / "db.jsonl"), str(path), zone="zone-alpha")
    listed = [f for f in result.findings if f.kind == "field_mismatch" and f.event_id]
    every = sorted(whole.findings_of("field_mismatch"), key=lambda f: f.event_id)
    times = {json.loads(line)["id"]: json.loads(line)["occurred_at"] for line in lines}
    first = sorted(every, key=lambda f: (times[f.event_id], f.event_id))[:5]
    assert len(every) > 20 and {f.field for f in every} == {"decision", "metadata_json.latency_ms"}
    assert {(f.event_id, f.field) for f in listed} == {(f.event_id, f.field) for f in first}
    assert result.totals["field_mismatch"] == len(every)


@pytest.mark.parametrize("group_events", [30, 120])
def test_zones_joined_a_group_at_a_time_give_the_same_result(tmp_path: Path, monkeypatch,
                                                             group_events: int) -> None:
    """Past GROUP_EVENTS the sides are joined a part at a time (zones packed, or a zone
    cut in parts by its ids' hash): the same counts, findings and hours, with a window
    and a zone filter, with events missing and fields differing, as joined at once."""
    import importlib

    module = importlib.import_module("caracal_forensics.reconcile")
    default = module.GROUP_EVENTS

    def edit(items: list[dict]) -> None:
        items[0]["decision"] = "deny" if items[0]["decision"] == "allow" else "allow"
        items[1]["metadata_json"]["principal_id"] = "app-9999"
        del items[3]
        items.append(dict(items[4], id="ev-forged"))

    groups = []
    zone_groups = module._Run._zone_groups
    monkeypatch.setattr(module._Run, "_zone_groups",
                        lambda self: groups.append(zone_groups(self)) or groups[-1])
    page = _page(tmp_path, edit)
    cases = [((DUMP, [page, *PAGES[1:]]), {}), ((DUMP, PAGES), {"since": "2026-05-11T08:30:00Z"}),
             ((DUMP, [page]), {"zone": ["zone-alpha", "zone-beta"]}),
             ((str(VECTOR_EXPORT / "db.jsonl"), DUMP), {})]
    for (source, against), kwargs in cases:
        at_once = module.reconcile(source, against, **kwargs).to_dict()
        monkeypatch.setattr(module, "GROUP_EVENTS", group_events)
        grouped = module.reconcile(source, against, **kwargs).to_dict()
        monkeypatch.setattr(module, "GROUP_EVENTS", default)
        for result in (at_once, grouped):
            result.pop("generated_at")
        assert grouped == at_once
    # the whole export (the first case): one join at once, then its four zones packed
    # (by about 120 events), or each cut in parts (of about 30)
    assert len(groups[0]) == 1 and (len(groups[1]) > 8 if group_events == 30
                                     else 1 < len(groups[1]) <= 3)
    assert at_once["matched"] > 200
    # an event without a zone (a snapshot from PostgreSQL holds what the table holds)
    for group_events_now in (default, group_events):
        monkeypatch.setattr(module, "GROUP_EVENTS", group_events_now)
        left = cf.open(DUMP)
        left.layout = None
        left.duckdb.execute("CREATE TABLE held AS SELECT * FROM events")
        left.duckdb.execute("UPDATE held SET zone_id = NULL WHERE id = (SELECT min(id) FROM held)")
        left.duckdb.execute("CREATE OR REPLACE VIEW events AS SELECT * FROM held")
        result = module.reconcile(left, DUMP).to_dict()
        result.pop("generated_at")
        if group_events_now != group_events:
            at_once = result
    assert result == at_once and result["totals"]["missing_in_source"] == 2


def test_the_missing_events_listed_under_the_cap_are_the_first_in_time(tmp_path: Path) -> None:
    """Past the cap, the missing events listed are a zone's first by occurred_at, then id,
    whatever order the files hold them in (and the ids sort in); the rest are counted."""
    import hashlib
    import re

    from caracal_forensics.reconcile import reconcile

    def renamed(line: str) -> str:  # ids in another order than time
        return re.sub(r'^\{"id":"([^"]+)"', lambda m: '{"id":"' + hashlib.md5(
            m.group(1).encode()).hexdigest() + '"', line)

    # not splitlines: U+2028 in values
    lines = [renamed(line) for line in (VECTOR_EXPORT / "db.jsonl").read_text(
        encoding="utf-8").rstrip("\n").split("\n")]
    kept = [line for line in lines if '"zone_id":"zone-alpha"' not in line]
    path = tmp_path / "without-alpha.jsonl"
    path.write_text("\n".join(reversed(kept)) + "\n", encoding="utf-8")
    source = tmp_path / "reversed.jsonl"
    source.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    result = reconcile(str(source), str(path), cap=5)
    alpha = [json.loads(line) for line in lines if '"zone_id":"zone-alpha"' in line]
    first = sorted(alpha, key=lambda event: (event["occurred_at"], event["id"]))[:5]
    listed = [f for f in result.findings_of("missing_in_source") if f.event_id]
    assert {f.event_id for f in listed} == {event["id"] for event in first}
    assert all(f.missing_from == "against" for f in listed)
    assert result.totals["missing_in_source"] == len(alpha) > 20
    # an event without a time (a snapshot from PostgreSQL holds what the table holds)
    # comes after every timed one
    left = cf.open(str(source))
    left.layout = None
    left.duckdb.execute("CREATE TABLE held AS SELECT * FROM events")
    left.duckdb.execute("UPDATE held SET occurred_at = NULL WHERE id = $id", {"id": first[0]["id"]})
    left.duckdb.execute("CREATE OR REPLACE VIEW events AS SELECT * FROM held")
    result = reconcile(left, str(path), cap=5)
    later = sorted(alpha, key=lambda event: (event["occurred_at"], event["id"]))[1:6]
    listed = [f for f in result.findings_of("missing_in_source") if f.event_id]
    assert {f.event_id for f in listed} == {event["id"] for event in later}
