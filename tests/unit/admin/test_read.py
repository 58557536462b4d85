"""The admin change readers: every shape detected by content, read into ADMIN_SCHEMA, and
kept apart from the event commands when both chains sit in one directory."""

from __future__ import annotations

import shutil

import pytest

from caracal_forensics.admin import read_admin
from caracal_forensics.admin.model import ADMIN_SCHEMA, GLOBAL_CHAIN, TABLE_COLUMNS
from caracal_forensics.errors import InputError
from caracal_forensics.sources import detect_shape, scan
from tests.support.paths import VECTORS

UPSTREAM_ADMIN = VECTORS / "upstream" / "admin"


def test_table_columns_in_table_order():
    assert len(TABLE_COLUMNS) == 18
    assert TABLE_COLUMNS[:14] == (
        "id", "request_id", "actor_id", "actor_name", "actor_scope", "action", "method",
        "path", "zone_id", "entity_type", "entity_id", "status_code", "payload_json",
        "occurred_at")
    assert ADMIN_SCHEMA.field("status_code").type.bit_width == 32
    assert "(" in GLOBAL_CHAIN


@pytest.mark.parametrize("name, shape", [
    ("admin.csv", "admin_db_csv"),
    ("admin.jsonl", "admin_db_jsonl"),
    ("admin-audit-zone-alpha.json", "admin_api_json"),
])
def test_detected_by_content(name, shape):
    assert detect_shape(str(UPSTREAM_ADMIN / name)) == shape


def test_dumps_read_the_same_rows():
    csv_rows = read_admin(str(UPSTREAM_ADMIN / "admin.csv"))
    json_rows = read_admin(str(UPSTREAM_ADMIN / "admin.jsonl"))
    assert csv_rows.num_rows == json_rows.num_rows == 80
    keep = list(TABLE_COLUMNS)
    by_id = lambda t: sorted(t.select(keep).to_pylist(), key=lambda r: r["id"])  # noqa: E731
    assert by_id(csv_rows) == by_id(json_rows)
    assert None in csv_rows.column("zone_id").to_pylist()  # the global chain


def test_api_page_zone_from_the_file_name():
    table = read_admin(str(UPSTREAM_ADMIN / "admin-audit-zone-alpha.json"))
    assert set(table.column("zone_id").to_pylist()) == {"zone-alpha"}
    assert table.column("content_sha256").null_count == table.num_rows
    assert all("chain_hmac" in a for a in table.column("absent_fields").to_pylist())


def test_api_csv(tmp_path):
    path = tmp_path / "admin-audit-zone-x.csv"
    path.write_bytes(
        b"id,request_id,actor_id,actor_name,actor_scope,action,method,path,entity_type,"
        b"entity_id,status_code,occurred_at,chain_seq,signed,change_kind,changed_fields\r\n"
        b"a1,r1,adm-1,alice,control,PUT /x,PUT,/x,grants,g-1,200,2026-05-11T08:00:03.212Z,"
        b"1,true,update,scopes rules.allow\r\n"
        b"a2,r2,adm-1,'-bob,control,PUT /x,PUT,/x,grants,g-1,403,2026-05-11T08:00:04.000Z,"
        b"3,false,,\r\n")
    assert detect_shape(str(path)) == "admin_api_csv"
    rows = read_admin(str(path)).to_pylist()
    assert [r["chain_seq"] for r in rows] == [1, 3]
    assert rows[1]["actor_name"] == "-bob" and rows[1]["signed"] is False
    assert rows[0]["changed_fields"] == "scopes rules.allow" and rows[0]["zone_id"] == "zone-x"
    assert rows[0]["source_line"] == 2


def test_event_commands_leave_admin_files_in_a_directory_alone(tmp_path):
    shutil.copytree(VECTORS / "upstream" / "api", tmp_path / "up" / "api")
    shutil.copytree(UPSTREAM_ADMIN, tmp_path / "up" / "admin")
    inputs = scan([str(tmp_path / "up")], fingerprint=False)
    assert inputs and not any(i.holds_admin for i in inputs)
    with pytest.raises(InputError, match="admin changes"):
        scan([str(tmp_path / "up" / "admin" / "admin.csv")], fingerprint=False)
    admin = read_admin(str(tmp_path / "up"))
    assert admin.num_rows == 223


def test_bad_row_names_file_and_line(tmp_path):
    lines = (UPSTREAM_ADMIN / "admin.jsonl").read_text().splitlines()
    lines[4] = lines[4].replace('"status_code":', '"status_code":"x",  "was":')
    path = tmp_path / "admin.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"admin\.jsonl: line 5: status_code"):
        read_admin(str(path))
