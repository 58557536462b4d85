"""``caracal-forensics explain REQUEST_ID``: one request's events and final decision."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import ExcludeOption, OnBadLineOption, SourcesOption, app, open_snapshot


@app.command()
def explain(
    request_id: Annotated[str, typer.Argument(help="The request id (correlation id).")],
    source: SourcesOption = None,
    zone: Annotated[
        str | None,
        typer.Option(
            "--zone", help="The zone, when the request id occurs in several.", show_default=False
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help='{"request_id", "zone_id", "decision", "events": [...]}'),
    ] = False,
    key_file: Annotated[
        str | None,
        typer.Option(
            "--key-file",
            help="Hex AUDIT_HMAC_KEY file: say per event whether its chain link verified "
            "(also AUDIT_HMAC_KEY / AUDIT_HMAC_KEY_FILE).",
            show_default=False,
        ),
    ] = None,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
) -> None:
    """Every event of a request in time order, then its final decision (deny if any
    event denied, else the last event's)."""
    from ..keys import load_key

    key = load_key(key_file)  # before reading any data: a bad key fails fast
    snap = open_snapshot(source, on_bad_line, exclude=exclude)
    result = snap.explain(request_id, zone=zone, key=key)
    print(result.to_json() if json_output else result.text())
