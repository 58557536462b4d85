"""``caracal-forensics report``: verify the sources and write a self-contained HTML report."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import OnBadLineOption, SourcesOption, app, open_snapshot, resolve_sources


@app.command()
def report(
    out: Annotated[
        str, typer.Option("--out", "-o", help="The HTML file to write (e.g. evidence.html).")
    ],
    source: SourcesOption = None,
    key_file: Annotated[
        str | None,
        typer.Option(
            "--key-file",
            help="File holding the HMAC key as hex (else $AUDIT_HMAC_KEY or "
            "$AUDIT_HMAC_KEY_FILE). Only its fingerprint goes into the report.",
            show_default=False,
        ),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="A previous verification report (JSON): its zone heads must still be there.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option("--zone", help="Verify only this zone (repeatable).", show_default=False),
    ] = None,
    recover_microseconds: Annotated[
        bool,
        typer.Option(
            "--recover-microseconds/--no-recover-microseconds",
            help="Recover OCSF rows' microseconds so their content hash can be proven.",
        ),
    ] = True,
    on_bad_line: OnBadLineOption = "error",
) -> None:
    """Verify the sources and write the evidence report (exit code as verify: 0, 1 or 3)."""
    from ..chain.report import Report
    from ..keys import load_key
    from ..report_html import write_report

    key = load_key(key_file)  # a bad key is a usage error before any input is read
    previous = Report.from_file(anchor) if anchor else None
    sources = resolve_sources(source)
    snap = open_snapshot(sources, on_bad_line)
    result = write_report(
        snap,
        out,
        key=key,
        sources=sources,
        zones=zone or None,
        anchor=previous,
        recover_microseconds=recover_microseconds,
    )
    failing = sum(1 for f in result.findings if f.fails)
    print(
        f"wrote {out}: {result.status} ({result.events_checked} events in "
        f"{len(result.zones)} zone(s), {len(result.findings)} finding(s), {failing} failing)"
    )
    raise typer.Exit(result.exit_code)
