"""``timeline`` (``admin.timeline``) and explain's admin changes, on the incident of
fixtures/incident and on crafted events around its changes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.crafted import chain_events, ev, write_jsonl
from support.paths import FIXTURE_EXPORT, FIXTURE_INCIDENT

import caracal_forensics as cf
from caracal_forensics.admin.timeline import Change, Decisions
from caracal_forensics.errors import UsageError
from caracal_forensics.explain import admin_changes_before

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def incident() -> cf.Snapshot:
    return cf.open(str(FIXTURE_INCIDENT))


def test_the_incident_reads_off_one_screen(incident: cf.Snapshot) -> None:
    result = incident.timeline("zone-pay", since="2026-05-12T09:50Z", until="2026-05-12T10:15Z")
    assert (result.changes, result.events, len(result.entries)) == (5, 67, 10)
    lines = result.lines()
    assert len(lines) == 10
    # the activation, then app-12's denies from 10:03 as one line with their count
    activate = next(i for i, line in enumerate(lines) if "psv-7/activate" in line)
    assert lines[activate].startswith("2026-05-12T10:02:00.250Z  change ")
    assert lines[activate].endswith("alice@example.com: POST /v1/zones/zone-pay/policy-sets/"
                                    "ps-pay/versions/psv-7/activate -> 200 [activate]")
    deny = lines[activate + 1]
    assert deny.startswith("2026-05-12T10:03:05.003Z  deny ")
    assert " 27x  app-12  token_exchange psv-7 (deny-legacy-scopes) until 10:09:35.008Z" in deny
    # bob's failures are shown, but do not cut app-12's run (they changed nothing)
    assert sum(line.split()[1] == "failed" for line in lines) == 2
    # the rollback starts a new run for app-12, allowed again
    assert lines[-2].split()[1] == "change" and "psv-6/activate" in lines[-2]
    assert " 5x  app-12  token_exchange psv-6 " in lines[-1]


def test_entries_and_json(incident: cf.Snapshot) -> None:
    result = incident.timeline("zone-pay", since="2026-05-12T10:02Z", until="2026-05-12T10:04Z")
    kinds = [type(e) for e in result.entries]
    assert kinds == [Change, Decisions, Decisions]
    run = result.entries[1]
    assert (run.decision, run.principal, run.count) == ("deny", "app-12", 4)
    dicts = result.to_dicts()
    assert dicts[0]["kind"] == "change" and dicts[0]["chain_seq"] == 4
    assert dicts[1] == {
        "kind": "decisions", "decision": "deny", "count": 4, "principal": "app-12",
        "first_at": "2026-05-12T10:03:05.003Z", "last_at": "2026-05-12T10:03:50.004Z",
        "event_type": "token_exchange", "policy_set_id": "ps-pay",
        "policy_set_version_id": "psv-7", "determining_policies": ["deny-legacy-scopes"],
        "first_request_id": "req-pay-0029", "last_request_id": "req-pay-0033",
        "first_event_id": "ev-pay-0029",
    }


def test_every_event_its_own_line(incident: cf.Snapshot) -> None:
    result = incident.timeline("zone-pay", collapse=False)
    assert len(result.entries) == 67 + 8  # the global chain's failed POST names no zone
    assert all(e.count == 1 for e in result.entries if isinstance(e, Decisions))


def _crafted(tmp_path: Path, clocks: list[str]) -> cf.Snapshot:
    """app-x allowed alike at each clock (2026-05-12), beside the incident's changes."""
    events = []
    for n, clock in enumerate(clocks):
        event = ev(f"x{n}", "zone-pay", "token_exchange", 0, "allow", request=f"rx-{n}",
                   principal="app-x")
        hour, minute = (int(p) for p in clock.split(":"))
        event["occurred_at"] = dt.datetime(2026, 5, 12, hour, minute, tzinfo=UTC)
        events.append(event)
    folder = tmp_path / "crafted"
    folder.mkdir()
    write_jsonl(folder / "db.jsonl", chain_events(events))
    shutil.copy(FIXTURE_INCIDENT / "admin.csv", folder)
    return cf.open(str(folder))


def test_a_successful_change_ends_a_run_a_failed_one_does_not(tmp_path: Path) -> None:
    snap = _crafted(tmp_path, ["10:01", "10:03", "10:04", "10:06"])
    runs = [e for e in snap.timeline("zone-pay").entries if isinstance(e, Decisions)]
    # 10:02 (alice, 200) cuts; 10:04:30 and 10:05 (bob, 403) do not
    assert [(r.count, r.first_at.minute, r.last_at.minute) for r in runs] == [
        (1, 1, 1), (3, 3, 6)]


def test_zone_is_required_and_window_checked(incident: cf.Snapshot) -> None:
    with pytest.raises(UsageError) as error:
        incident.timeline("")
    assert error.value.parameter == "zone"
    with pytest.raises(UsageError, match="before until"):
        incident.timeline("zone-pay", since="2026-05-12T11:00Z", until="2026-05-12T10:00Z")


def test_without_admin_changes_only_decisions() -> None:
    snap = cf.open(str(FIXTURE_EXPORT))
    result = snap.timeline("zone-alpha")
    assert result.changes == 0 and result.events > 0
    assert all(isinstance(e, Decisions) for e in result.entries)


# --- explain -----------------------------------------------------------------------------


def test_explain_names_the_changes_to_what_the_request_involved(incident) -> None:
    result = incident.explain("req-pay-0029")  # app-12 denied at 10:03:05 under psv-7
    assert result.involved == [("policy set", "ps-pay"), ("policy set version", "psv-7"),
                               ("application", "app-12"), ("resource", "res-ledger")]
    changes = result.admin_changes
    assert [(c["occurred_at"], c["involves"]) for c in changes] == [
        ("2026-05-12T09:30:00.000Z", ["policy set ps-pay"]),
        ("2026-05-12T09:45:12.120Z", ["application app-12"]),
        ("2026-05-12T09:50:00.000Z", ["resource res-ledger"]),
        ("2026-05-12T10:02:00.250Z", ["policy set ps-pay", "policy set version psv-7"]),
    ]  # not bob's grant deletions, nor the zone's creation: not what it involved
    text = result.text()
    assert "Admin changes in the 24 hours before (policy set ps-pay, policy set version " \
           "psv-7, application app-12, resource res-ledger):" in text
    assert ("  2026-05-12T10:02:00.250Z  alice@example.com: POST /v1/zones/zone-pay/"
            "policy-sets/ps-pay/versions/psv-7/activate -> 200 (policy set ps-pay; policy "
            "set version psv-7; zone-pay seq 4)") in text
    assert result.to_dict()["admin_changes"] == changes
    import json

    assert json.loads(result.to_json())["admin_changes"][3]["chain_seq"] == 4


def test_explain_looks_back_24_hours_only(incident) -> None:
    result = incident.explain("req-pay-0029")
    recent = admin_changes_before(incident.duckdb, result.table, "zone-pay", result.involved,
                                  lookback=dt.timedelta(minutes=15))
    assert [c["occurred_at"] for c in recent] == ["2026-05-12T09:50:00.000Z",
                                                   "2026-05-12T10:02:00.250Z"]
    # the same request a day later (10:00 on the 13th): only what ps-pay saw since 10:00
    # on the 12th counts, the activation of psv-7 and the rollback to psv-6
    import pyarrow as pa

    index = result.table.schema.get_field_index("occurred_at")
    later = result.table.set_column(index, "occurred_at", pa.array(
        [dt.datetime(2026, 5, 13, 10, 0, tzinfo=UTC)], result.table.schema.field(index).type))
    assert [c["occurred_at"] for c in admin_changes_before(
        incident.duckdb, later, "zone-pay", result.involved)] == [
        "2026-05-12T10:02:00.250Z", "2026-05-12T10:09:40.000Z"]


def test_explain_without_admin_sources_says_nothing_of_them() -> None:
    result = cf.open(str(FIXTURE_EXPORT)).explain("req-000013")
    assert result.admin_changes is None
    assert "Admin changes" not in result.text()
    assert "admin_changes" not in result.to_dict() and "admin_changes" not in result.to_json()


# --- the runs, against a model; read as a stream --------------------------------------------

_PRINCIPALS = ["app-1", "app-2", None, "app\u0085three"]  # None: no principal; a NEL in one
_AT = dt.datetime(2026, 5, 12, 10, 0, tzinfo=UTC)  # the incident's changes: 10:02 on


def _model_runs(rows: list[dict], cuts: list[dt.datetime], collapse: bool) -> list[tuple]:
    """The runs as the module's docstring defines them, in Python."""
    by_principal: dict = {}
    for line, row in enumerate(rows, start=1):
        if row["decision"] is None:
            continue
        principal = (row["metadata_json"] or {}).get("principal_id")
        by_principal.setdefault(principal, []).append((line, row))
    runs = []
    for principal, events in by_principal.items():
        events.sort(key=lambda item: (item[1]["occurred_at"], item[1]["chain_seq"],
                                      item[1]["id"], item[0]))
        previous = None
        for _line, row in events:
            key = (row["decision"].lower(), row["event_type"], row["policy_set_id"],
                   row["policy_set_version_id"],
                   json.dumps(row["determining_policies_json"]),
                   sum(cut <= row["occurred_at"] for cut in cuts))
            if not collapse or key != previous:
                runs.append([principal, row, row, 0, row["occurred_at"], row["occurred_at"]])
            run = runs[-1]
            run[2], run[3] = row, run[3] + 1
            run[4], run[5] = min(run[4], row["occurred_at"]), max(run[5], row["occurred_at"])
            previous = key
    runs.sort(key=lambda r: (r[4], r[1]["chain_seq"], r[1]["id"]))
    return [(first["decision"].lower(), principal, first["event_type"],
             first["policy_set_version_id"],
             tuple(p["policy"] for p in first["determining_policies_json"]), n, first_at,
             last_at, first["request_id"], last["request_id"], first["id"])
            for principal, first, last, n, first_at, last_at in runs]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 60), st.sampled_from(_PRINCIPALS),
                          st.sampled_from(["allow", "deny", "DENY", None]),
                          st.sampled_from(["token_exchange", "step_up_issued"]),
                          st.sampled_from(["psv-6", "psv-7"]),
                          st.sampled_from([("base",), ("a", "b"), ()]),
                          st.one_of(st.none(), st.sampled_from(["r1", "r2", "r3"]))),
                min_size=1, max_size=40),
       st.booleans())
def test_the_runs_are_the_models(tmp_path_factory, rows, collapse) -> None:
    """Random decisions of a few principals around the incident's changes (times shared
    by several events, decisions in other cases, no principal, no request id): the
    timeline's runs, in order, are those of a plain Python model of the module's rule;
    the stream gives the same lines, and leaves no table behind."""
    from caracal_forensics.admin.timeline import timeline_stream

    events = []
    for n, (step, principal, decision, event_type, version, policies, request) in enumerate(
            rows):
        event = ev(f"ev-{n:03d}", "zone-pay", event_type, 0, decision, request=request,
                   principal=principal, version=version, policies=policies)
        event["occurred_at"] = _AT + dt.timedelta(seconds=15 * step)
        events.append(event)
    chained = chain_events(events)
    folder = tmp_path_factory.mktemp("runs")
    write_jsonl(folder / "db.jsonl", chained)
    shutil.copy(FIXTURE_INCIDENT / "admin.csv", folder)
    snap = cf.open(str(folder))
    result = snap.timeline("zone-pay", collapse=collapse)
    cuts = [e.at for e in result.entries if isinstance(e, Change) and not e.failed]
    runs = [(r.decision, r.principal, r.event_type, r.policy_set_version_id, r.policies,
             r.count, r.first_at, r.last_at, r.first_request_id, r.last_request_id,
             r.first_event_id) for r in result.entries if isinstance(r, Decisions)]
    modelled = [dict(event, chain_seq=row["chain_seq"])
                for event, row in zip(events, chained, strict=True)]
    assert runs == _model_runs(modelled, cuts, collapse)
    stream = timeline_stream(snap.duckdb, "zone-pay", collapse=collapse)
    assert list(stream.text_lines()) == result.text().split("\n")
    leftover = "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_cf_timeline%'"
    assert snap.duckdb.execute(leftover).fetchall() == [(0,)]
    partly = timeline_stream(snap.duckdb, "zone-pay", collapse=collapse)
    next(partly.dicts(), None)
    partly.close()
    assert snap.duckdb.execute(leftover).fetchall() == [(0,)]
