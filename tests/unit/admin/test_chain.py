"""The admin chain's content hash and its key-order search (FORMAT.md 8), over rows built
here as the writer builds them: P = JSON.stringify in the service's order, the stored
jsonb in PostgreSQL's order (``jsonb.dumps``)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from caracal_forensics.admin.chain import (
    ORDER_BUDGET,
    candidate_payloads,
    find_payload,
    iso_millis,
    order_space,
    preimage_parts,
)
from caracal_forensics.admin.js import stringify
from caracal_forensics.admin.model import ADMIN_SCHEMA
from caracal_forensics.admin.verify import verify_admin_table
from caracal_forensics.jsonb import JsonbNumber, dumps, loads

KEY = bytes(range(32))
T0 = datetime(2026, 5, 11, 8, 0, 3, 212000, tzinfo=timezone.utc)


def chain_rows(payloads: list[str | None], zone: str | None = "z1") -> pa.Table:
    """One chain of rows whose payloads were built in the order their JSON text shows."""
    rows, prev = [], ""
    for seq, text in enumerate(payloads, 1):
        row = {"id": f"a{seq}", "request_id": "r", "actor_id": "adm-1", "actor_name": "alice",
               "actor_scope": "control", "action": "PUT /x", "method": "PUT", "path": "/x",
               "zone_id": zone, "entity_type": "grants", "entity_id": None,
               "status_code": 200, "occurred_at": T0.replace(second=seq)}
        head, tail = preimage_parts(row)
        value = None if text is None else loads(text)
        p = "" if value is None else stringify(value)
        content = hashlib.sha256((head + p + tail).encode()).hexdigest()
        row.update(payload_json=None if value is None else dumps(value),
                   content_sha256=content, prev_content_sha256=prev or None,
                   chain_hmac=hmac.new(KEY, f"{content}|{prev}".encode(),
                                       hashlib.sha256).hexdigest(),
                   chain_seq=seq, signed=True, source_file="t.jsonl", source_line=seq,
                   source_shape="admin_db_jsonl")
        rows.append(row)
        prev = content
    return pa.Table.from_pylist(rows, schema=ADMIN_SCHEMA)


def test_iso_millis_is_to_iso_string():
    assert iso_millis(T0) == "2026-05-11T08:00:03.212Z"
    assert iso_millis(T0.replace(microsecond=0)) == "2026-05-11T08:00:03.000Z"


def test_service_order_is_the_first_candidate():
    built = ('{"rls_mode": "zone_scoped", "rls_zone_guc": "z1", "operator": "op",'
             ' "change_kind": "update", "changed_fields": ["a"], "secret_rotated": true}')
    stored = dumps(loads(built))
    assert stored.startswith('{"operator"')  # jsonb: shortest keys first
    assert next(candidate_payloads(loads(stored))) == stringify(loads(built))


def test_another_writers_order_is_found_by_trying_orders():
    built = '{"kind": "x", "approver": "a", "ticket": "t", "level": 2, "zeta": null}'
    row = chain_rows([built]).to_pylist()[0]
    head, tail = preimage_parts(row)
    found = find_payload(row["payload_json"], head, tail, row["content_sha256"])
    assert found.matched and 2 < found.tried <= 120


def test_intact_chain_with_nested_orders_and_the_global_chain():
    payloads = ['{"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": 1, "7": "seven"}', None, "{}",
                '{"dcr_registration_disabled": true, "dcr_shutdown_mode": "soft"}']
    report = verify_admin_table(chain_rows(payloads, zone=None), key=KEY)
    assert report.status == "intact", report.findings
    assert [z.zone_id for z in report.zones] == ["(global)"]


def test_no_order_reproduces_an_edited_payload_content_mismatch():
    table = chain_rows(['{"b": 1, "a": 2}', '{"c": 3}'])
    edited = table.set_column(ADMIN_SCHEMA.get_field_index("payload_json"), "payload_json",
                              pa.array(['{"a": 2, "b": 9}', '{"c": 3}']))
    report = verify_admin_table(edited, key=KEY)
    [finding] = [f for f in report.findings if f.fails]
    assert (finding.kind, finding.chain_seq, finding.source) == ("content_mismatch", 1,
                                                                 "t.jsonl:1")


def test_past_the_budget_unverifiable_while_hmac_and_links_still_checked():
    keys = "jihgfedcb"  # 9 keys built in an order no rule gives: 9! > the budget
    built = "{" + ", ".join(f'"{k}{k}": {i}' for i, k in enumerate(keys)) + "}"
    assert order_space(loads(built)) > ORDER_BUDGET
    table = chain_rows([built, '{"x": 1}'])
    report = verify_admin_table(table, key=KEY)
    assert report.status == "partial"
    [finding] = report.findings
    assert finding.kind == "unverifiable" and finding.reason == "key_order_not_found"
    assert f"{ORDER_BUDGET:,}" in finding.detail
    assert report.checks["hmac"].startswith("checked for 2 admin change(s)")
    # an HMAC that no longer matches is still caught on that row
    forged = table.set_column(ADMIN_SCHEMA.get_field_index("chain_hmac"), "chain_hmac",
                              pa.array(["0" * 64, table.column("chain_hmac")[1].as_py()]))
    kinds = {(f.kind, f.chain_seq) for f in verify_admin_table(forged, key=KEY).findings
             if f.fails}
    assert ("hmac_mismatch", 1) in kinds


def test_same_findings_without_the_c_kernel(monkeypatch):
    """The admin chain streams through its own hasher: without the C kernel its HMACs are
    computed in Python, with the same findings."""
    from caracal_forensics.chain import native

    table = chain_rows(['{"b": 1, "a": 2}', None, '{"c": [1, {"y": 2, "x": 3}]}', "{}"])
    forged = table.set_column(ADMIN_SCHEMA.get_field_index("chain_hmac"), "chain_hmac",
                              pa.array([*table.column("chain_hmac").to_pylist()[:2], "0" * 64,
                                        table.column("chain_hmac")[3].as_py()]))
    with_kernel = verify_admin_table(forged, key=KEY)
    monkeypatch.setattr(native, "AVAILABLE", False)
    without = verify_admin_table(forged, key=KEY)
    assert [(f.kind, f.chain_seq, f.detail) for f in without.findings] == \
        [(f.kind, f.chain_seq, f.detail) for f in with_kernel.findings]
    assert ("hmac_mismatch", 3) in {(f.kind, f.chain_seq) for f in without.findings}


_KEY = st.text(alphabet="abcxyz_019", min_size=1, max_size=4)
# jsonb holds neither NUL (the writer strips it) nor a lone surrogate
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=3)
_LEAF = st.one_of(st.none(), st.booleans(), _TEXT,
                  st.sampled_from(["1e21", "1.5e-7", "-0", "2.50", "7"]).map(JsonbNumber))
_PAYLOAD = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_KEY, inner, max_size=4)),
    max_leaves=7).filter(lambda v: order_space(v) <= ORDER_BUDGET)


@settings(max_examples=60, deadline=None)
@given(_PAYLOAD)
def test_the_search_finds_any_order_the_writer_used(payload):
    """However the service ordered its keys (a dict's insertion order here), the order is
    found from what jsonb stored, within the budget."""
    row = {"id": "x", "request_id": None, "actor_id": "a", "actor_name": "é",
           "actor_scope": "", "action": "PUT /x", "method": "PUT", "path": "/x", "zone_id": None,
           "entity_type": "t", "entity_id": None, "status_code": 200, "occurred_at": T0}
    head, tail = preimage_parts(row)
    built = stringify(payload)
    stored = hashlib.sha256((head + built + tail).encode()).hexdigest()
    found = find_payload(dumps(payload), head, tail, stored)
    assert found.matched and found.payload == built
