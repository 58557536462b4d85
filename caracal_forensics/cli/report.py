"""``caracal-forensics report``: verify the sources and write a self-contained HTML report."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import (
    AnchorOption,
    ExcludeOption,
    KeyFileOption,
    OnBadLineOption,
    RecoverOption,
    SourcesOption,
    VerifyZoneOption,
    open_snapshot,
    resolve_sources,
    zone_names_csvs,
)
from .verify import refuse_writing_evidence


@zone_names_csvs
def report(
    out: Annotated[
        str, typer.Option("--out", "-o", help="The HTML file to write (e.g. evidence.html).")
    ],
    source: SourcesOption = None,
    key_file: KeyFileOption = None,
    anchor: AnchorOption = None,
    zone: VerifyZoneOption = None,
    recover_microseconds: RecoverOption = True,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
) -> None:
    """Verify the sources and write the evidence report (exit code as verify: 0, 1 or 3)."""
    from ..chain.verifier import Verifier
    from ..keys import load_key
    from ..report_html import write_report

    key = load_key(key_file)  # a bad key is a usage error before any input is read
    # the anchor is read here: a bad one is an input error before any source is read
    verifier = Verifier(key=key, anchor=anchor or None, zones=zone or None,
                        recover_microseconds=recover_microseconds, on_bad_line=on_bad_line,
                        exclude=exclude or ())
    sources = resolve_sources(source)
    refuse_writing_evidence("--out", out, sources, key_file, anchor)
    snap = open_snapshot(sources, on_bad_line, exclude=exclude)
    # again with the files found: a link in a directory may lead anywhere
    refuse_writing_evidence("--out", out, [i.path for i in snap.inputs], key_file, anchor)
    snap.confine()  # the report runs a named query: it reads the sources and nothing else
    result = write_report(snap, out, verifier, sources=sources)
    failing = sum(1 for f in result.findings if f.fails)
    print(
        f"wrote {out}: {result.status} ({result.events_checked} events in "
        f"{len(result.zones)} zone(s), {len(result.findings)} finding(s), {failing} failing)"
    )
    raise typer.Exit(result.exit_code)
