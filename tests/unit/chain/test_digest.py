"""The content hash and HMAC: the Python reference against PostgreSQL's vectors, and the
DuckDB SQL path against the Python reference; plus the HMAC key handling."""

from __future__ import annotations

import csv
import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.verify import EXPORT, KEY, KEY_HEX, event, table

from caracal_forensics import keys
from caracal_forensics.chain import digest, native
from caracal_forensics.errors import HmacKeyError
from caracal_forensics.model import HASH_FIELDS, JSONB_FIELDS


def _csv_rows() -> list[dict]:
    """db.csv parsed with nothing but the csv module: jsonb columns are jsonb text already."""
    with open(EXPORT / "db.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for name in HASH_FIELDS:
            # COPY ... CSV writes NULL as an unquoted empty field; the vectors use none there
            # that matters except jsonb NULL, which must hash as "null".
            if row[name] == "" and name in JSONB_FIELDS:
                row[name] = None
        row["occurred_at"] = datetime.fromisoformat(row["occurred_at"].replace("+00", "+00:00"))
    return rows


def test_reference_reproduces_postgresql_vectors() -> None:
    rows = _csv_rows()
    assert len(rows) == 240
    for row in rows:
        content = digest.content_sha256(row)
        assert content == row["content_sha256"], row["id"]
        prev = row["prev_content_sha256"] or None
        assert digest.chain_hmac(KEY, content, prev) == row["chain_hmac"], row["id"]


def test_preimage_layout() -> None:
    row = event(1, determining_policies_json=None, request_id=None,
                occurred_at=datetime(2026, 5, 11, 8, 0, 3, 212365, tzinfo=timezone.utc))
    pre = digest.content_preimage(row)
    parts = pre.split(b"\x1f")
    assert len(parts) == 13  # 12 fields each followed by US, then N with none after it
    assert parts[HASH_FIELDS.index("request_id")] == b""
    assert parts[HASH_FIELDS.index("determining_policies_json")] == b"null"
    assert parts[-1] == b"1778486403212365000"
    assert pre.endswith(b"000")


def test_empty_jsonb_text_hashes_as_null() -> None:
    """OCSF writes "" for a NULL jsonb; "" is never jsonb text, so it means NULL."""
    a = event(1, metadata_json=None)
    b = event(1, metadata_json="")
    assert digest.content_sha256(a) == digest.content_sha256(b)


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        (datetime(1970, 1, 1, tzinfo=timezone.utc), 0),
        (datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc), 1000),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), -1000),
        (datetime(2026, 5, 11, 8, 0, 3, 212365), 1778486403212365000),  # naive = UTC
        (datetime(2026, 5, 11, 10, 0, 3, 212365, tzinfo=timezone(timedelta(hours=2))),
         1778486403212365000),
        (1778486403212365, 1778486403212365000),
    ],
)
def test_occurred_at_nanos(value, nanos) -> None:
    assert digest.occurred_at_nanos(value) == nanos


@pytest.mark.parametrize("length", [32, 64, 65, 100])
def test_hmac_pads_match_hmac_module(length: int) -> None:
    key = bytes((i * 7 + 3) % 256 for i in range(length))
    ipad, opad = digest.hmac_pads(key)
    msg = b"abc|def"
    inner = hashlib.sha256(ipad + msg).digest()
    assert hashlib.sha256(opad + inner).hexdigest() == hmac.new(key, msg, "sha256").hexdigest()


# --- SQL path == Python reference -----------------------------------------------------

_text = st.one_of(st.none(), st.text(max_size=12))
_jsonb = st.one_of(st.none(), st.sampled_from(["[]", "{}", "null", '{"a": "caf\u00e9"}',
                                               '[{"policy": "p\\n"}]', '"\u2028x"', "1.50"]))
_time = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2400, 1, 1),
                     timezones=st.just(timezone.utc))


@st.composite
def _rows(draw) -> dict:
    row = event(draw(st.integers(0, 10_000)))
    for name in HASH_FIELDS:
        if name in JSONB_FIELDS:
            row[name] = draw(_jsonb)
        elif name in ("id", "zone_id"):
            row[name] = draw(st.text(min_size=1, max_size=12))
        else:
            row[name] = draw(_text)
    row["occurred_at"] = draw(_time)
    return row


def _sql_digests(rows: list[dict], key: bytes) -> list[tuple[str, str]]:
    con = duckdb.connect()
    con.register("events", table(rows))
    ipad, opad = digest.hmac_pads(key)
    content = digest.content_sha256_sql()
    return con.execute(
        f"SELECT c, {digest.chain_hmac_sql('c', 'prev_content_sha256')} FROM "
        f"(SELECT *, {content} AS c FROM events) ORDER BY source_line",
        {"ipad": ipad, "opad": opad},
    ).fetchall()


@settings(max_examples=60, deadline=None)
@given(st.lists(_rows(), min_size=1, max_size=8), st.binary(min_size=32, max_size=80))
def test_sql_equals_reference(rows: list[dict], key: bytes) -> None:
    for i, row in enumerate(rows):
        row["source_line"] = i
        row["prev_content_sha256"] = None if i == 0 else "ab" * 32
    got = _sql_digests(rows, key)
    for row, (content, mac) in zip(rows, got, strict=True):
        want = digest.content_sha256(row)
        assert content == want
        assert mac == digest.chain_hmac(key, want, row["prev_content_sha256"])


# --- microsecond recovery ---------------------------------------------------------------


def _truncate(micros: int, digits: int) -> int:
    step = 10 ** (6 - digits)
    return micros - micros % step


@pytest.mark.parametrize("micros", [1778486403212365, 1778486403212000, 1778486403212999, 1001])
def test_recover_micros_finds_the_value(micros: int) -> None:
    row = event(3, occurred_at=micros)
    target = digest.content_sha256(row)
    head = digest.preimage_head(row)
    assert digest.recover_micros(head, _truncate(micros, 3), 3, target) == micros


@pytest.mark.parametrize("digits", [0, 4, 5, 6])
def test_recover_micros_other_precisions(digits: int) -> None:
    micros = 1778486403212365
    row = event(3, occurred_at=micros)
    target = digest.content_sha256(row)
    found = digest.recover_micros(digest.preimage_head(row), _truncate(micros, digits), digits,
                                  target) if digits != 0 else None
    if digits == 0:  # a million candidates: check the hint path instead of brute force
        found = digest.recover_micros(digest.preimage_head(row), _truncate(micros, 0), 0,
                                      target, hint=micros)
    assert found == micros


def test_recover_micros_before_the_epoch() -> None:
    micros = -1_000_123_457
    row = event(3, occurred_at=micros)
    target = digest.content_sha256(row)
    truncated = (micros // 1000) * 1000
    assert digest.recover_micros(digest.preimage_head(row), truncated, 3, target) == micros


def test_recover_micros_none_when_content_differs() -> None:
    row = event(3)
    target = digest.content_sha256(dict(row, decision="deny" if row["decision"] != "deny"
                                        else "allow"))
    micros = digest.occurred_at_micros(row["occurred_at"])
    assert digest.recover_micros(digest.preimage_head(row), _truncate(micros, 3), 3,
                                 target) is None


def test_recover_micros_uses_hint_first() -> None:
    micros = 1778486403212365
    row = event(3, occurred_at=micros)
    target = digest.content_sha256(row)
    head = digest.preimage_head(row)
    assert digest.recover_micros(head, _truncate(micros, 3), 3, target, hint=micros) == micros
    # a hint outside the millisecond is ignored
    assert digest.recover_micros(head, _truncate(micros, 3), 3, target, hint=5) == micros


# --- the key ----------------------------------------------------------------------------


def test_parse_key_strips_whitespace() -> None:
    assert keys.parse_key(f"  {KEY_HEX}\n", origin="x") == KEY
    assert keys.parse_key(KEY_HEX.upper().encode(), origin="x") == KEY


def test_two_keys_in_one_file_are_refused(tmp_path) -> None:
    path = tmp_path / "key.hex"
    path.write_text(f"{KEY_HEX}\n{'ab' * 32}\n", encoding="ascii")
    with pytest.raises(HmacKeyError, match="2 pieces of hex .* one hex key is expected") as info:
        keys.load_key(path)
    assert KEY_HEX[:8] not in str(info.value) and "abab" not in str(info.value)
    with pytest.raises(HmacKeyError, match="whitespace"):
        keys.parse_key(f"{KEY_HEX[:32]} {KEY_HEX[32:]}", origin="x")


@pytest.mark.parametrize("text", ["zz" * 32, KEY_HEX[:-1], "", "   ", KEY_HEX[:62]])
def test_bad_keys_are_usage_errors_without_the_key(text: str) -> None:
    with pytest.raises(HmacKeyError) as info:
        keys.parse_key(text, origin="$AUDIT_HMAC_KEY")
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "$AUDIT_HMAC_KEY" in message
    if text.strip():
        assert text.strip() not in message
        assert text.strip()[:8] not in message


def test_short_key_rejected() -> None:
    with pytest.raises(HmacKeyError, match="16 bytes"):
        keys.parse_key("ab" * 16, origin="x")


def test_load_key_precedence(tmp_path) -> None:
    other = "cd" * 32
    key_file = tmp_path / "k.hex"
    key_file.write_text(KEY_HEX + "\n")
    env_file = tmp_path / "env.hex"
    env_file.write_text(other)
    env = {"AUDIT_HMAC_KEY": other, "AUDIT_HMAC_KEY_FILE": str(env_file)}
    assert keys.load_key(key_file, environ=env) == KEY
    assert keys.load_key(None, environ={"AUDIT_HMAC_KEY": KEY_HEX,
                                        "AUDIT_HMAC_KEY_FILE": str(env_file)}) == KEY
    assert keys.load_key(None, environ={"AUDIT_HMAC_KEY_FILE": str(key_file)}) == KEY
    assert keys.load_key(None, environ={}) is None
    assert keys.load_key(None, environ={"AUDIT_HMAC_KEY": "  "}) is None


def test_missing_key_file(tmp_path) -> None:
    with pytest.raises(HmacKeyError, match="cannot read"):
        keys.load_key(tmp_path / "nope", environ={})


def test_fingerprint() -> None:
    fp = keys.key_fingerprint(KEY)
    assert fp == "sha256:" + hashlib.sha256(KEY).hexdigest()[:16]
    assert KEY_HEX not in fp and KEY_HEX[:16] not in fp
    assert keys.key_fingerprint(None) is None


def test_coerce_key() -> None:
    assert keys.coerce_key(KEY_HEX) == KEY
    assert keys.coerce_key(KEY) == KEY
    assert keys.coerce_key(None) is None
    with pytest.raises(HmacKeyError):
        keys.coerce_key(b"short")


# --- the optional C kernel == the Python reference ----------------------------------------

native_only = pytest.mark.skipif(not native.AVAILABLE, reason="C kernel not built")


@native_only
@settings(max_examples=60, deadline=None)
@given(st.lists(_rows(), min_size=0, max_size=12), st.binary(min_size=32, max_size=80),
       st.integers(0, 3))
def test_native_equals_reference(rows: list[dict], key: bytes, cut: int) -> None:
    import pyarrow as pa

    for row in rows:
        row["prev_content_sha256"] = None if len(row["id"]) % 2 else "ab" * 32
    tbl = table(rows).slice(min(cut, len(rows)))  # a non-zero array offset too
    rows = rows[min(cut, len(rows)):]
    got = native.content_hex(tbl)
    assert got.to_pylist() == [digest.content_sha256(r) for r in rows]
    macs = native.hmac_hex(key, got, tbl.column("prev_content_sha256"))
    assert macs.to_pylist() == [digest.chain_hmac(key, digest.content_sha256(r),
                                                  r["prev_content_sha256"]) for r in rows]
    large = pa.array([r["id"] for r in rows], pa.large_string())
    assert native.sha256_hex(large).to_pylist() == [
        hashlib.sha256(r["id"].encode()).hexdigest() for r in rows]


@native_only
def test_native_nulls() -> None:
    import pyarrow as pa

    row = event(1, occurred_at=None)
    assert native.content_hex(table([row])).to_pylist() == [None]
    content = pa.array([None, "ab"], pa.string())
    prev = pa.array(["x", None], pa.string())
    assert native.hmac_hex(KEY, content, prev).to_pylist() == [
        None, digest.chain_hmac(KEY, "ab", None)]


@native_only
@pytest.mark.parametrize("micros", [1778486403212365, 1778486403212000, 1778486403212999])
def test_native_recovery_equals_reference(micros: int) -> None:
    from caracal_forensics.chain.recovery import _native_recover

    row = event(3, occurred_at=micros)
    target = digest.content_sha256(row)
    head = digest.preimage_head(row)
    for digits in (3, 4, 5):
        stored = _truncate(micros, digits)
        assert _native_recover(head, stored, digits, target) == micros
        assert digest.recover_micros(head, stored, digits, target) == micros
    assert _native_recover(head, _truncate(micros, 3), 3, "00" * 32) is None


def test_native_and_sql_paths_give_the_same_report(monkeypatch) -> None:
    """The whole verification, with and without the kernel, on a tampered mixed export."""
    from support.verify import as_cli, as_ocsf, edited, events, renumber, verify_rows

    rows = events(60, zones=("a", "b", "c"))
    mixed = rows[:20] + as_ocsf(rows[20:40]) + as_cli(rows[40:])
    mixed = edited(mixed, 5, decision="x")
    mixed = edited(mixed, 25, request_id="y")
    mixed = edited(mixed, 45, chain_hmac="0" * 64)
    del mixed[33]
    mixed.append(dict(mixed[10], source_line=999))
    reports = []
    for flag in (True, False):
        monkeypatch.setattr(native, "AVAILABLE", flag and native._native is not None)
        report = verify_rows(renumber(mixed))
        reports.append([(f.kind, f.event_id, f.chain_seq, f.source, f.detail)
                        for f in report.findings])
    assert reports[0] == reports[1]
    assert {k for k, *_ in reports[0]} >= {"content_mismatch", "hmac_mismatch",
                                            "sequence_gap"}


def test_the_native_kernel_is_built_by_the_install() -> None:
    """`make test` builds the C kernel from a clean clone; losing it silently would hide
    a broken build behind the (slower) fallback."""
    from caracal_forensics.chain import native

    assert native._native is not None
