"""The admin chain fixtures are what a real PostgreSQL stores and dumps: the generator
(fixtures/make_admin_fixtures.py) hands the server each payload as the writer does
(JSON.stringify text as jsonb), so jsonb's key order and numbers are the server's; the
committed files are byte for byte what it writes, and every shape reads and verifies."""

from __future__ import annotations

import importlib.util
import json

import pytest
from support.paths import FIXTURE_KEY_FILE, FIXTURES

from caracal_forensics.admin import read_admin
from caracal_forensics.admin.verify import verify_admin_table
from caracal_forensics.keys import load_key

ADMIN = FIXTURES / "admin"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_admin_fixtures", FIXTURES / "make_admin_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def generated(pg, tmp_path_factory):
    out = tmp_path_factory.mktemp("admin")
    name = pg.create_database("admin_fixtures")
    with pg.connect(dbname=name) as conn:
        files = _generator().write_all(conn, str(out))
        with conn.cursor() as cur:
            cur.execute("SELECT payload_json::text FROM admin_audit_events "
                        "WHERE payload_json ? 'n'")
            (stored,) = cur.fetchone()
    return out, files, stored


def test_committed_fixtures_are_what_the_server_dumps(generated):
    out, files, _ = generated
    assert sorted(p.name for p in ADMIN.iterdir()) == files
    for name in files:
        assert (out / name).read_bytes() == (ADMIN / name).read_bytes(), name


def test_the_server_reordered_the_keys_and_respelled_the_numbers(generated):
    """jsonb lost the service's order and JavaScript's spelling: what the search undoes."""
    _, _, stored = generated
    assert stored.startswith('{"n": 1000000000000000000000, ')
    assert '"small": 0.00000015' in stored and '"neg0": 0' in stored


@pytest.mark.parametrize("name", ["admin.csv", "admin.jsonl"])
def test_every_signed_chain_verifies_intact(generated, name):
    out, _, _ = generated
    table = read_admin(str(out / name))
    report = verify_admin_table(table, key=load_key(str(FIXTURE_KEY_FILE)))
    statuses = {z.zone_id: z.status for z in report.zones}
    assert statuses == {"(global)": "intact", "zone-alpha": "intact", "zone-beta": "intact",
                        "zone:prod/eu-1": "intact", "zone-nokey": "partial"}
    assert not [f for f in report.findings if f.fails]
    assert report.checks["content"] == f"recomputed and compared for {table.num_rows} of " \
        f"{table.num_rows} row(s)"


def test_api_pages_hold_the_rows_newest_first(generated):
    out, _, _ = generated
    page = json.loads((out / "admin-audit-zone-alpha.json").read_text(encoding="utf-8"))
    seqs = [int(item["chain_seq"]) for item in page["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 12
    assert all(isinstance(item["chain_seq"], str) for item in page["items"])
    redacted = [i for i in page["items"] if i["payload_json"] and "token" in i["payload_json"]]
    assert redacted and all(i["payload_json"]["token"] == "[redacted]" for i in redacted)
