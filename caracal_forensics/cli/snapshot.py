"""``caracal-forensics snapshot``: a consistent, verifiable snapshot of a live Caracal DB."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def snapshot(
    out: Annotated[
        str, typer.Option("--out", "-o", metavar="DIR", help="New (or empty) snapshot directory.")
    ],
    dsn: Annotated[
        str | None,
        typer.Option(
            "--dsn",
            metavar="DSN",
            help="libpq connection string or postgresql:// URL. Default: the libpq "
            "environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE). Prefer "
            "PGPASSWORD, ~/.pgpass or a service file to a password here: argv is visible "
            "to other users.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            "--zone", "-z", metavar="ZONE", help="Only this zone (repeatable).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Only events with occurred_at at or after this ISO 8601 time (UTC if no offset).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="TIME",
            help="Only events with occurred_at before this time.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the manifest as JSON.")
    ] = False,
) -> None:
    """Read audit_events and audit_ingest_alerts (and admin_audit_events and
    audit_export_watermark where they exist) from PostgreSQL in one read-only REPEATABLE
    READ transaction and write them as a canonical snapshot."""
    from ..outputs import refuse_overwriting_inputs
    from ..pgsnapshot import take_snapshot

    # no input files, but never the key file ($AUDIT_HMAC_KEY_FILE) nor what holds it
    refuse_overwriting_inputs(out, [], directory=True, names={"out": "--out"})
    manifest = take_snapshot(dsn, out, zones=zone, since=since, until=until)
    if json_output:
        print(json.dumps(manifest, indent=2))
        return
    source = manifest["source"]
    admin = (f", {manifest['admin_events']} admin changes"
             if source.get("admin_table") == "present" else "")
    print(
        f"wrote {manifest['events']} events, {manifest['alerts']} alerts{admin} in "
        f"{len(manifest['zones'])} zone(s) from {source['connection']} "
        f"(as of {source['snapshot_time']}) to {out}"
    )
