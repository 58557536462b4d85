"""``explain REQUEST_ID``: PostgreSQL as the reference on every shape, the seed's layout,
--json, --zone, unknown ids, and chain links with a key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli import run_cli
from support.tail import EXPORT, KEY_FILE, MILLISECOND_SHAPES, SHAPES, load_pg

import caracal_forensics as cf
from caracal_forensics.errors import UsageError

KEY_HEX = KEY_FILE.read_text().strip()


@pytest.fixture(scope="module")
def pg_requests(pg):
    """request_id -> {zone, ids (in time order), decision} as PostgreSQL computes them, for
    occurred_at as stored and cut to milliseconds (OCSF)."""
    name = load_pg(pg, EXPORT / "db.csv")
    out = {}
    with pg.connect(dbname=name) as conn:
        for ms in (False, True):
            ts = "date_trunc('milliseconds', occurred_at)" if ms else "occurred_at"
            rows = conn.execute(
                f"""SELECT request_id, min(zone_id), count(DISTINCT zone_id),
                           array_agg(id ORDER BY ts, zone_id, chain_seq, id),
                           CASE WHEN bool_or(lower(decision) = 'deny') THEN 'deny'
                                ELSE (array_agg(lower(decision)
                                      ORDER BY ts DESC, zone_id DESC, chain_seq DESC,
                                               id DESC))[1] END
                      FROM (SELECT *, {ts} AS ts FROM audit_events) e
                     GROUP BY request_id"""
            ).fetchall()
            out[ms] = {
                r[0]: {"zone": r[1], "zones": r[2], "ids": r[3], "decision": r[4]} for r in rows
            }
    return out


@pytest.fixture(scope="module")
def snaps():
    return {name: cf.open(str(path)) for name, path in SHAPES.items()}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_explain_matches_postgresql_for_every_request(snaps, pg_requests, shape):
    expected = pg_requests[shape in MILLISECOND_SHAPES]
    multi = [r for r, e in expected.items() if len(e["ids"]) > 1]
    assert len(multi) > 30
    mixed = [
        r
        for r in multi
        if expected[r]["decision"] == "deny"
        and snaps[shape].explain(r).table.column("decision").to_pylist()[-1] == "allow"
    ]
    assert mixed, "no request denied before a final allow: the rule is not exercised"
    for request_id, want in expected.items():
        assert want["zones"] == 1
        got = snaps[shape].explain(request_id)
        assert got.zone_id == want["zone"]
        assert got.events["id"].to_list() == want["ids"], request_id
        assert got.decision == want["decision"], request_id


GOLDEN = """\
Request: req-000013
Zone: zone:prod/eu-1
Decision: deny
Event: token_exchange
Determining policies: none
Diagnostics: none
Metadata:
principal_id: app-0007
latency_ms: 3
session_id: sess-000013
resource_id: res-022
agent_session_id: sess-a00029
requested_scopes: ["payments:read", "payments:write"]

Event: step_up_issued
Determining policies:
  - baseline-resource-scope (psv-001)
Diagnostics: none
Metadata: none

Event: token_exchange
Determining policies:
  - payments-policy (psv-001)
Diagnostics: none
Metadata:
principal_id: app-0007
latency_ms: 12.50
session_id: sess-000013
resource_id: res-002
agent_session_id: sess-a00238
requested_scopes: ["payments:read"]

Details (3 event(s), oldest first):
  ev-0000017: token_exchange at 2026-05-11T08:01:13.877865Z
    Decision: deny
    Policy set: ps-payments (version psv-001)
    Manifest: sha256:90827c24ec34c9f9e2c0f991d92e0afae7c871ce2b9b9cef9cff39e4af666c98
    Evaluation status: complete
    Chain: seq 4{link}
    Source: {src} line 179
  ev-0000018: step_up_issued at 2026-05-11T08:01:21.303232Z
    Decision: allow
    Policy set: ps-payments (version psv-001)
    Manifest: sha256:90827c24ec34c9f9e2c0f991d92e0afae7c871ce2b9b9cef9cff39e4af666c98
    Evaluation status: complete
    Chain: seq 5{link}
    Source: {src} line 180
  ev-0000019: token_exchange at 2026-05-11T08:01:26.549538Z
    Decision: allow
    Policy set: ps-payments (version psv-001)
    Manifest: sha256:90827c24ec34c9f9e2c0f991d92e0afae7c871ce2b9b9cef9cff39e4af666c98
    Evaluation status: complete
    Chain: seq 6{link}
    Source: {src} line 181

Final decision: deny (denied by ev-0000017)
"""


def _golden(link: str = "", key: bool = False) -> str:
    text = GOLDEN.replace("{src}", str(SHAPES["db_csv"])).replace("{link}", link)
    if key:
        text = text.replace(
            "oldest first):\n", "oldest first):\n  Key: sha256:ae216c2ef5247a37\n"
        )
    return text


def test_text_layout():
    result = run_cli("explain", "req-000013", "--source", SHAPES["db_csv"])
    assert result.code == 0, result.err
    assert result.out == _golden()


def test_text_lists_diagnostics_as_key_value():
    result = run_cli("explain", "req-000010", "-s", SHAPES["db_csv"])
    assert "\nDiagnostics:\n  - step_up_required: webauthn\n  - risk: 0.87\n" in result.out


def test_guide_lines_come_first_and_greppable():
    """The guide's lines at column 0, in its order; the extra facts only after them, so
    `grep '^Event:'` gives the event types and `grep '^Decision:'` the final decision."""
    out = run_cli("explain", "req-000013", "--source", SHAPES["db_csv"]).out
    lines = out.split("\n")
    assert lines[:4] == [
        "Request: req-000013", "Zone: zone:prod/eu-1", "Decision: deny", "Event: token_exchange",
    ]
    assert [x for x in lines if x.startswith("Event:")] == [
        "Event: token_exchange", "Event: step_up_issued", "Event: token_exchange",
    ]
    assert [x for x in lines if x.startswith("Decision:")] == ["Decision: deny"]
    details = lines.index("Details (3 event(s), oldest first):")
    assert all(not x.startswith("Event:") for x in lines[details:])
    assert all("ev-00000" not in x for x in lines[:details])  # ids are extras: after


def test_metadata_principal_first(tmp_path):
    """application_id (current services), else principal_id, leads the metadata."""
    line = json.loads((EXPORT / "cli.jsonl").read_text("utf-8").split("\n")[0])
    line["metadata"] = {"latency_ms": 3, "application_id": "app-42", "principal_id": "old"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    out = run_cli("explain", line["request_id"], "-s", path).out
    assert "\nMetadata:\napplication_id: app-42\nlatency_ms: 3\nprincipal_id: old\n" in out


def test_json_output_splices_the_tail_records():
    result = run_cli("explain", "req-000027", "-s", SHAPES["db_csv"], "--json")
    assert result.code == 0
    assert len(result.lines) == 1
    document = json.loads(result.out)
    assert list(document) == ["request_id", "zone_id", "decision", "events"]
    assert document["request_id"] == "req-000027" and document["decision"] == "deny"
    assert document["zone_id"] == "zone-beta"
    tail = run_cli("audit", "tail", "-s", SHAPES["db_csv"], "--json", "--request-id", "req-000027")
    assert result.out.strip().endswith('"events" : [' + ", ".join(tail.lines) + "]}")


@pytest.fixture
def two_zones(tmp_path) -> Path:
    """req-000027 (zone-beta) also seen in zone-alpha, with one more event there."""
    lines = [line for line in (EXPORT / "cli.jsonl").read_text("utf-8").split("\n") if line]
    mine = [line for line in lines if '"request_id" : "req-000027"' in line]
    moved = json.loads(mine[0])
    moved.update(id="ev-moved", zone_id="zone-alpha", decision="allow")
    path = tmp_path / "two.jsonl"
    path.write_text("\n".join([*mine, json.dumps(moved)]) + "\n", encoding="utf-8")
    return path


def test_request_in_two_zones_is_explained_per_zone(two_zones):
    result = run_cli("explain", "req-000027", "-s", two_zones)
    assert result.code == 0, result.err
    first, rest = result.out.split("\n", 1)
    assert "occurs in 2 zones (zone-alpha, zone-beta)" in first
    assert [x for x in rest.split("\n") if x.startswith("Zone:")] == [
        "Zone: zone-alpha", "Zone: zone-beta",
    ]
    assert [x for x in rest.split("\n") if x.startswith("Decision:")] == [
        "Decision: allow", "Decision: deny",
    ]
    assert rest.count("Final decision:") == 2
    documents = [json.loads(x) for x in run_cli(
        "explain", "req-000027", "-s", two_zones, "--json").lines]
    assert [(d["zone_id"], d["decision"]) for d in documents] == [
        ("zone-alpha", "allow"), ("zone-beta", "deny"),
    ]
    assert [e["id"] for e in documents[0]["events"]] == ["ev-moved"]
    assert len(documents[1]["events"]) == 4


def test_zone_still_narrows(two_zones):
    alpha = run_cli("explain", "req-000027", "-s", two_zones, "--zone", "zone-alpha", "--json")
    assert len(alpha.lines) == 1
    alpha_doc = json.loads(alpha.out)
    assert [e["id"] for e in alpha_doc["events"]] == ["ev-moved"]
    assert alpha_doc["decision"] == "allow"
    beta = run_cli("explain", "req-000027", "-s", two_zones, "--zone", "zone-beta")
    assert beta.out.startswith("Request: req-000027\nZone: zone-beta\nDecision: deny\n")
    assert "occurs in" not in beta.out


def test_library_returns_every_zone(two_zones):
    snap = cf.open(str(two_zones))
    results = snap.explain_all("req-000027")
    assert [(r.zone_id, r.decision) for r in results] == [
        ("zone-alpha", "allow"), ("zone-beta", "deny"),
    ]
    assert [r.zone_id for r in snap.explain_all("req-000027", zone="zone-beta")] == ["zone-beta"]
    with pytest.raises(UsageError, match="explain_all"):
        snap.explain("req-000027")
    assert snap.explain("req-000027", zone="zone-alpha").decision == "allow"


def test_an_unanchored_first_event_is_not_called_verified(two_zones):
    """ev-moved starts zone-alpha here at seq 13 with no anchor: verify checks neither its
    link nor its HMAC, so explain must not say "link verified"."""
    result = run_cli(
        "explain", "req-000027", "-s", two_zones, "--zone", "zone-alpha", "--key-file",
        KEY_FILE, "--json",
    )
    (event,) = json.loads(result.out)["events"]
    assert event["chain_verified"] is None
    assert event["chain_findings"][0]["kind"] == "unanchored_start"
    text = run_cli("explain", "req-000027", "-s", two_zones, "--zone", "zone-alpha",
                   "--key-file", KEY_FILE).out
    assert "    Chain: seq 13, link not checked (the zone starts at seq 13 here" in text


def test_unknown_request_is_exit_4_not_tampered():
    result = run_cli("explain", "req-nope", "-s", SHAPES["db_csv"])
    assert result.code == 4
    assert "req-nope" in result.err and "not found" in result.err
    assert len(result.err.strip().split("\n")) == 1
    zoned = run_cli("explain", "req-000027", "-s", SHAPES["db_csv"], "--zone", "zone-alpha")
    assert zoned.code == 4 and "zone-alpha" in zoned.err


# --- chain links with a key ------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_key_file_marks_every_link_verified(shape):
    result = run_cli("explain", "req-000027", "-s", SHAPES[shape], "--key-file", KEY_FILE, "--json")
    assert result.code == 0, result.err
    events = json.loads(result.out)["events"]
    assert [e["chain_verified"] for e in events] == [True] * 4
    assert all(e["chain_findings"] == [] for e in events)


def test_key_text_layout():
    result = run_cli("explain", "req-000013", "-s", SHAPES["db_csv"], "--key-file", KEY_FILE)
    assert result.out == _golden(", link verified", key=True)


@pytest.mark.parametrize("variable", ["AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE"])
def test_key_from_environment(variable):
    value = KEY_HEX if variable == "AUDIT_HMAC_KEY" else str(KEY_FILE)
    result = run_cli("explain", "req-000013", "-s", SHAPES["db_csv"], env={variable: value})
    assert result.code == 0, result.err
    assert result.out.count("link verified") == 3


def test_without_key_no_chain_fields():
    result = run_cli(
        "explain",
        "req-000013",
        "-s",
        SHAPES["db_csv"],
        "--json",
        env={"AUDIT_HMAC_KEY": None, "AUDIT_HMAC_KEY_FILE": None},
    )
    assert all("chain_verified" not in e for e in json.loads(result.out)["events"])


def test_tampered_event_fails_its_link(tmp_path):
    text = (EXPORT / "db.csv").read_text("utf-8")
    line = next(x for x in text.split("\n") if x.startswith("ev-0000018,"))
    assert '"latency_ms""' not in line  # ev-18 has NULL metadata: change its decision
    tampered_line = line.replace(",allow,", ",deny,", 1)
    path = tmp_path / "tampered.csv"
    path.write_text(text.replace(line, tampered_line), encoding="utf-8")
    result = run_cli("explain", "req-000013", "-s", path, "--key-file", KEY_FILE, "--json")
    assert result.code == 0, result.err
    events = json.loads(result.out)["events"]
    assert [e["chain_verified"] for e in events] == [True, False, True]
    assert events[1]["chain_findings"][0]["kind"] == "content_mismatch"
    text_out = run_cli("explain", "req-000013", "-s", path, "--key-file", KEY_FILE).out
    assert re.search(r"\n    Chain: seq 5, link FAILED \(content_mismatch: ", text_out)


def test_wrong_key_fails_every_link(tmp_path):
    wrong = tmp_path / "wrong.hex"
    wrong.write_text("ab" * 32 + "\n")
    result = run_cli("explain", "req-000013", "-s", SHAPES["db_csv"], "--key-file", wrong, "--json")
    events = json.loads(result.out)["events"]
    assert [e["chain_verified"] for e in events] == [False, False, False]
    assert {f["kind"] for e in events for f in e["chain_findings"]} == {"hmac_mismatch"}


def test_bad_key_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.hex"
    bad.write_text("not hex at all")
    result = run_cli("explain", "req-000013", "-s", SHAPES["db_csv"], "--key-file", bad)
    assert result.code == 2 and "not hex" in result.err and "not hex at all" not in result.err


def test_unchecked_links_are_not_claimed_verified(tmp_path):
    """A cli.jsonl line without evaluation_status cannot be hashed: nothing in its zone is
    called verified while the engine reports something it could not check."""
    lines = [line for line in (EXPORT / "cli.jsonl").read_text("utf-8").split("\n") if line]
    zone = [json.loads(x) for x in lines if '"zone_id" : "zone:prod/eu-1"' in x]
    for record in zone:
        if record["request_id"] == "req-000013":
            record.pop("evaluation_status")
    path = tmp_path / "partial.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in zone) + "\n", encoding="utf-8")
    result = run_cli("explain", "req-000013", "-s", path, "--key-file", KEY_FILE, "--json")
    events = json.loads(result.out)["events"]
    assert all(e["chain_verified"] is None for e in events)
    assert all(
        e["chain_findings"] and e["chain_findings"][0]["kind"] == "unverifiable" for e in events
    )


def test_control_characters_are_escaped(tmp_path):
    line = json.loads((EXPORT / "cli.jsonl").read_text("utf-8").split("\n")[0])
    line["metadata"] = {"principal_id": "evil\x1b]0;title\x07", "note": "a\nb"}
    line["diagnostics"] = [{"reason": "tab\there"}]
    path = tmp_path / "evil.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    result = run_cli("explain", line["request_id"], "-s", path)
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "\nprincipal_id: evil\\x1b]0;title\\x07\n" in result.out
    assert "\nnote: a\\nb\n" in result.out
    assert "\n  - reason: tab\\there\n" in result.out
