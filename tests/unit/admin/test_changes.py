"""Listing admin changes (``admin.changes``, ``Snapshot.admin_changes``): the filters of
``admin tail`` as bound SQL, each change once, its record, the empty-result hints."""

from __future__ import annotations

import json

import pytest
from support.paths import FIXTURE_ADMIN, FIXTURE_EXPORT, FIXTURE_INCIDENT, VECTORS

import caracal_forensics as cf
from caracal_forensics.admin.changes import (
    AdminFilters,
    change_records,
    count_changes,
    empty_result_hint,
    json_lines,
    query_lines,
    select_changes,
)
from caracal_forensics.errors import UsageError
from caracal_forensics.render.query import Query

UPSTREAM = VECTORS / "upstream" / "admin"


@pytest.fixture(scope="module")
def incident() -> cf.Snapshot:
    return cf.open(str(FIXTURE_INCIDENT))


def _ids(snap: cf.Snapshot, **filters) -> list[str]:
    table = select_changes(snap.duckdb, AdminFilters.build(**filters))
    return [r["request_id"] for r in table.select(["request_id"]).to_pylist()]


def test_every_change_oldest_first(incident: cf.Snapshot) -> None:
    assert _ids(incident, limit=0) == [f"req-adm-{n:03d}" for n in range(1, 10)]
    # the newest N, still printed oldest first
    assert _ids(incident, limit=2) == ["req-adm-008", "req-adm-009"]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"zone": "(global)"}, [1, 5]),
    ({"zone": ["(global)", "zone-pay"]}, list(range(1, 10))),
    ({"actor": "bob@example.com"}, [5, 7, 8]),  # by name ...
    ({"actor": "adm-1"}, [2, 6, 9]),  # ... or by id
    ({"entity_type": "policy-sets"}, [2, 6, 9]),
    ({"entity_id": ["app-12", "res-ledger"]}, [3, 4]),
    ({"method": "delete"}, [7, 8]),  # case-insensitive
    ({"status": "403"}, [5, 7, 8]),
    ({"status": "2xx"}, [1, 2, 3, 4, 6, 9]),
    ({"status": "failed"}, [5, 7, 8]),
    ({"status": [204, "201"]}, [1, 2, 4]),
    ({"since": "2026-05-12T10:02:00.250Z", "until": "2026-05-12T10:05:00Z"}, [6, 7]),
    ({"zone": "zone-pay", "actor": "bob@example.com", "status": "4xx"}, [7, 8]),
])  # fmt: skip
def test_filters(incident: cf.Snapshot, filters: dict, expected: list[int]) -> None:
    assert _ids(incident, limit=0, **filters) == [f"req-adm-{n:03d}" for n in expected]
    assert count_changes(incident.duckdb, AdminFilters.build(**filters)) == len(expected)


@pytest.mark.parametrize(("filters", "parameter", "words"), [
    ({"status": "teapot"}, "status", "HTTP status code"),
    ({"status": "600"}, "status", "HTTP status code"),
    ({"limit": -1}, "limit", "whole number"),
    ({"zone": ""}, "zone", "non-empty"),
    ({"since": "2026-05-12T11:00Z", "until": "2026-05-12T10:00Z"}, ("since", "until"),
     "before until"),
    ({"since": "yesterday"}, "since", "ISO 8601"),
])  # fmt: skip
def test_bad_values_name_their_parameter(filters, parameter, words) -> None:
    with pytest.raises(UsageError, match=words) as error:
        AdminFilters.build(**filters)
    assert error.value.parameter == parameter


def test_values_are_bound_not_pasted(incident: cf.Snapshot) -> None:
    assert _ids(incident, actor="x') OR TRUE --", limit=0) == []
    assert _ids(incident, zone="' OR zone_id IS NOT NULL --", limit=0) == []


def test_a_change_in_several_shapes_is_listed_once() -> None:
    """The upstream vectors hold the same 80 changes as CSV and JSON lines, and the
    zones' Admin API pages: each is listed once, from a copy that carries its hashes."""
    snap = cf.open(str(UPSTREAM))
    assert snap.sql("SELECT count(*) AS n FROM admin_events")["n"][0] == 223
    listed = select_changes(snap.duckdb, AdminFilters.build(limit=0)).to_pylist()
    assert len(listed) == len({r["id"] for r in listed}) == 80
    assert all(r["content_sha256"] for r in listed)


def test_records(incident: cf.Snapshot) -> None:
    table = select_changes(incident.duckdb, AdminFilters.build(limit=0))
    records = change_records(table)
    first, activate = records[0], records[5]
    assert first["chain"] == "(global)" and first["zone_id"] is None
    assert activate["occurred_at"] == "2026-05-12T10:02:00.250Z"
    assert activate["payload_json"] == {"operator": "op-1", "rls_mode": "zone_scoped",
                                        "change_kind": "activate",
                                        "rls_zone_guc": "zone-pay",
                                        "changed_fields": ["active_version"]}
    assert (activate["change_kind"], activate["changed_fields"]) == (
        "activate", "active_version")
    assert activate["signed"] is True and activate["chain_seq"] == 4
    assert activate["source"].endswith("admin.csv:7")
    assert records[3]["payload_json"] is None and records[3]["actor_id"] is None
    line = json_lines([activate])[0]
    assert line.startswith('{"occurred_at": "2026-05-12T10:02:00.250Z", "chain": "zone-pay"')
    # --query: true prints the record, a value is printed, falsy skips
    assert query_lines(Query("status_code == `403`"), table) == [
        json_lines([r])[0] for r in records if r["status_code"] == 403]
    assert query_lines(Query("status_code >= `400` && {who: actor_name, at: occurred_at}"),
                       table)[0] == (
        '{"who": "bob@example.com", "at": "2026-05-12T09:58:10.400Z"}')


def test_a_query_failing_on_a_change_names_its_file_and_line(tmp_path) -> None:
    """`admin tail --query` with an expression that cannot be evaluated on a change (the
    length of a number) names the change's file and line, or an Admin API page's item,
    not only its id (it said "failed on event 'ID'")."""
    from caracal_forensics.errors import InputError

    page = FIXTURE_ADMIN / "admin-audit-zone-alpha.json"
    items = json.loads(page.read_text("utf-8"))["items"]
    per_line = tmp_path / "admin-audit-zone-alpha.json"
    per_line.write_text("".join(json.dumps(item) + "\n" for item in items), "utf-8")
    for source, unit in ((FIXTURE_INCIDENT / "admin.csv", "line 2"), (page, "item 12"),
                         (per_line, "line 12")):
        changes = select_changes(cf.open(str(source)).duckdb, AdminFilters.build(limit=0))
        with pytest.raises(InputError) as raised:
            query_lines(Query("length(chain_seq)"), changes)
        assert (raised.value.path, raised.value.where) == (str(source), unit), source
        assert raised.value.problem.startswith(
            f"change {changes.column('id')[0].as_py()!r}: --query failed: In function "
            "length(), invalid type for value"), raised.value.problem


def test_payload_number_literals_are_kept(tmp_path) -> None:
    """A payload's numbers print as stored (jsonb text), never through a float."""
    text = (FIXTURE_INCIDENT / "admin.csv").read_text("utf-8").replace(
        '""operator"": ""op-1""', '""n"": 1.50, ""operator"": ""op-1""', 1)
    (tmp_path / "admin.csv").write_text(text, "utf-8")
    snap = cf.open(str(tmp_path / "admin.csv"))
    (record,) = [r for r in change_records(select_changes(
        snap.duckdb, AdminFilters.build(limit=0))) if "n" in (r["payload_json"] or {})]
    assert '"n": 1.50' in json_lines([record])[0]


def test_empty_result_hints(incident: cf.Snapshot) -> None:
    hint = empty_result_hint(incident.duckdb, AdminFilters.build(zone="zone-py"))
    assert hint is not None and "zone 'zone-py'" in hint and "'zone-pay'" in hint
    assert "(global)" in hint  # the global chain is a value of --zone too
    hint = empty_result_hint(incident.duckdb, AdminFilters.build(actor="alice"))
    assert hint is not None and "alice@example.com" in hint
    # values that exist, in a combination that matches nothing: no hint
    assert empty_result_hint(incident.duckdb, AdminFilters.build(
        actor="alice@example.com", method="DELETE")) is None


def test_snapshot_api(incident: cf.Snapshot) -> None:
    frame = incident.admin_changes(actor="bob@example.com", limit=0)
    assert frame.height == 3 and set(frame["status_code"]) == {403}
    assert incident.admin_events.collect().height == 9
    # sources without admin changes: an empty view, never a missing one
    plain = cf.open(str(FIXTURE_EXPORT))
    assert plain.admin_changes(limit=0).height == 0
    assert plain.sql("SELECT count(*) AS n FROM unique_admin_events")["n"][0] == 0
