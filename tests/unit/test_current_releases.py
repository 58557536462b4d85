"""What current Caracal releases write (FORMAT.md 6): the ``partial`` decision is
filtered, counted and charted like the others, and a principal is ``application_id`` when
present, else the older guide's ``principal_id``, in the named queries, stats and charts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import cli

import caracal_forensics as cf
from caracal_forensics import charts


def _item(n: int, decision: str, metadata: dict, request: str | None = None) -> dict:
    return {
        "id": f"ev-{n:03d}", "zone_id": "zone-a", "event_type": "token_exchange",
        "request_id": request or f"req-{n:03d}", "decision": decision,
        "policy_set_id": "ps-1", "policy_set_version_id": "psv-1", "manifest_sha": "m-1",
        "evaluation_status": "complete", "determining_policies_json": [{"policy": "p"}],
        "diagnostics_json": [], "metadata_json": metadata,
        "occurred_at": f"2026-05-11T08:00:{n:02d}.123Z",
        "ingested_at": f"2026-05-11T08:00:{n:02d}.456Z",
    }


ITEMS = [
    _item(1, "deny", {"application_id": "app-1", "resource": "r-1"}),
    _item(2, "deny", {"principal_id": "app-1", "resource_id": "r-1"}),  # older release
    _item(3, "partial", {"application_id": "app-2"}, request="req-x"),
    _item(4, "partial", {"application_id": "app-2"}, request="req-x"),
    _item(5, "deny", {"application_id": "app-3", "principal_id": "app-old"}),
    _item(6, "allow", {"application_id": "app-1"}),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "audit-zone-a-page0.json"
    path.write_text(json.dumps({"items": ITEMS[::-1], "next_cursor": None}))
    return path


def test_partial_is_filtered_and_counted(page: Path) -> None:
    snap = cf.open(str(page))
    tail = snap.tail(decision="partial", limit=0)
    assert sorted(tail["id"].to_list()) == ["ev-003", "ev-004"]
    numbers = snap.stats()
    assert numbers["by_decision"] == {"deny": 3, "partial": 2, "allow": 1}
    [zone] = numbers["zones"]
    assert (zone["allows"], zone["denies"], zone["partials"]) == (1, 3, 2)


def test_partial_in_the_policy_version_queries(page: Path) -> None:
    snap = cf.open(str(page))
    [deciding] = snap.query("deciding_policy_version").to_dicts()
    assert (deciding["decisions"], deciding["partials"]) == (6, 2)
    [timeline] = snap.query("policy_version_timeline").to_dicts()
    assert (timeline["allows"], timeline["denies"], timeline["partials"]) == (1, 3, 2)


def test_partial_through_the_cli(capsys: pytest.CaptureFixture[str], page: Path) -> None:
    code, out, err = cli(capsys, "audit", "tail", "-s", page, "--decision", "partial",
                         "--json")
    assert code == 0, err
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["ev-003", "ev-004"]
    code, out, err = cli(capsys, "stats", "-s", page)
    assert code == 0, err
    assert "partial" in out.splitlines()[next(
        i for i, line in enumerate(out.splitlines()) if line.startswith("zone "))]


def test_a_principal_is_application_id_else_principal_id(page: Path) -> None:
    snap = cf.open(str(page))
    top = {r["principal_id"]: r for r in snap.query("top_denied_principals").to_dicts()}
    assert top["app-1"]["denies"] == 2 and top["app-1"]["events"] == 3
    assert top["app-1"]["principal_key"] == "application_id,principal_id"
    assert top["app-3"]["principal_key"] == "application_id" and "app-old" not in top
    denies = snap.query("denies_for_principal", principal_id="app-1")
    assert sorted(denies["id"].to_list()) == ["ev-001", "ev-002"]
    activity = snap.query("principal_activity", principal_id="app-2")
    assert activity["events"].sum() == 2
    svg = str(charts.top_denied_chart(snap.query("top_denied_principals")))
    assert "app-1" in svg and "app-3" in svg


def test_explain_of_a_partial_request(page: Path) -> None:
    result = cf.open(str(page)).explain("req-x")
    assert result.decision == "partial"  # no deny: the last event's decision
    assert "app-2" in result.text()
