"""Named queries (queries/*.sql), the query and sql commands, and Snapshot.query.

Each query runs on the PostgreSQL-made vectors (and must agree with a plain Python
reading of them where that is simple), and on a small crafted event set built so that
every hunt has something to find: a step-up failure burst, a request denied then
allowed, one policy version with two manifests, late ingestion, and hostile metadata.
``crafted_export`` (tests/support/crafted.py) is also used by test_stats.py and test_report.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.cli import cli
from support.crafted import (
    HOSTILE,
    M_A1,
    M_A2,
    chain_events,
    crafted_events,
    crafted_export,
    ev,
    write_jsonl,
)
from support.paths import ROOT
from support.paths import VECTOR_EXPORT as VECTORS

import caracal_forensics as cf
from caracal_forensics import queries
from caracal_forensics.errors import ForensicsError, InputError, UsageError


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> cf.Snapshot:
    folder = crafted_export(tmp_path_factory.mktemp("crafted") / "export", copies=2)
    return cf.open(str(folder / "db.jsonl"), str(folder / "db-copy1.jsonl"),
                   str(folder / "alerts.csv"))  # fmt: skip


@pytest.fixture(scope="module")
def vectors() -> cf.Snapshot:
    return cf.open(str(VECTORS))


# --- the library of queries ------------------------------------------------------------

SEED_RECIPES = {
    "denies_for_principal",
    "step_up_denies",
    "deciding_policy_version",
    "jti_collisions",
}
HUNTS = {
    "deny_rate_hourly", "top_denied_principals", "step_up_failure_bursts",
    "denied_then_allowed", "policy_version_timeline", "version_manifest_conflicts",
    "ingest_lag", "rare_event_types", "non_complete_evaluations",
}  # fmt: skip


def test_the_library_holds_the_recipes_and_hunts() -> None:
    loaded = queries.load_queries()
    assert len(loaded) >= 12
    assert SEED_RECIPES | HUNTS <= set(loaded)
    for query in loaded.values():
        assert Path(query.path).name == f"{query.name}.sql"
        assert query.description and "\n" not in query.description
        # the header's parameters are exactly the $names the SQL binds
        assert queries.sql_parameters(query.sql) == set(query.param_names)
        assert all(p.example for p in query.params)


def test_every_query_runs_on_the_vectors_with_its_examples(vectors: cf.Snapshot) -> None:
    for query in queries.load_queries().values():
        frame = vectors.query(query.name, **query.example_params)
        assert frame.width > 0, query.name


def test_every_query_answers_on_the_fixtures_with_its_examples() -> None:
    fixtures = ROOT / "fixtures" / "export"
    if not fixtures.is_dir():
        pytest.skip("fixtures/export not generated")
    # with the incident's admin changes (fixtures/incident), which the admin queries read
    snap = cf.open(str(fixtures), str(ROOT / "fixtures" / "incident"))
    empty = [
        q.name
        for q in queries.load_queries().values()
        if snap.query(q.name, **q.example_params).height == 0
    ]
    assert empty == []


def _vector_events() -> list[dict[str, Any]]:
    with open(VECTORS / "db.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_seed_recipes_agree_with_a_plain_reading_of_the_vectors(vectors: cf.Snapshot) -> None:
    events = _vector_events()

    def meta(e: dict) -> dict:
        return e["metadata_json"] if isinstance(e["metadata_json"], dict) else {}

    denies = [e for e in events if (e["decision"] or "").lower() == "deny"]
    want = sorted(e["id"] for e in denies if meta(e).get("principal_id") == "app-0010")
    got = vectors.query("denies_for_principal", principal_id="app-0010")["id"].to_list()
    assert sorted(got) == want and want

    def needs_step_up(e: dict) -> bool:
        d = e["diagnostics_json"]
        items = d if isinstance(d, list) else [d]
        return any(isinstance(i, dict) and "step_up_required" in i for i in items)

    want = sorted(e["id"] for e in denies if needs_step_up(e))
    assert sorted(vectors.query("step_up_denies")["id"].to_list()) == want and want

    want = sorted(e["id"] for e in events if e["event_type"] == "jti_collision")
    assert sorted(vectors.query("jti_collisions")["id"].to_list()) == want and want

    versions = vectors.query("deciding_policy_version")
    decided = [e for e in events if (e["decision"] or "").lower() in ("allow", "deny")]
    assert versions["decisions"].sum() == len(decided)
    assert set(versions["zone_id"]) == {e["zone_id"] for e in decided}
    assert versions.filter(versions["current"]).height == len(set(versions["zone_id"]))

    want = sorted(e["id"] for e in events if e["evaluation_status"] != "complete")
    assert sorted(vectors.query("non_complete_evaluations")["id"].to_list()) == want


def test_shapes_of_one_export_count_once(vectors: cf.Snapshot) -> None:
    """The vectors directory holds every shape of one export: answers equal one shape's."""
    single = cf.open(str(VECTORS / "db.jsonl"), str(VECTORS / "alerts.csv"))
    for query in queries.load_queries().values():
        params = dict(query.example_params)
        if query.name == "ingest_lag":
            params["max_lag_seconds"] = "1"
        a = vectors.query(query.name, **params)
        b = single.query(query.name, **params)
        drop = [c for c in ("source_file", "source_line", "alert_source") if c in a.columns]
        assert a.drop(drop).equals(b.drop(drop)), query.name


def test_unique_events_plans(tmp_path: Path) -> None:
    """One shape needs no dedupe; several shapes, or a snapshot with its own sources, do."""
    single = cf.open(str(VECTORS / "db.csv"))
    assert queries.ensure_views(single.duckdb) == "plain"
    assert queries.ensure_views(single.duckdb) == "plain"  # decided once per connection
    out = tmp_path / "snap"
    single.ingest(str(out))
    both = cf.open(str(out), str(VECTORS / "db.csv"))  # the same rows, same provenance
    assert queries.ensure_views(both.duckdb) == "dedupe"
    assert both.count() == 480
    for query in queries.load_queries().values():
        a = both.query(query.name, **query.example_params)
        b = single.query(query.name, **query.example_params)
        assert a.equals(b), query.name
    assert both.stats()["events"] == 240 and both.stats()["duplicate_rows"] == 240


# --- what each hunt finds on crafted data ---------------------------------------------------


def test_step_up_failure_bursts(crafted: cf.Snapshot) -> None:
    bursts = crafted.query("step_up_failure_bursts", window_seconds="300", min_failures="3")
    assert bursts.height == 1
    row = bursts.row(0, named=True)
    assert row["principal_id"] == "app-burst"
    assert (row["failures"], row["challenge_invalid"], row["challenge_cooldown"]) == (4, 3, 1)
    assert row["zones"] == ["z1", "z2"]
    assert row["request_ids"] == ["req-b1", "req-b1", "req-b2", "req-b2"]
    assert row["span_seconds"] == 90
    # every failure is a burst of its own when one is enough
    singles = crafted.query("step_up_failure_bursts", window_seconds=300, min_failures=1)
    assert sorted(singles["failures"].to_list()) == [1, 1, 4]
    # a window wide enough joins the straggler two hours later
    wide = crafted.query("step_up_failure_bursts", window_seconds=3 * 3600, min_failures=3)
    assert wide.filter(wide["principal_id"] == "app-burst")["failures"].to_list() == [5]


def test_denied_then_allowed(crafted: cf.Snapshot) -> None:
    found = crafted.query("denied_then_allowed")
    assert found["request_id"].to_list() == ["req-dta"]
    row = found.row(0, named=True)
    assert row["principals"] == ["app-dta"] and row["events"] == 3
    assert row["sequence"] == ("token_exchange:deny > step_up_issued:allow > token_exchange:allow")


def test_denies_for_principal_is_case_insensitive_and_bound(crafted: cf.Snapshot) -> None:
    found = crafted.query("denies_for_principal", principal_id="app-ad")
    assert found["id"].to_list() == ["e11"]
    assert found["decision"].to_list() == ["deny"]
    # a value is bound, never spliced: SQL in it is only text
    assert crafted.query("denies_for_principal", principal_id="x' OR '1'='1").height == 0
    hostile = crafted.query("denies_for_principal", principal_id=HOSTILE)
    assert hostile["id"].to_list() == ["e19", "e20"]


@pytest.mark.parametrize("principal", ['app "quoted"', "back\\slash", "tab\there", "caf\u00e9"])
def test_principal_queries_find_ids_jsonb_escapes(tmp_path, principal) -> None:
    """The principal queries prefilter on the raw jsonb text; a principal id that jsonb
    text escapes (quote, backslash, control character) must still be found."""
    rows = chain_events([
        ev("p1", "z1", "token_exchange", 0, "deny", request="r1", principal=principal),
        ev("p2", "z1", "token_exchange", 1, "deny", request="r2", principal="someone-else"),
        ev("p3", "z1", "token_exchange", 2, "allow", request="r3", principal=principal),
    ])
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", rows)))
    assert snap.query("denies_for_principal", principal_id=principal)["id"].to_list() == ["p1"]
    activity = snap.query("principal_activity", principal_id=principal)
    assert sorted(activity["decision"].to_list()) == ["allow", "deny"]


def test_step_up_denies_reads_arrays_and_objects(crafted: cf.Snapshot) -> None:
    found = crafted.query("step_up_denies")
    assert dict(zip(found["id"], found["step_up_required"], strict=True)) == {
        "e07": "mfa",
        "e13": "webauthn",
    }


def test_policy_versions(crafted: cf.Snapshot) -> None:
    conflicts = crafted.query("version_manifest_conflicts")
    assert conflicts["policy_set_version_id"].to_list() == ["psv-A", "psv-A"]
    assert conflicts["manifest_sha"].to_list() == [M_A1, M_A2]
    assert conflicts["manifests"].to_list() == [2, 2]

    timeline = crafted.query("policy_version_timeline")
    rows = {r["policy_set_version_id"]: r for r in timeline.iter_rows(named=True)}
    assert (rows["psv-A"]["allows"], rows["psv-A"]["denies"], rows["psv-A"]["manifests"]) == (
        1,
        1,
        2,
    )
    assert rows["psv-B"]["events"] == 19
    assert timeline["policy_set_version_id"].to_list() == ["psv-B", "psv-A"]  # by first seen

    deciding = crafted.query("deciding_policy_version")
    current = deciding.filter(deciding["current"])
    assert current.select("zone_id", "policy_set_version_id").rows() == [
        ("z1", "psv-B"),
        ("z2", "psv-B"),
    ]
    assert deciding.filter(deciding["policy_set_version_id"] == "psv-A").height == 2


def test_jti_collisions_keep_json_literals(crafted: cf.Snapshot) -> None:
    result = queries.run_named(crafted.duckdb, "jti_collisions")
    assert result.frame["id"].to_list() == ["e14"]
    assert set(result.json_columns) == {"diagnostics", "metadata"}
    line = json.loads(next(result.json_lines()))
    assert line["principal_id"] == "app-replay"
    assert line["metadata"]["jti"] == "jti-1"
    assert '"n": 1.50' in next(result.json_lines())  # the number literal as stored
    assert line["occurred_at"] == "2026-05-11T10:08:20.000000Z"


def test_ingest_lag(crafted: cf.Snapshot) -> None:
    late = crafted.query("ingest_lag", max_lag_seconds="60")
    assert late["id"].to_list() == ["e15"]
    assert late["lag_seconds"].to_list() == [3600.0]
    both = crafted.query("ingest_lag", max_lag_seconds=5)
    assert both["id"].to_list() == ["e15", "e16"]
    assert both["lag_seconds"].to_list() == [3600.0, -10.0]


def test_rare_event_types_and_non_complete(crafted: cf.Snapshot) -> None:
    rare = crafted.query("rare_event_types", max_share="0.05")
    assert set(rare["event_type"]) == {
        "challenge_cooldown", "control.invoke", "jti_collision", "step_up_issued",
    }  # fmt: skip
    assert rare["events"].to_list() == [1, 1, 1, 1]
    found = crafted.query("non_complete_evaluations")
    assert found["id"].to_list() == ["e17", "e18"]
    assert found["evaluation_status"].to_list() == ["upstream_error", None]


#: rare_event_types as first written: every type aggregated, the rare kept after (its
#: sample ids sorted the common types' every id); the query finds the rare types first.
_RARE_AS_WRITTEN = """
SELECT event_type, count(*) AS events,
       round(count(*) / (SELECT count(*) FROM unique_events), 6) AS share,
       count(*) FILTER (WHERE lower(decision) = 'deny') AS denies,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
       list(DISTINCT zone_id ORDER BY zone_id) AS zones,
       list(id ORDER BY occurred_at, id)[1:10] AS sample_ids
FROM unique_events GROUP BY event_type
HAVING count(*) <= CAST($max_share AS DOUBLE) * (SELECT count(*) FROM unique_events)
ORDER BY events, event_type"""


@pytest.mark.parametrize("max_share", ["0", "0.05", "0.2", "0.5", "1"])
def test_rare_event_types_as_first_written(tmp_path: Path, max_share: str) -> None:
    """The same rows as the plain aggregate, a type without a name (NULL) and types of
    more than ten events (their first ten ids) included."""
    events = crafted_events() + [ev(f"n{i}", "z1", None, 900 + i, "deny") for i in range(2)]
    events += [ev(f"t{i:02d}", "z2", "token_exchange", 1000 - i, "allow") for i in range(12)]
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", chain_events(events))))
    found = snap.query("rare_event_types", max_share=max_share)
    expected = snap.sql(_RARE_AS_WRITTEN, {"max_share": max_share})
    assert found.to_dicts() == expected.to_dicts()
    assert found.height > 0 or max_share == "0"


#: denied_then_allowed as first written: every request's lists and sequence made, the
#: requests kept after; the query finds the requests first.
_DENIED_THEN_ALLOWED_AS_WRITTEN = """
SELECT request_id,
    list(DISTINCT coalesce(TRY(json_extract_string(metadata_json, '$.application_id')),
                           TRY(json_extract_string(metadata_json, '$.principal_id')))
        ORDER BY coalesce(TRY(json_extract_string(metadata_json, '$.application_id')),
                          TRY(json_extract_string(metadata_json, '$.principal_id'))))
        FILTER (WHERE coalesce(TRY(json_extract_string(metadata_json, '$.application_id')),
                               TRY(json_extract_string(metadata_json, '$.principal_id')))
                IS NOT NULL) AS principals,
    list(DISTINCT zone_id ORDER BY zone_id) AS zones,
    min(occurred_at) FILTER (WHERE lower(decision) = 'deny') AS first_deny,
    max(occurred_at) FILTER (WHERE lower(decision) = 'allow') AS last_allow,
    count(*) AS events,
    string_agg(event_type || ':' || coalesce(lower(decision), '?'), ' > '
        ORDER BY occurred_at, zone_id, chain_seq, id) AS sequence
FROM unique_events
WHERE request_id IS NOT NULL AND request_id <> ''
GROUP BY request_id
HAVING min(occurred_at) FILTER (WHERE lower(decision) = 'deny')
     < max(occurred_at) FILTER (WHERE lower(decision) = 'allow')
ORDER BY first_deny, request_id"""


def test_denied_then_allowed_as_first_written(tmp_path: Path) -> None:
    """The same rows as the plain aggregate: requests across zones, in several cases of
    decision, without a principal, an empty request id, a deny after the allow or at
    the same instant."""
    events = crafted_events() + [
        ev("r1", "z1", "token_exchange", 900, "DENY", request="req-r"),
        ev("r2", "z2", "step_up_decided", 905, "Allow", request="req-r", principal="app-q"),
        ev("r3", "z1", "token_exchange", 910, None, request="req-r", principal="app-p"),
        ev("r4", "z1", "token_exchange", 920, "allow", request="req-late"),
        ev("r5", "z2", "token_exchange", 930, "deny", request="req-late"),
        ev("r6", "z1", "token_exchange", 940, "deny", request=""),
        ev("r7", "z2", "token_exchange", 950, "allow", request=""),
        ev("r8", "z1", "token_exchange", 960, "deny", request="req-same"),
        ev("r9", "z2", "token_exchange", 960, "allow", request="req-same"),
    ]
    snap = cf.open(str(write_jsonl(tmp_path / "db.jsonl", chain_events(events))))
    found = snap.query("denied_then_allowed")
    assert found.to_dicts() == snap.sql(_DENIED_THEN_ALLOWED_AS_WRITTEN).to_dicts()
    assert "req-r" in found["request_id"].to_list()
    assert not {"req-late", "req-same", ""} & set(found["request_id"].to_list())


def test_top_denied_and_deny_rate(crafted: cf.Snapshot) -> None:
    top = crafted.query("top_denied_principals", limit="2")
    assert top["principal_id"].to_list() == ["app-burst", HOSTILE]
    assert top["denies"].to_list() == [5, 2]
    assert top["deny_rate"].to_list() == [1.0, 1.0]

    hourly = crafted.query("deny_rate_hourly")
    rows = [
        (r["hour"].hour, r["zone_id"], r["events"], r["denies"])
        for r in hourly.iter_rows(named=True)
    ]
    assert rows == [(10, "z1", 10, 5), (10, "z2", 10, 7), (12, "z1", 1, 1)]


def test_deny_policies_and_principal_activity(crafted: cf.Snapshot) -> None:
    policies = crafted.query("deny_policies")
    assert dict(zip(policies["policy"], policies["denies"], strict=True)) == {"base": 12, None: 1}
    activity = crafted.query("principal_activity", principal_id="app-dta")
    assert activity.select("event_type", "decision", "events").rows() == [
        ("token_exchange", "deny", 1),
        ("step_up_issued", "allow", 1),
        ("token_exchange", "allow", 1),
    ]


def test_ingest_alerts_name_their_events(crafted: cf.Snapshot) -> None:
    alerts = crafted.query("ingest_alerts")
    assert alerts.select("event_id", "event_in_export", "event_type").rows() == [
        ("e07", True, "token_exchange"),
        ("ev-gone", False, None),
    ]


# --- parsing and parameters ------------------------------------------------------------------


def test_header_parsing() -> None:
    query = queries.parse_query(
        "-- name: demo\n-- description: One line.\n-- param: who = app-1\n"
        "-- a note\nSELECT * FROM events WHERE id = $who AND x = '$not_a_param' -- $nor_this\n"
    )
    assert query.name == "demo" and query.description == "One line."
    assert query.to_dict() == {
        "name": "demo",
        "description": "One line.",
        "params": [{"name": "who", "example": "app-1", "default": None}],
    }
    assert query.notes == ("a note",)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("-- description: d\nSELECT 1\n", "no '-- name:'"),
        ("-- name: x\nSELECT 1\n", "no '-- description:'"),
        ("-- name: x\n-- description: d\n", "no SQL"),
        ("-- name: Bad-Name\n-- description: d\nSELECT 1\n", "lowercase"),
        ("-- name: x\n-- description: d\n-- param: p\nSELECT $p\n", "NAME = EXAMPLE"),
        ("-- name: x\n-- description: d\nSELECT $p\n", "used but not declared: p"),
        ("-- name: x\n-- description: d\n-- param: p = 1\nSELECT 1\n", "declared but not used: p"),
        ("-- name: x\n-- name: y\n-- description: d\nSELECT 1\n", "second '-- name:'"),
    ],
)
def test_malformed_headers_are_input_errors(text: str, problem: str) -> None:
    with pytest.raises(InputError) as error:
        queries.parse_query(text, "q.sql")
    assert problem in str(error.value) and "q.sql" in str(error.value)


def test_query_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_count.sql").write_text(
        "-- name: my_count\n-- description: Events of one zone.\n-- param: zone = z1\n"
        "SELECT count(*) AS n FROM unique_events WHERE zone_id = $zone\n"
    )
    monkeypatch.setenv(queries.QUERIES_ENV, str(mine))
    loaded = queries.load_queries()
    assert "my_count" in loaded and "jti_collisions" in loaded
    snap = cf.open(str(VECTORS / "db.jsonl"))
    assert snap.query("my_count", zone="zone-beta")["n"].to_list() == [51]

    (mine / "other.sql").write_text("-- name: my_count\n-- description: d\nSELECT 1\n")
    with pytest.raises(InputError, match="name the file my_count.sql"):
        queries.load_queries()
    (mine / "other.sql").unlink()
    (mine / "jti_collisions.sql").write_text(
        "-- name: jti_collisions\n-- description: d\nSELECT 1\n"
    )
    with pytest.raises(InputError, match="also defined in"):
        queries.load_queries()
    monkeypatch.setenv(queries.QUERIES_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="not a directory"):
        queries.load_queries()


def test_parameters_are_checked(vectors: cf.Snapshot) -> None:
    with pytest.raises(UsageError, match="needs principal_id=app-0010"):
        vectors.query("denies_for_principal")
    with pytest.raises(UsageError, match="has no parameter 'limit'"):
        vectors.query("jti_collisions", limit=3)
    with pytest.raises(UsageError, match="did you mean top_denied_principals"):
        vectors.query("top_denied_principal")
    assert queries.parse_param_args(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    for bad in (["novalue"], ["=1"], ["a b=1"], ["a=1", "a=2"]):
        with pytest.raises(UsageError):
            queries.parse_param_args(bad)


def test_sql_results_become_frames_and_json(vectors: cf.Snapshot) -> None:
    result = queries.run_sql(
        vectors.duckdb,
        "SELECT INTERVAL 90 SECOND AS iv, 1.50::DECIMAL(4,2) AS d, [1, 2] AS l, "
        "{'a': 1} AS s, '{\"k\": 1.0}'::JSON AS j, NULL AS n, 'x'::BLOB AS b",
    )
    assert result.frame.height == 1
    line = json.loads(next(result.json_lines()))
    assert line["iv"] == "00:01:30" and line["l"] == [1, 2] and line["s"] == {"a": 1}
    assert line["j"] == {"k": 1.0} and line["n"] is None and line["b"] == "78"
    assert '"d": 1.50' in next(result.json_lines())
    queries.run_sql(vectors.duckdb, "SET threads = 2")  # a statement without rows is fine
    with pytest.raises(UsageError, match="several columns named a"):
        queries.run_sql(vectors.duckdb, "SELECT 1 AS a, 2 AS a")
    with pytest.raises(UsageError, match="^SQL error: .*nope"):
        queries.run_sql(vectors.duckdb, "SELECT nope FROM events")


# --- the commands ------------------------------------------------------------------------------


def test_query_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "query", "--list", "--json")
    listed = json.loads(out)
    assert code == 0
    assert {q["name"] for q in listed} == set(queries.load_queries())
    by_name = {q["name"]: q for q in listed}
    assert by_name["top_denied_principals"]["params"] == [
        {"name": "limit", "example": "10", "default": "10"}
    ]
    assert set(by_name["jti_collisions"]) == {"name", "description", "params"}
    code, out, _ = cli(capsys, "query", "--list")
    assert code == 0 and "step_up_failure_bursts" in out and "window_seconds=300" in out


def test_query_command(capsys: pytest.CaptureFixture[str]) -> None:
    source = ("--source", str(VECTORS))
    code, out, _ = cli(capsys, "query", "top_denied_principals", *source, "-p", "limit=3", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["principal_id"] for r in rows][:1] == ["app-0022"] and len(rows) == 3
    code, out, _ = cli(capsys, "query", "jti_collisions", *source)
    assert code == 0 and "2026-05-11T08:04:16.920395Z" in out and "1 row" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", "nope"], "unknown query 'nope'"),
        (["query", "denies_for_principal"], "needs --param principal_id=app-0010"),
        (["query", "jti_collisions", "-p", "x=1"], "has no parameter 'x'"),
        (["query", "jti_collisions", "-p", "x"], "--param must look like NAME=VALUE"),
        (["query"], "give a query name"),
        (["sql", "SELECT nope FROM events"], "SQL error: Binder Error"),
        (["sql", "SELEC 1"], "SQL error: Parser Error"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *argv, "--source", str(VECTORS / "db.jsonl"))
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_sql_command(capsys: pytest.CaptureFixture[str]) -> None:
    source = ("--source", str(VECTORS))
    code, out, _ = cli(
        capsys, "sql", "SELECT count(*) AS n FROM unique_events WHERE zone_id = $z",
        "-p", "z=zone-beta", "--json", *source,
    )  # fmt: skip
    assert code == 0 and json.loads(out) == {"n": 51}
    code, out, _ = cli(capsys, "sql", "SELECT count(*) AS rows FROM events", *source)
    assert code == 0 and "1200" in out
    # a table narrower than its caption is widened to it (rich wrapped "1 row" a letter
    # a line under the one column); text with no statement is a usage error, not nothing
    code, out, _ = cli(capsys, "sql", "SELECT 1 AS a", *source)
    assert code == 0 and out.splitlines()[-1].strip() == "1 row"
    for empty in ("", "  ", ";", "/* nothing */"):
        code, out, err = cli(capsys, "sql", empty, *source)
        assert (code, out) == (2, "") and "there is no statement to run" in err, empty


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1 AS x) TO '{victim}'",
        "SELECT 1; COPY (SELECT 1 AS x) TO '{victim}' (FORMAT csv)",
        "EXPORT DATABASE '{folder}'",
        "ATTACH '{victim}.db' AS other",
        "PRAGMA import_database('{folder}')",
        "INSTALL httpfs",
        "CALL pragma_version()",
    ],
)
def test_sql_never_writes_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, statement: str
) -> None:
    victim = tmp_path / "victim.csv"
    shutil.copyfile(VECTORS / "db.csv", victim)
    before = victim.read_bytes()
    sql = statement.format(victim=victim, folder=tmp_path)
    code, out, err = cli(capsys, "sql", sql, "--source", str(victim))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "statements are not run here" in err and "Traceback" not in err
    assert victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.csv"]
    snap = cf.open(str(victim))
    with pytest.raises(ForensicsError, match="statements are not run here"):
        snap.sql(sql)
    with pytest.raises(ForensicsError, match="statements are not run here"):
        snap.arrow(sql)  # it ran them: the same refusal as sql
    assert victim.read_bytes() == before
    with pytest.raises(ForensicsError, match="SQL error: Parser Error"):
        snap.arrow("SELEC 1")  # DuckDB's own exception before


@pytest.mark.parametrize("reader", ["read_text", "read_blob", "read_csv"])
def test_sql_reads_the_sources_and_no_other_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reader: str
) -> None:
    # the key file sits inside the export directory, as in the vectors
    key_file = VECTORS / "key.hex"
    key_hex = key_file.read_text(encoding="ascii").strip()
    code, out, err = cli(capsys, "sql", f"SELECT * FROM {reader}('{key_file}')",
                         "--source", str(VECTORS), "--json")
    assert code == 2 and out == "" and "file system operations are disabled" in err
    assert key_hex[:16] not in out + err
    snapshot = tmp_path / "snap"
    cf.open(str(VECTORS)).ingest(str(snapshot))
    for source in (VECTORS, snapshot):
        code, out, _ = cli(capsys, "sql", "SELECT (SELECT count(*) FROM unique_events) AS e, "
                           "(SELECT count(*) FROM alerts) AS a", "--source", str(source),
                           "--json")
        assert code == 0 and json.loads(out) == {"e": 240, "a": 1}


def test_sql_session_statements_still_run(vectors: cf.Snapshot) -> None:
    for statement in ("SET threads = 2", "CREATE TEMP TABLE mine AS SELECT 1 AS x",
                      "INSERT INTO mine VALUES (2)"):
        queries.run_sql(vectors.duckdb, statement)
    assert queries.run_sql(vectors.duckdb, "SELECT sum(x) AS s FROM mine").frame["s"][0] == 3
    assert vectors.sql("EXPLAIN SELECT count(*) FROM events").height >= 1


def test_table_output_does_not_interpret_data(
    crafted: cf.Snapshot, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = crafted_export(tmp_path / "x")
    code, out, _ = cli(
        capsys, "sql", "SELECT '[bold]x[/bold]' || chr(27) || '[2J' AS t, $p AS p",
        "-p", f"p={HOSTILE}", "--source", str(folder),
    )  # fmt: skip
    assert code == 0
    assert "\x1b" not in out and "[bold]x[/bold]" in out and "\\x1b" in out
