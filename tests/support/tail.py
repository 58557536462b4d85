"""Helpers shared by the tail, explain, follow and API tests.

- ``SHAPES``: the bundled vectors in every export shape.
- ``load_pg`` / ``pg_tail_ids``: the same filters as SQL in a real PostgreSQL, the
  reference the toolkit's results are compared with.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from support.paths import DATA, SCHEMA, VECTOR_EXPORT, VECTOR_KEY_FILE

EXPORT = VECTOR_EXPORT
KEY_FILE = VECTOR_KEY_FILE
RECIPES = DATA / "seed_recipes.json"

#: Every export shape of the same 240 events. OCSF keeps occurred_at in milliseconds.
SHAPES: dict[str, Path] = {
    "db_csv": EXPORT / "db.csv",
    "db_jsonl": EXPORT / "db.jsonl",
    "cli_jsonl": EXPORT / "cli.jsonl",
    "ocsf": EXPORT / "ocsf",
    "search": EXPORT / "search",
}
MILLISECOND_SHAPES = {"ocsf"}


# --- PostgreSQL as the reference -------------------------------------------------------


def load_pg(pg: Any, csv_path: Path) -> str:
    """A fresh database with the upstream schema and ``csv_path`` COPYed into audit_events."""
    name = pg.create_database(f"tail_{uuid.uuid4().hex[:12]}", SCHEMA)
    with pg.connect(dbname=name) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY audit_events FROM STDIN (FORMAT csv, HEADER true)") as copy:
                copy.write(csv_path.read_bytes())
        count = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    assert count > 0
    return name


def pg_tail_ids(conn: Any, filters: dict[str, Any], milliseconds: bool = False) -> list[str]:
    """The ids ``tail`` must print for ``filters``, computed by PostgreSQL.

    ``milliseconds``: compare against occurred_at cut to milliseconds, as an OCSF export
    holds it. Times are passed as the same text the toolkit gets; PostgreSQL parses them
    in a UTC session.
    """
    ts = "date_trunc('milliseconds', occurred_at)" if milliseconds else "occurred_at"
    where = ["TRUE"]
    params: dict[str, Any] = {}
    if filters.get("decision") is not None:
        where.append("lower(decision) = lower(%(decision)s)")
        params["decision"] = filters["decision"]
    for key, column in (("event_type", "event_type"), ("zone", "zone_id")):
        value = filters.get(key)
        if value is not None:
            where.append(f"{column} = ANY(%({key})s)")
            params[key] = [value] if isinstance(value, str) else list(value)
    if filters.get("request_id") is not None:
        where.append("request_id = %(request_id)s")
        params["request_id"] = filters["request_id"]
    if filters.get("since") is not None:
        where.append("ts >= %(since)s::timestamptz")
        params["since"] = str(filters["since"])
    if filters.get("until") is not None:
        where.append("ts < %(until)s::timestamptz")
        params["until"] = str(filters["until"])
    limit = filters.get("limit", 100)
    inner = (
        f"SELECT id, zone_id, chain_seq, ts FROM (SELECT *, {ts} AS ts FROM audit_events) e "
        f"WHERE {' AND '.join(where)} ORDER BY ts DESC, zone_id DESC, chain_seq DESC, id DESC"
    )
    if limit:
        inner += f" LIMIT {int(limit)}"
    sql = f"SELECT id FROM ({inner}) x ORDER BY ts, zone_id, chain_seq, id"
    conn.execute("SET TimeZone = 'UTC'")
    return [row[0] for row in conn.execute(sql, params).fetchall()]


def cli_filter_args(filters: dict[str, Any]) -> list[str]:
    """The ``audit tail`` flags for a filters dict (as Snapshot.tail takes them)."""
    args: list[str] = []
    for key, value in filters.items():
        flag = "--" + key.replace("_", "-")
        values = [value] if isinstance(value, (str, int)) else list(value)
        for item in values:
            args += [flag, str(item)]
    return args
