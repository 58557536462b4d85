"""The named queries over admin changes (queries/admin_changes_by_actor.sql,
changes_before_deny_spike.sql, failed_admin_attempts.sql) on the incident."""

from __future__ import annotations

import datetime as dt

import pytest
from support.paths import FIXTURE_EXPORT, FIXTURE_INCIDENT, VECTORS

import caracal_forensics as cf

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def incident() -> cf.Snapshot:
    return cf.open(str(FIXTURE_INCIDENT))


def test_changes_by_actor(incident: cf.Snapshot) -> None:
    rows = incident.query("admin_changes_by_actor").to_dicts()
    assert [(r["actor_id"], r["changes"], r["failed"]) for r in rows] == [
        ("adm-1", 3, 0), ("adm-2", 3, 3), ("svc-ci", 2, 0), (None, 1, 0)]
    bob = rows[1]
    assert bob["actor_names"] == ["bob@example.com"]
    assert bob["zones"] == ["(global)", "zone-pay"] and bob["methods"] == ["DELETE", "POST"]
    assert bob["first_change"] == dt.datetime(2026, 5, 12, 9, 58, 10, 400000, tzinfo=UTC)
    assert incident.query("admin_changes_by_actor", limit="1").height == 1


def test_failed_attempts_by_status(incident: cf.Snapshot) -> None:
    (row,) = incident.query("failed_admin_attempts").to_dicts()
    assert (row["status_code"], row["attempts"], row["actors"]) == (403, 3, ["bob@example.com"])
    assert row["actions"] == ["DELETE /v1/zones/zone-pay/grants/g-12", "POST /v1/zones"]
    everything = incident.query("failed_admin_attempts", min_status=200)
    assert dict(zip(everything["status_code"], everything["attempts"], strict=True)) == {
        403: 3, 200: 3, 201: 2, 204: 1}


def test_changes_before_the_deny_spike(incident: cf.Snapshot) -> None:
    rows = incident.query("changes_before_deny_spike").to_dicts()
    assert {r["spike_at"] for r in rows} == {
        dt.datetime(2026, 5, 12, 10, 3, 5, 3973, tzinfo=UTC)}
    assert {(r["spike_denies"], r["previous_denies"]) for r in rows} == {(8, 0)}
    # nearest first: the activation two minutes before it, then what came earlier
    assert [(r["actor_name"], r["change_kind"], r["minutes_before"]) for r in rows] == [
        ("alice@example.com", "activate", 1.08),
        (None, None, 13.08),
        ("ci-bot", "update", 17.88),
        ("alice@example.com", "create", 33.08),
    ]
    # the zone's creation on the global chain names the zone: inside a longer look back
    longer = incident.query("changes_before_deny_spike", lookback_minutes=120)
    assert list(longer["chain"])[-1] == "(global)"
    # no window of the incident holds 30 denies: no spike, nothing listed
    assert incident.query("changes_before_deny_spike", min_denies=30).height == 0


def test_without_admin_changes_the_queries_answer_empty() -> None:
    snap = cf.open(str(FIXTURE_EXPORT / "db.csv"))
    for name in ("admin_changes_by_actor", "failed_admin_attempts",
                 "changes_before_deny_spike"):
        assert snap.query(name).height == 0, name


def test_each_change_counts_once_across_shapes() -> None:
    snap = cf.open(str(VECTORS / "upstream" / "admin"))
    total = snap.query("admin_changes_by_actor")["changes"].sum()
    assert total == 80
