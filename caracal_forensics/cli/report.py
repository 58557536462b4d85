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
    ThroughOption,
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
    through: ThroughOption = None,
) -> None:
    """Verify the sources and write the evidence report (exit code as verify: 0, 1 or 3)."""
    from ..chain.verifier import Verifier
    from ..keys import load_key
    from ..report_html import write_report

    key = load_key(key_file)  # a bad key is a usage error before any input is read
    # the anchor is read here: a bad one is an input error before any source is read
    verifier = Verifier(key=key, anchor=anchor or None, zones=zone or None,
                        recover_microseconds=recover_microseconds, on_bad_line=on_bad_line,
                        exclude=exclude or (), through=through)
    sources = resolve_sources(source)
    refuse_writing_evidence("--out", out, sources, key_file, anchor)
    if _admin_only(sources, exclude):  # the admin chain alone: its section only
        _admin_report(verifier, sources, out, key_file, anchor)
        return
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
    if result.admin is not None:  # the admin chain: its own section and verdict
        admin = result.admin
        print(f"  admin chain: {admin.status} ({admin.events_checked} admin changes in "
              f"{len(admin.zones)} chain(s), {len(admin.findings)} finding(s), "
              f"{sum(1 for f in admin.findings if f.fails)} failing); exit code for both: "
              f"{result.overall_status}")
    raise typer.Exit(result.exit_code)


def _admin_only(sources: list[str], exclude: list[str] | None) -> bool:
    """Whether the sources hold admin change exports and no event export."""
    from ..sources import scan

    found = scan(sources, fingerprint=False, exclude=exclude or (), admin=True)
    return bool(found) and all(i.holds_admin for i in found)


def _admin_report(verifier, sources: list[str], out: str, key_file: str | None,
                  anchor: str | None) -> None:
    from ..outputs import write_atomically
    from ..report_html import render_admin_html

    result = verifier.verify_paths(sources)
    refuse_writing_evidence("--out", out, [i.path for i in result.inputs], key_file, anchor)
    write_atomically(out, render_admin_html(result, sources=sources))
    failing = sum(1 for f in result.findings if f.fails)
    print(f"wrote {out}: admin chain {result.status} ({result.events_checked} admin changes "
          f"in {len(result.zones)} chain(s), {len(result.findings)} finding(s), "
          f"{failing} failing)")
    raise typer.Exit(result.exit_code)
