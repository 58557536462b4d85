"""The same filters as hand-written DuckDB SQL over the export files (a baseline).

    .venv/bin/python bench/sql_baseline.py TASK SHAPE PATH [--request-id R] [--principal P]

TASK: principal_denies (the seed's first jq recipe), step_up_denies, jti_collisions,
request (every event of one request, oldest first: what explain and tail --request-id
show), broad (the newest 100 denies). SHAPE: cli_jsonl, db_jsonl, db_csv, snapshot (the
canonical snapshot directory), ocsf (a directory of hourly files). Prints one JSON line:
the rows found and the seconds spent in DuckDB. This is what someone fluent in DuckDB
would type, with no toolkit involved.

The ``copy_*`` tasks print their rows instead, oldest first, as JSON lines written by
DuckDB (``COPY (SELECT ...) TO '/dev/stdout' (FORMAT JSON)``; the summary goes to stderr):
the hand-written statement for the same output as ``tail --query`` (issue 20):
copy_denies_for_application, copy_denies_requiring_step_up, copy_deciding_policy_version,
copy_jti_collisions (the seed recipes), copy_projection (``{policy_set_version_id,
decision, determining_policies}`` of every event), copy_json (every event, every
column) and copy_nothing (a statement selecting no event: what a run costs before its
output, the floor the recipes' ratios stand on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import duckdb

#: An event type no event has (copy_nothing; bench/run.py's recipe_nothing asks for it too).
NO_EVENT_TYPE = "no such event type"

JSON_COLUMNS = {
    "cli_jsonl": {
        "id": "VARCHAR", "zone_id": "VARCHAR", "event_type": "VARCHAR", "request_id": "VARCHAR",
        "decision": "VARCHAR", "policy_set_version_id": "VARCHAR", "diagnostics": "JSON",
        "metadata": "JSON", "occurred_at": "TIMESTAMPTZ", "chain_seq": "BIGINT",
        "determining_policies": "JSON", "policy_set_id": "VARCHAR", "manifest_sha": "VARCHAR",
        "evaluation_status": "VARCHAR", "chain_hmac": "VARCHAR",
    },
    "db_jsonl": {
        "id": "VARCHAR", "zone_id": "VARCHAR", "event_type": "VARCHAR", "request_id": "VARCHAR",
        "decision": "VARCHAR", "policy_set_version_id": "VARCHAR", "diagnostics_json": "JSON",
        "metadata_json": "JSON", "occurred_at": "TIMESTAMPTZ", "chain_seq": "BIGINT",
    },
}


def relation(shape: str, path: str) -> tuple[str, str, str]:
    """(FROM clause, metadata column, diagnostics column) for a shape."""
    q = path.replace("'", "''")
    if shape in JSON_COLUMNS:
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in JSON_COLUMNS[shape].items()) + "}"
        source = f"read_json('{q}', format = 'newline_delimited', columns = {columns})"
        if shape == "cli_jsonl":
            return source, "metadata", "diagnostics"
        return source, "metadata_json", "diagnostics_json"
    if shape == "db_csv":
        source = (f"(SELECT * REPLACE (CAST(occurred_at AS TIMESTAMPTZ) AS occurred_at) "
                  f"FROM read_csv('{q}', header = true, all_varchar = true))")
        return source, "metadata_json", "diagnostics_json"
    if shape == "snapshot":
        return f"read_parquet('{q}/events/*.parquet')", "metadata_json", "diagnostics_json"
    if shape == "ocsf":
        source = (f"(SELECT * REPLACE (make_timestamptz(time * 1000) AS time), time AS occurred_at"
                  f" FROM read_parquet('{q}/**/*.parquet'))")
        return source, "metadata_json", "diagnostics_json"
    raise SystemExit(f"unknown shape {shape}")


def query(task: str, shape: str, path: str, request_id: str, principal: str) -> str:
    source, meta, diag = relation(shape, path)
    if task.startswith("copy_"):
        policies = "determining_policies" if shape == "cli_jsonl" else "determining_policies_json"
        return copy_query(task.removeprefix("copy_"), source, meta, diag, policies, principal)
    if task == "principal_denies":
        return (f"SELECT * FROM {source} WHERE decision = 'deny' AND "
                f"json_extract_string({meta}, '$.principal_id') = '{principal}'")
    if task == "step_up_denies":
        return (f"SELECT * FROM {source} WHERE decision = 'deny' AND "
                f"len(json_extract({diag}, '$[*].step_up_required')) > 0")
    if task == "jti_collisions":
        return f"SELECT * FROM {source} WHERE event_type = 'jti_collision'"
    if task == "request":
        return f"SELECT * FROM {source} WHERE request_id = '{request_id}' ORDER BY occurred_at"
    if task == "broad":
        return (f"SELECT * FROM (SELECT * FROM {source} WHERE decision = 'deny' "
                f"ORDER BY occurred_at DESC LIMIT 100) ORDER BY occurred_at")
    raise SystemExit(f"unknown task {task}")


def copy_query(task: str, source: str, meta: str, diag: str, policies: str,
               principal: str) -> str:
    """The statement that prints what ``tail --limit 0 --query`` prints for ``task``."""
    if task == "denies_for_application":
        select = (f"SELECT * FROM {source} WHERE decision = 'deny' AND "
                  f"json_extract_string({meta}, '$.principal_id') = '{principal}'")
    elif task == "denies_requiring_step_up":
        select = (f"SELECT id, request_id, zone_id, json_extract({diag}, "
                  f"'$[*].step_up_required') AS step_up_required FROM {source} "
                  f"WHERE decision = 'deny' AND "
                  f"len(json_extract({diag}, '$[*].step_up_required')) > 0")
    elif task == "deciding_policy_version":
        select = (f"SELECT occurred_at, zone_id, decision, policy_set_version_id, "
                  f"coalesce(json_extract({policies}, '$[*].policy'), '[]') AS policies "
                  f"FROM {source}")
    elif task == "jti_collisions":
        select = (f"SELECT occurred_at, zone_id, request_id, json_extract_string({meta}, "
                  f"'$.principal_id') AS principal_id, decision FROM {source} "
                  f"WHERE event_type = 'jti_collision'")
    elif task == "projection":
        select = (f"SELECT policy_set_version_id, decision, CAST({policies} AS JSON) AS "
                  f"determining_policies FROM {source}")
    elif task == "json":
        select = f"SELECT * FROM {source}"
    elif task == "nothing":  # the start-up, and a scan of one column that selects nothing
        select = f"SELECT id FROM {source} WHERE event_type = '{NO_EVENT_TYPE}'"
    else:
        raise SystemExit(f"unknown task copy_{task}")
    return f"COPY ({select} ORDER BY occurred_at) TO '/dev/stdout' (FORMAT JSON)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("shape")
    parser.add_argument("path")
    parser.add_argument("--request-id", default="")
    parser.add_argument("--principal", default="app-0007")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    sql = query(args.task, args.shape, os.path.abspath(args.path), args.request_id,
                args.principal)
    if args.task.startswith("copy_"):
        con.execute(sql)
        sys.stderr.write(json.dumps({"seconds": round(time.perf_counter() - started, 4)}) + "\n")
        return 0
    rows = con.sql(sql).fetchall()
    print(json.dumps({"rows": len(rows), "seconds": round(time.perf_counter() - started, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
