"""A filter value that no event has (a typo) names the values that exist (issue 15.14)."""

from __future__ import annotations

import duckdb
import pytest
from support.cli import run_cli as cli
from support.paths import FIXTURE_EXPORT

import caracal_forensics as cf
from caracal_forensics.filters import Filters, empty_result_hint, unmatched_values

DB_CSV = FIXTURE_EXPORT / "db.csv"




@pytest.fixture(scope="module")
def snap() -> cf.Snapshot:
    return cf.open(str(DB_CSV))


def test_a_mistyped_zone_names_the_zones_and_the_closest(snap: cf.Snapshot) -> None:
    [unmatched] = unmatched_values(snap.duckdb, Filters.build(zone=["zone-alpha", "zone-bta"]))
    assert unmatched.parameter == "zones" and unmatched.values == ("zone-bta",)
    assert unmatched.present == ("zone-alpha", "zone-beta", "zone:prod/eu-1")
    assert unmatched.suggestions == (("zone-bta", "zone-beta"),)
    assert unmatched.message() == (
        "no events in zone 'zone-bta'; zones present: zone-alpha, zone-beta, zone:prod/eu-1 "
        "(did you mean 'zone-beta'?)"
    )


def test_values_that_exist_give_no_hint(snap: cf.Snapshot) -> None:
    filters = Filters.build(zone="zone-alpha", event_type="control.invoke", decision="deny")
    assert unmatched_values(snap.duckdb, filters) == []
    assert empty_result_hint(snap.duckdb, filters) is None
    assert unmatched_values(snap.duckdb, Filters.build(request_id="nope")) == []


def test_an_absent_decision_is_named() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE events AS SELECT * FROM (VALUES ('z', 't', 'ALLOW'), "
                "('z', 't', NULL)) AS v(zone_id, event_type, decision)")
    hint = empty_result_hint(con, Filters.build(decision="deny", event_type="t"))
    assert hint == "no events with decision 'deny'; decisions present: allow"


def test_tail_prints_the_hint_as_one_stderr_line() -> None:
    code, out, err = cli("audit", "tail", "-s", str(DB_CSV),
                         "--event-type", "jti_colision")
    assert (code, out) == (0, "")
    assert err.count("\n") == 1
    assert err.startswith("caracal-forensics: no events of type 'jti_colision'; event types "
                          "present: challenge_cooldown, ")
    assert err.endswith("(did you mean 'jti_collision'?)\n")
    # --json stays silent on stdout; the hint still goes to stderr
    code, out, err = cli("audit", "tail", "--json", "-s", str(DB_CSV),
                         "--zone", "zone-alpah")
    assert (code, out) == (0, "") and "(did you mean 'zone-alpha'?)" in err
    # a combination that is empty while each value exists: the plain message
    code, out, err = cli("audit", "tail", "-s", str(DB_CSV), "--zone", "zone-alpha",
                         "--event-type", "control.invoke", "--decision", "deny")
    assert (code, err) == (0, "caracal-forensics: no matching events\n")
