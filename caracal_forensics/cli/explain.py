"""``caracal-forensics explain REQUEST_ID``: one request's events and final decision."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import ExcludeOption, OnBadLineOption, SourcesOption, open_snapshot, zone_names_csvs


@zone_names_csvs
def explain(
    request_id: Annotated[str, typer.Argument(help="The request id (correlation id).")],
    source: SourcesOption = None,
    zone: Annotated[
        str | None,
        typer.Option(
            "--zone",
            help="Only this zone (a request seen in several zones is otherwise explained "
            "once per zone).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help='{"request_id", "zone_id", "decision", "events": [...]}; one such object '
            "per line when the request occurs in several zones.",
        ),
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
    event denied, else the last event's); once per zone when it occurs in several."""
    from ..explain import render_all
    from ..keys import load_key

    key = load_key(key_file)  # before reading any data: a bad key fails fast
    snap = open_snapshot(source, on_bad_line, exclude=exclude)
    results = snap.explain_all(request_id, zone=zone, key=key)
    if json_output:  # one object per zone, one per line: `jq .decision` reads each
        print("\n".join(result.to_json() for result in results))
    else:
        print(render_all(results))
