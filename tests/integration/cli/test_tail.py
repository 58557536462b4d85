"""``audit tail``: filters against PostgreSQL on every shape, the --json record, --query,
the seed's jq recipes, the table, every flag and its errors, and predicate pushdown."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cli import run_cli
from support.tail import (
    EXPORT,
    MILLISECOND_SHAPES,
    RECIPES,
    SHAPES,
    cli_filter_args,
    load_pg,
    pg_tail_ids,
)

import caracal_forensics as cf
from caracal_forensics.errors import UsageError
from caracal_forensics.filters import Filters, parse_time, select_sql
from caracal_forensics.render.records import RECORD_FIELDS

T50 = "2026-05-11T08:03:18.460919Z"  # the 50th event's occurred_at, exactly
T121 = "2026-05-11T10:08:06.926189+02:00"  # the 121st event's, with an offset

CASES: dict[str, dict] = {
    "default": {},
    "all": {"limit": 0},
    "one": {"limit": 1},
    "deny": {"decision": "deny", "limit": 0},
    "allow_uppercase_flag": {"decision": "ALLOW", "limit": 0},
    "event_type": {"event_type": "token_exchange", "limit": 0},
    "event_types": {"event_type": ["challenge_invalid", "challenge_cooldown"], "limit": 0},
    "zone": {"zone": "zone-alpha", "limit": 0},
    "zones": {"zone": ["zone:prod/eu-1", "zone-gamma"], "limit": 0},
    "since_inclusive": {"since": T50, "limit": 0},
    "until_exclusive": {"until": T50, "limit": 0},
    "window_offset": {"since": T50, "until": T121, "limit": 0},
    "since_milliseconds": {"since": "2026-05-11T08:03:18.460Z", "limit": 0},
    "since_naive_is_utc": {"since": "2026-05-11 08:05:00", "limit": 0},
    "since_compact_offset": {"since": "2026-05-11T13:35:00+0530", "limit": 0},
    "bare_dates": {"since": "2026-05-11", "until": "2026-05-12", "limit": 0},
    "until_bare_date_empty": {"until": "2026-05-11", "limit": 0},
    "request": {"request_id": "req-000027", "limit": 0},
    "request_unknown": {"request_id": "req-nope"},
    "event_type_unknown": {"event_type": "no_such_type"},
    "deny_zone_type_limit": {
        "decision": "deny",
        "zone": "zone-beta",
        "event_type": "token_exchange",
        "limit": 5,
    },
    "allow_zones_window": {
        "decision": "allow",
        "zone": ["zone-alpha", "zone-beta"],
        "since": T50,
        "until": T121,
        "limit": 0,
    },
    "deny_since_newest": {"decision": "deny", "since": T50, "limit": 7},
    "request_zone_deny": {"request_id": "req-000027", "zone": "zone-beta", "decision": "deny"},
    "step_up_types_zone_newest": {
        "event_type": ["step_up_issued", "step_up_decided", "step_up_consumed"],
        "zone": "zone-gamma",
        "limit": 3,
    },
}


@pytest.fixture(scope="module")
def pgconn(pg):
    name = load_pg(pg, EXPORT / "db.csv")
    with pg.connect(dbname=name) as conn:
        yield conn


@pytest.fixture(scope="module")
def canonical(tmp_path_factory) -> Path:
    """A canonical snapshot of db.csv, written by ingest."""
    out = tmp_path_factory.mktemp("canonical") / "snap"
    result = run_cli("ingest", "--source", EXPORT / "db.csv", "--out", out)
    assert result.code == 0, result.err
    return out


@pytest.fixture(scope="module")
def snaps(canonical):
    opened = {name: cf.open(str(path)) for name, path in SHAPES.items()}
    opened["snapshot"] = cf.open(str(canonical))
    return opened


ALL_SHAPES = [*SHAPES, "snapshot"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_filters_match_postgresql(snaps, pgconn, shape, case):
    filters = CASES[case]
    expected = pg_tail_ids(pgconn, filters, milliseconds=shape in MILLISECOND_SHAPES)
    got = snaps[shape].tail(**filters)["id"].to_list()
    assert got == expected
    if case not in ("request_unknown", "event_type_unknown", "until_bare_date_empty"):
        assert expected, f"case {case} selects nothing: not a useful comparison"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", ["db_csv", "ocsf", "cli_jsonl"])
def test_cli_flags_match_postgresql(pgconn, shape, case):
    filters = CASES[case]
    expected = pg_tail_ids(pgconn, filters, milliseconds=shape in MILLISECOND_SHAPES)
    result = run_cli(
        "audit", "tail", "--source", SHAPES[shape], "--json", *cli_filter_args(filters)
    )
    assert result.code == 0, result.err
    assert [json.loads(line)["id"] for line in result.lines] == expected


def _mixed_case_csv(tmp_path: Path) -> Path:
    """db.csv with decisions written DENY / Allow / deny: compare must ignore case."""
    lines = (EXPORT / "db.csv").read_text(encoding="utf-8").split("\n")
    pattern = re.compile(r"^((?:[^,\"]*,){4})(allow|deny),")
    spellings = {"allow": ["allow", "Allow", "ALLOW"], "deny": ["deny", "DENY", "Deny"]}
    out = [lines[0]]
    for index, line in enumerate(lines[1:]):
        match = pattern.match(line)
        if match:
            word = spellings[match.group(2)][index % 3]
            line = match.group(1) + word + "," + line[match.end() :]
        out.append(line)
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(out), encoding="utf-8")
    return path


@pytest.mark.parametrize("decision", ["deny", "DENY", "allow", "Allow"])
def test_decision_is_case_insensitive_like_postgresql(pg, tmp_path, decision):
    path = _mixed_case_csv(tmp_path)
    name = load_pg(pg, path)
    with pg.connect(dbname=name) as conn:
        assert conn.execute("SELECT count(DISTINCT decision) FROM audit_events").fetchone()[0] == 6
        expected = pg_tail_ids(conn, {"decision": decision, "limit": 0})
    got = cf.open(str(path)).tail(decision=decision, limit=0)["id"].to_list()
    assert got == expected and len(got) in (57, 183)


# --- the --json record --------------------------------------------------------------


def _json_lines(source, *args) -> list[str]:
    result = run_cli("audit", "tail", "--source", source, "--json", "--limit", "0", *args)
    assert result.code == 0, result.err
    return result.lines


def test_json_reproduces_the_seed_cli_output_byte_for_byte():
    ours = _json_lines(SHAPES["cli_jsonl"])
    theirs = [line for line in (EXPORT / "cli.jsonl").read_text("utf-8").split("\n") if line]
    assert sorted(ours) == sorted(theirs)
    times = [json.loads(line)["occurred_at"] for line in ours]
    assert times == sorted(times)  # oldest first


@pytest.mark.parametrize("shape", ["db_csv", "db_jsonl", "search"])
def test_json_is_the_same_record_from_every_shape(shape):
    """Minus content_sha256 (which cli.jsonl does not carry), every shape prints the
    seed's lines: same fields, same order, number literals and jsonb text as stored."""
    theirs = sorted(line for line in (EXPORT / "cli.jsonl").read_text("utf-8").split("\n") if line)
    ours = _json_lines(SHAPES[shape])
    stripped = sorted(re.sub(r', "content_sha256" : "[0-9a-f]{64}"', "", line) for line in ours)
    assert stripped == theirs


def test_json_fields_and_time_format_per_shape():
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for shape, path in SHAPES.items():
        for line in _json_lines(path):
            record = json.loads(line)
            assert pattern.match(record["occurred_at"]), (shape, record["occurred_at"])
            expected = [
                f for f in RECORD_FIELDS if not (shape == "cli_jsonl" and f == "content_sha256")
            ]
            assert list(record) == expected, shape
            if shape in MILLISECOND_SHAPES:
                assert record["occurred_at"].endswith("000Z")


def test_json_keeps_number_literals_and_nested_json():
    lines = _json_lines(SHAPES["db_csv"])
    text = "\n".join(lines)
    for literal in (
        '"latency_ms": 12.50',
        "0.000000001",
        "12345678901234567890123",
        '"ключ": 1.50',
    ):
        assert literal in text
    record = json.loads(next(line for line in lines if '"latency_ms": 12.50' in line))
    assert isinstance(record["metadata"], dict)
    assert isinstance(record["determining_policies"], (list, type(None)))


def test_json_leaves_out_fields_the_source_lacks(tmp_path):
    full = json.loads((EXPORT / "cli.jsonl").read_text("utf-8").split("\n")[0])
    bare = {k: v for k, v in full.items() if k not in ("evaluation_status", "chain_seq")}
    path = tmp_path / "bare.jsonl"
    path.write_text(json.dumps(bare) + "\n", encoding="utf-8")
    (record,) = [json.loads(line) for line in _json_lines(path)]
    assert "evaluation_status" not in record and "chain_seq" not in record
    assert "content_sha256" not in record
    assert record["chain_hmac"] == full["chain_hmac"]
    assert record["metadata"] == full["metadata"]


def test_json_null_metadata_of_search_page_rows_that_omit_it():
    lines = _json_lines(SHAPES["search"])
    records = [json.loads(line) for line in lines]
    assert all("metadata" in r for r in records)
    cli = {json.loads(line)["id"]: json.loads(line) for line in _json_lines(SHAPES["cli_jsonl"])}
    for record in records:
        assert record["metadata"] == cli[record["id"]]["metadata"]


# --- --query ------------------------------------------------------------------------


def _query(source, expression, *args) -> list[str]:
    result = run_cli(
        "audit", "tail", "--source", source, "--limit", "0", "--query", expression, *args
    )
    assert result.code == 0, result.err
    return result.lines


def test_query_true_prints_the_event_line():
    assert _query(SHAPES["db_csv"], "decision == 'deny'") == _json_lines(
        SHAPES["db_csv"], "--decision", "deny"
    )


def test_query_projection_and_falsy_results():
    ids = _query(SHAPES["db_csv"], "id")
    assert len(ids) == 240 and all(re.match(r'^"ev-\d+"$', i) for i in ids)
    assert _query(SHAPES["db_csv"], "metadata.no_such_key") == []
    assert _query(SHAPES["db_csv"], "diagnostics[?step_up_required]")  # non-empty lists only
    denied = _query(SHAPES["db_csv"], "decision == 'deny' && {id: id}")
    assert len(denied) == 57 and all(json.loads(d).keys() == {"id"} for d in denied)


def test_query_keeps_number_literals():
    lines = _query(
        SHAPES["db_csv"], "metadata.latency_ms == `12.5` && {id: id, l: metadata.latency_ms}"
    )
    assert lines and all(line.endswith('"l": 12.50}') for line in lines)


def test_query_combines_with_filters():
    assert _query(SHAPES["db_csv"], "id", "--decision", "deny", "--zone", "zone-beta") == [
        json.dumps(i)
        for i in cf.open(str(SHAPES["db_csv"]))
        .tail(decision="deny", zone="zone-beta", limit=0)["id"]
        .to_list()
    ]


def test_query_errors_name_the_flag():
    bad = run_cli("audit", "tail", "-s", SHAPES["db_csv"], "--query", "decision ==")
    assert bad.code == 2 and "--query" in bad.err and "JMESPath" in bad.err
    failing = run_cli("audit", "tail", "-s", SHAPES["db_csv"], "--query", "abs(id)")
    assert failing.code == 2 and "--query" in failing.err and "ev-" in failing.err
    ordering = run_cli("audit", "tail", "-s", SHAPES["db_csv"], "--query", "id < chain_seq")
    assert ordering.code == 2 and "--query" in ordering.err
    assert "Traceback" not in ordering.err and len(ordering.err.strip().splitlines()) == 1


# --- the seed's jq recipes ----------------------------------------------------------

JQ = shutil.which("jq") or "/usr/bin/jq"


def _recipes() -> list[dict]:
    return json.loads(RECIPES.read_text("utf-8"))["recipes"]


@pytest.mark.skipif(not Path(JQ).exists(), reason="jq is not installed")
@pytest.mark.parametrize("recipe", [r["name"] for r in _recipes()])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_seed_jq_recipes_equal_query(recipe, shape):
    spec = next(r for r in _recipes() if r["name"] == recipe)
    app = "app-0022"
    jq_program = spec["jq"].replace("APP", app)
    expression = spec["jmespath"].replace("APP", app)
    tail_json = "\n".join(_json_lines(SHAPES[shape])) + "\n"
    jq = subprocess.run(
        [JQ, "-c", jq_program], input=tail_json, capture_output=True, text=True, check=True
    )
    by_jq = [json.loads(line) for line in jq.stdout.split("\n") if line]
    by_query = [json.loads(line) for line in _query(SHAPES[shape], expression)]
    assert by_query == by_jq
    assert by_jq, f"recipe {recipe} finds nothing in the vectors"


# --- the table ----------------------------------------------------------------------


def _table(*args, columns: int) -> list[str]:
    result = run_cli("audit", "tail", *args, env={"COLUMNS": str(columns)})
    assert result.code == 0, result.err
    return result.out.rstrip("\n").split("\n")


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_table_fits_the_terminal(width):
    from rich.cells import cell_len

    lines = _table("-s", SHAPES["db_csv"], "--limit", "0", columns=width)
    assert all(cell_len(line) <= width for line in lines)
    assert "OCCURRED AT" in lines[0]
    body = [line for line in lines if line.startswith("2026-")]
    assert len(body) == 240
    if width >= 80:
        assert "DECISION" in lines[0] and "EVENT TYPE" in lines[0]
    if width >= 200:
        for header in (
            "ZONE",
            "REQUEST",
            "PRINCIPAL",
            "POLICY VERSION",
            "DETERMINING POLICIES",
            "EVENT ID",
        ):
            assert header in lines[0]


def test_table_rows_are_oldest_first_with_a_caption():
    lines = _table("-s", SHAPES["db_csv"], "--decision", "deny", "-n", "5", columns=160)
    body = [line for line in lines if line.startswith("2026-")]
    assert len(body) == 5
    assert [line[:27] for line in body] == sorted(line[:27] for line in body)
    assert all(" deny " in line for line in body)
    assert any("newest 5 of 57 matches" in line for line in lines)
    expected = cf.open(str(SHAPES["db_csv"])).tail(decision="deny", limit=5)["id"].to_list()
    assert [line.split()[-1] for line in body] == expected


def test_table_no_match_says_so_on_stderr():
    result = run_cli("audit", "tail", "-s", SHAPES["db_csv"], "--request-id", "nope")
    assert result.code == 0 and result.out == "" and "no matching events" in result.err


def test_table_escapes_control_characters_and_ignores_markup(tmp_path):
    line = json.loads((EXPORT / "cli.jsonl").read_text("utf-8").split("\n")[0])
    line["event_type"] = "evil\x1b[31mred"
    line["request_id"] = "[bold]req[/bold]"
    line["metadata"] = {"principal_id": "two\nlines"}
    path = tmp_path / "evil.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    result = run_cli("audit", "tail", "-s", path, env={"COLUMNS": "200"})
    assert result.code == 0, result.err
    assert "\x1b" not in result.out
    assert "evil\\x1b[31mred" in result.out
    assert "[bold]req[/bold]" in result.out
    assert "two\\nlines" in result.out
    assert len([x for x in result.out.split("\n") if x.startswith("2026-")]) == 1


# --- flags, sources and errors --------------------------------------------------------


def test_source_from_environment():
    result = run_cli(
        "audit",
        "tail",
        "--json",
        "-n",
        "3",
        env={"CARACAL_FORENSICS_SOURCE": str(SHAPES["db_csv"])},
    )
    assert result.code == 0 and len(result.lines) == 3


def test_several_sources_and_short_flags():
    result = run_cli(
        "audit", "tail", "-s", SHAPES["db_csv"], "-s", SHAPES["cli_jsonl"], "-n", "4", "--json"
    )
    assert result.code == 0
    ids = [json.loads(line)["id"] for line in result.lines]
    # the same export in two shapes: each event once, the newest four
    assert len(set(ids)) == 4 and ids == sorted(ids)


def test_on_bad_line_skip(tmp_path):
    good = (EXPORT / "cli.jsonl").read_text("utf-8").split("\n")[:3]
    path = tmp_path / "bad.jsonl"
    path.write_text(good[0] + "\n{not json\n" + good[1] + "\n", encoding="utf-8")
    failed = run_cli("audit", "tail", "-s", path, "--json")
    assert failed.code == 2 and "line 2" in failed.err
    skipped = run_cli("audit", "tail", "-s", path, "--json", "--on-bad-line", "skip")
    assert skipped.code == 0 and len(skipped.lines) == 2 and "skipped 1" in skipped.err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--decision", "maybe"], "--decision"),
        (["--since", "yesterday"], "--since"),
        (["--until", "2026-13-45"], "--until"),
        (["--since", "2026-05-11T09:00:00Z", "--until", "2026-05-11T08:00:00Z"], "--since"),
        (["--since", "2026-05-11T08:00:00+25:00"], "--since"),
        (["--limit", "-1"], "--limit"),
        (["--event-type", ""], "--event-type"),
        (["--zone", ""], "--zone"),
        (["--request-id", ""], "--request-id"),
        (["--follow", "--interval", "0"], "--interval"),
        (["--follow", "--interval", "nan"], "--interval"),
        (["--follow", "--interval", "inf"], "--interval"),
        (["--follow", "--follow-max-seconds", "nan"], "--follow-max-seconds"),
        (["--follow", "--follow-max-seconds", "inf"], "--follow-max-seconds"),
        (["--follow", "--follow-max-seconds", "-1"], "--follow-max-seconds"),
    ],
)
def test_bad_flag_values_are_usage_errors(args, flag):
    result = run_cli("audit", "tail", "-s", SHAPES["db_csv"], *args)
    assert result.code == 2
    assert flag in result.err and "Traceback" not in result.err
    assert len(result.err.strip().split("\n")) == 1


def test_no_source_is_a_usage_error():
    result = run_cli("audit", "tail", env={"CARACAL_FORENSICS_SOURCE": None})
    assert result.code == 2 and "no input" in result.err


def test_parse_time():
    utc = dt.timezone.utc
    assert parse_time("2026-05-11T08:00:00Z") == dt.datetime(2026, 5, 11, 8, tzinfo=utc)
    assert parse_time("2026-05-11") == dt.datetime(2026, 5, 11, tzinfo=utc)
    assert parse_time("2026-05-11T10:00:00+02:00") == dt.datetime(2026, 5, 11, 8, tzinfo=utc)
    assert parse_time("2026-05-11T03:00-05") == dt.datetime(2026, 5, 11, 8, tzinfo=utc)
    assert parse_time("2026-05-11 08:00:00.5") == dt.datetime(
        2026, 5, 11, 8, 0, 0, 500000, tzinfo=utc
    )
    # Finer than microseconds rounds up: ">= since" and "< until" stay exact on integer us.
    assert parse_time("2026-05-11T08:00:00.0000001Z").microsecond == 1
    assert parse_time("2026-05-11T08:00:00.1234560Z").microsecond == 123456
    naive = dt.datetime(2026, 5, 11, 8)
    assert parse_time(naive) == naive.replace(tzinfo=utc)
    assert parse_time(dt.date(2026, 5, 11)) == dt.datetime(2026, 5, 11, tzinfo=utc)
    for bad in ("", "08:00", "2026-05-11T25:00:00Z", "2026-02-30", "2026-05-11T08:00:00+2400",
                # valid as written, outside the years 1-9999 in UTC: was an OverflowError
                "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00",
                "9999-12-31T23:59:59.9999999Z"):
        with pytest.raises(UsageError, match="--until"):
            parse_time(bad, "--until")


def test_filters_are_bound_parameters_never_text():
    hostile = "x' OR '1'='1"
    filters = Filters.build(
        zone=[hostile, "b"],
        request_id=hostile,
        event_type=hostile,
        decision="deny",
        since="2026-05-11",
        until="2026-05-12",
    )
    sql, params = select_sql(filters)
    assert hostile not in sql and "2026" not in sql and "deny" not in sql
    assert hostile in params.values()
    assert cf.open(str(SHAPES["db_csv"])).tail(zone=hostile, limit=0).height == 0


# --- pushdown on a canonical snapshot ---------------------------------------------------


def test_selective_filter_skips_row_groups_of_a_canonical_snapshot(tmp_path):
    from caracal_forensics.ingest import write_snapshot

    snap = cf.open(str(SHAPES["db_csv"]))
    # 60 copies of the vectors in 240 zones: 14,400 events in row groups of 2,048.
    snap.duckdb.execute(
        "CREATE OR REPLACE VIEW events AS SELECT e.* REPLACE ("
        "e.zone_id || '-' || lpad(k::VARCHAR, 2, '0') AS zone_id, "
        "e.id || '-' || k::VARCHAR AS id) FROM loaded_events e, range(60) r(k)"
    )
    out = tmp_path / "big"
    write_snapshot(snap, str(out), row_group_rows=2048)
    big = cf.open(str(out))
    assert big.count() == 14400
    filters = Filters.build(zone="zone-beta-07", decision="deny", limit=10)
    sql, params = select_sql(filters)
    plan = "\n".join(
        row[1] for row in big.duckdb.sql("EXPLAIN ANALYZE " + sql, params=params).fetchall()
    )
    scanned, total = (
        int(n) for n in re.search(r"Row Groups Scanned:\s*(\d+)\s*/\s*(\d+)", plan).groups()
    )
    assert total >= 7 and scanned <= 2, plan
    expected = snap.sql(
        "SELECT id || '-7' AS id FROM loaded_events WHERE zone_id = 'zone-beta' AND decision = "
        "'deny' ORDER BY occurred_at DESC LIMIT 10"
    )["id"].to_list()[::-1]
    assert big.tail(zone="zone-beta-07", decision="deny", limit=10)["id"].to_list() == expected


# --- rendering properties --------------------------------------------------------------

_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.one_of(st.none(), _TEXT), min_size=9, max_size=9))
def test_json_line_round_trips_any_text(texts):
    import pyarrow as pa

    from caracal_forensics.model import EVENT_SCHEMA, TEXT_FIELDS
    from caracal_forensics.render.records import json_lines
    from caracal_forensics.render.table import printable

    row = {name: None for name in EVENT_SCHEMA.names}
    row.update(zip(TEXT_FIELDS, texts, strict=True))
    row["occurred_at"] = dt.datetime(2026, 5, 11, 8, tzinfo=dt.timezone.utc)
    table = pa.Table.from_pylist([row], schema=EVENT_SCHEMA)
    (line,) = json_lines(table)
    record = json.loads(line)
    for name, value in zip(TEXT_FIELDS, texts, strict=True):
        assert record[name] == value
    assert record["occurred_at"] == "2026-05-11T08:00:00.000000Z"
    assert "\n" not in line
    for value in texts:
        shown = printable(value)
        assert shown.isprintable() or shown == ""


def test_dumps_keeps_literals_and_order():
    from caracal_forensics.render.jsonl import dumps
    from caracal_forensics.render.records import parse_json

    value = parse_json('{"z": 1.50, "a": [0.000000001, -0.0, 100, true, null, "é\\n"]}')
    assert dumps(value) == '{"z": 1.50, "a": [0.000000001, -0.0, 100, true, null, "é\\n"]}'
    assert dumps({"avg": 0.1 + 0.2, "n": 3}) == '{"avg": 0.30000000000000004, "n": 3}'
