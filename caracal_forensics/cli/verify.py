"""``caracal-forensics verify``: recompute the HMAC chain of an export and say what held."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    AnchorOption,
    EngineOption,
    ExcludeOption,
    KeyFileOption,
    OnBadLineOption,
    RecoverOption,
    SourcesOption,
    ThroughOption,
    VerifyZoneOption,
    discard_stdout,
    open_snapshot,
    print_verdict,
    resolve_sources,
    warn,
    zone_names_csvs,
)

if TYPE_CHECKING:
    from ..chain.report import Report

_SEVERITY_LABEL = {"fails": "FAIL", "warning": "WARN", "info": "INFO", "unverifiable": "N/A"}
_STATUS_STYLE = {"intact": "green", "tampered": "bold red", "partial": "yellow"}


@zone_names_csvs
def verify(
    source: SourcesOption = None,
    key_file: KeyFileOption = None,
    zone: VerifyZoneOption = None,
    anchor: AnchorOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
    report_file: Annotated[
        str | None,
        typer.Option("--report", metavar="FILE",
                     help="Also write the JSON report here (a later --anchor).",
                     show_default=False),
    ] = None,
    recover_microseconds: RecoverOption = True,
    show_preimage: Annotated[
        str | None,
        typer.Option("--show-preimage", metavar="EVENT_ID",
                     help="Print the exact bytes hashed for one event and stop.",
                     show_default=False),
    ] = None,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
    through: ThroughOption = None,
    engine: EngineOption = "local",
) -> None:
    """Verify content hashes, HMACs, links and sequence per zone.

    Exit 0 intact, 1 tampered, 2 usage or input error, 3 partial (a check could not run).
    """
    from ..chain.verifier import Verifier
    from ..keys import load_key
    from .progress import progress

    key = load_key(key_file)  # a bad key is a usage error before any input is read
    # the anchor is read here: a bad one is an input error before any source is read
    verifier = Verifier(key=key, anchor=anchor or None, zones=zone or None,
                        recover_microseconds=recover_microseconds, on_bad_line=on_bad_line,
                        exclude=exclude or (), through=through, engine=engine)
    paths = resolve_sources(source)
    if report_file:
        refuse_writing_evidence("--report", report_file, paths, key_file, anchor)
    if show_preimage is not None:
        from ..chain.preimage import show_preimage as preimage_text

        admin_text = _admin_preimage(paths, show_preimage, on_bad_line, exclude)
        if admin_text is not None:  # an admin change's id (FORMAT.md 8)
            print(admin_text)
            return
        snap = open_snapshot(source, on_bad_line, exclude=exclude)
        print(preimage_text(snap.duckdb, show_preimage))
        return
    with progress("verifying") as bar:  # on a terminal's stderr only
        result = verifier.verify_paths(paths,
                                       progress=bar.counting("recovering microseconds"))
    if result.skipped_lines:
        warn(f"skipped {result.skipped_lines} malformed line(s) (--on-bad-line skip)")
    if report_file:  # again with the files found: a link in a directory may lead anywhere
        refuse_writing_evidence("--report", report_file,
                                [i.path for s in result.sections() for i in s.inputs],
                                key_file, anchor)
        result.write(report_file)
    print_verdict(result, json_output, print_report)


def _admin_preimage(paths: list[str], change_id: str, on_bad_line: str,
                    exclude: list[str] | None) -> str | None:
    """The preimage of an admin change of that id among the sources, or None."""
    from ..admin import read_admin
    from ..admin.preimage import show_admin_preimage

    table = read_admin(paths, on_bad_line=on_bad_line, exclude=exclude or ())
    return show_admin_preimage(table, change_id) if table.num_rows else None


#: The heading of each section when a report covers both chains.
SECTION_TITLES = {"events": "audit events (audit_events)",
                  "admin": "admin changes (admin_audit_events)"}


def print_report(report: Report, console=None) -> None:
    """The human view, per chain (a heading each when both are there): a verdict line, a
    table of zones, then the findings: one by one, except the expected copies of one
    export in several shapes, one line per pair."""
    from ..render.table import make_console

    if console is None:
        console = make_console()
        # rich exits 1 when the reader closes the pipe (`| head`); for verify 1 means
        # "tampered", so drop the rest of the output quietly and keep the verdict's code.
        console.on_broken_pipe = discard_stdout
    sections = report.sections()
    for index, section in enumerate(sections):
        if len(sections) > 1 or section.chain != "events":
            if index:
                console.print()
            console.print(f"== {SECTION_TITLES.get(section.chain, section.chain)}",
                          style="bold", soft_wrap=True)
        _print_section(section, console)
    if len(sections) > 1:
        console.print()
        console.print(f"OVERALL: {report.overall_status.upper()} (the exit code's)",
                      style=_STATUS_STYLE.get(report.overall_status), soft_wrap=True)


def _print_section(report: Report, console) -> None:
    from ..chain.summary import fold_copies
    from ..render.table import Column, printable, render_table

    shown, folds = fold_copies(report)
    failing = sum(1 for f in report.findings if f.fails)
    style = _STATUS_STYLE.get(report.status)
    if report.likely_wrong_key:  # lead with the likeliest explanation, then the status
        console.print(f"WRONG KEY? {printable(report.verdict)}", style=style, soft_wrap=True)
    folded = sum(len(fold.findings) for fold in folds)
    console.print(
        f"{report.status.upper()}: {report.events_checked} "
        f"{'admin change(s)' if report.chain == 'admin' else 'event(s)'} in "
        f"{len(report.zones)} {'chain(s)' if report.chain == 'admin' else 'zone(s)'}, "
        f"{len(report.findings)} finding(s), {failing} failing"
        + (f" ({folded} of them copies of the same export in other shapes, "
           f"{len(folds)} line(s) below)" if folds else ""),
        style=style, soft_wrap=True,
    )
    if report.zones:
        render_table(
            [z.to_dict() for z in report.zones],
            [
                Column("zone", "zone_id", priority=9, max_width=40),
                Column("events", "events", priority=8, justify="right"),
                Column("seq", _seq_range, priority=7),
                Column("status", "status", priority=9, style=_STATUS_STYLE.get),
                Column("last content_sha256", "last_content_sha256", priority=1,
                       min_width=12),
            ],
            console=console,
        )
    for f in shown:
        print_finding(console, f)
    for fold in folds:
        console.print(f"{_SEVERITY_LABEL['warning']} duplicate_event  {printable(fold.summary())}",
                      soft_wrap=True)
        console.print(f"    {printable(fold.files_text())} (each listed in --json / --report)",
                      soft_wrap=True)
    for name, text in report.checks.items():
        console.print(f"{name}: {printable(text)}", style="dim", soft_wrap=True)
    if report.key_fingerprint:
        console.print(f"key: {report.key_fingerprint}", style="dim", soft_wrap=True)
    else:  # the library says key=None; here it is a flag or the environment
        console.print("key: none given (--key-file, AUDIT_HMAC_KEY or AUDIT_HMAC_KEY_FILE)",
                      style="dim", soft_wrap=True)


def print_finding(console, f) -> None:
    """One finding in two lines: ``KIND kind  zone seq event at file:line``, the detail
    under it (reconcile's findings print so too)."""
    from ..render.table import printable

    where = " ".join(
        part for part in (
            printable(f.zone_id) if f.zone_id else "",
            f"seq {f.chain_seq}" if f.chain_seq is not None else "",
            printable(f.event_id) if f.event_id else "",
            f"at {printable(f.source)}" if f.source else "",
        ) if part
    )
    # soft_wrap: long hashes and paths stay on one line, whole for copy and grep
    console.print(f"{_SEVERITY_LABEL.get(f.severity, f.severity)} {f.kind}  {where}",
                  style=_STATUS_STYLE["tampered"] if f.fails else None, soft_wrap=True)
    console.print(f"    {printable(f.detail)}", soft_wrap=True)


def _seq_range(zone: dict) -> str:
    if zone["first_seq"] is None:
        return ""
    return f"{zone['first_seq']}..{zone['last_seq']}"


def refuse_writing_evidence(flag: str, out: str, sources: list[str], key_file: str | None,
                            anchor: str | None) -> None:
    """The output file ``out`` of ``flag`` is neither one of the sources nor inside one,
    nor the key file or the anchor, and can be written (not a directory); checked before
    the sources are read (``outputs.refuse_overwriting_inputs``)."""
    from ..outputs import check_output_file, refuse_overwriting_inputs

    refuse_overwriting_inputs(out, sources, key_file=key_file, anchor=anchor,
                              names={"out": flag, "key_file": "--key-file",
                                     "anchor": "--anchor"})
    check_output_file(out, name=flag)

