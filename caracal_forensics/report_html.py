"""The evidence report: one self-contained HTML file for someone who will not open a terminal.

It states what was examined (inputs with sizes and SHA-256), the verification verdict
per zone and every finding, the counts, two charts (inline SVG), the toolkit version,
the time and the key's fingerprint (never the key). The file loads nothing: styles are
inline, charts are inline SVG, there is no script, and a Content-Security-Policy forbids
any load should a browser find something to fetch. Everything that comes from the data
is HTML-escaped, with invisible and bidi control characters made visible.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .charts import deny_rate_over_time, escape_text, top_denied_principals

if TYPE_CHECKING:
    from .chain.report import Report
    from .chain.verifier import Verifier
    from .snapshot import Snapshot

TITLE = "Caracal audit evidence report"

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)

STATUS_TEXT = {
    "intact": (
        "INTACT",
        "Every check that ran passed: no event was altered, removed or inserted in the "
        "chain segments examined.",
    ),
    "tampered": (
        "TAMPERED",
        "At least one finding fails verification: the export does not match the chain "
        "Caracal wrote. Each finding below names the event and the row it came from.",
    ),
    "partial": (
        "PARTIAL",
        "Nothing failed, but some checks could not run (see the unverifiable findings): "
        "the verdict covers only what could be checked.",
    ),
}

SEVERITY_ORDER = {"fails": 0, "unverifiable": 1, "warning": 2, "info": 3}
SEVERITY_TEXT = {
    "fails": "these fail verification",
    "unverifiable": "checks that could not run",
    "warning": "worth knowing, not failing (e.g. the same event exported twice)",
    "info": "context for the reader",
}

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
       sans-serif; color: #222; margin: 0 auto; padding: 24px 32px 48px; max-width: 1180px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.sub { color: #555; margin: 0 0 16px; }
.verdict { border-radius: 6px; padding: 14px 18px; margin: 16px 0; border: 2px solid; }
.verdict strong { font-size: 22px; letter-spacing: .04em; display: block; }
.s-intact { background: #e9f6ec; border-color: #2e7d32; color: #1b5e20; }
.s-tampered { background: #fdecea; border-color: #c62828; color: #8e0000; }
.s-partial, .s-alerts { background: #fff6e0; border-color: #e0a000; color: #7a5200; }
.verdict p { margin: 6px 0 0; }
.tag { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px;
       font-weight: 600; border: 1px solid; white-space: nowrap; }
.t-intact, .t-info { color: #1b5e20; border-color: #2e7d32; background: #e9f6ec; }
.t-tampered, .t-fails { color: #8e0000; border-color: #c62828; background: #fdecea; }
.t-partial, .t-unverifiable, .t-warning { color: #7a5200; border-color: #e0a000;
       background: #fff6e0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px;
         border-bottom: 1px solid #e5e5e5; }
th { background: #f5f5f5; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       font-size: 12.5px; overflow-wrap: break-word; }
code.hash { word-break: break-all; }
.detail { overflow-wrap: anywhere; }
table.narrow { width: auto; min-width: 360px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; }
.chart { margin: 12px 0 20px; max-width: 100%; overflow-x: auto; }
.chart svg { max-width: 100%; height: auto; }
.muted { color: #666; }
footer { margin-top: 40px; color: #666; font-size: 12px; border-top: 1px solid #ddd;
       padding-top: 8px; }
@media print { body { padding: 0; max-width: none; } h2 { break-after: avoid; }
       tr { break-inside: avoid; } }
"""


def _e(value: Any) -> str:
    return escape_text(value)


def _num(value: Any) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else _e(value)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:,.1f} {unit} ({n:,} bytes)"
        value /= 1024
    return f"{n:,} bytes"


def _tag(kind: str, text: str | None = None) -> str:
    css = kind if kind in {"intact", "tampered", "partial", "fails", "warning", "info",
                           "unverifiable"} else "info"  # fmt: skip
    return f'<span class="tag t-{css}">{_e(text or kind)}</span>'


def _table(
    headers: Iterable[tuple[str, bool]], rows: Iterable[Iterable[str]], narrow: bool = False
) -> str:
    """Headers as (label, numeric); cells are already-escaped HTML."""
    headers = list(headers)
    out = ["<table class=narrow><thead><tr>" if narrow else "<table><thead><tr>"]
    out += [f"<th{' class=n' if numeric else ''}>{_e(label)}</th>" for label, numeric in headers]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = [
            f"<td{' class=n' if numeric else ''}>{cell}</td>"
            for (_, numeric), cell in zip(headers, row, strict=True)
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _verdict(report: Report, alerts: list[Mapping[str, Any]]) -> tuple[str, str, str, str]:
    """(css class, label, meaning, what Caracal itself recorded) of the verdict banner.

    A wrong key leads with that explanation; ingest alerts are said beside the chain's
    verdict, so an intact chain with tamper signals is never shown green only."""
    status = report.status
    label, meaning = STATUS_TEXT.get(status, (status.upper(), ""))
    css = status
    if report.likely_wrong_key:
        label = "WRONG KEY?"
        meaning = (
            report.verdict[0].upper() + report.verdict[1:] + ". The status stays "
            "tampered (exit 1): with this key nothing in this export is proven."
        )
    signals = ""
    if alerts:
        kinds = Counter(str(_get(a, "kind")) for a in alerts)
        signals = (
            f"Caracal itself recorded {len(alerts):,} tamper signal(s) at ingest "
            "(audit_ingest_alerts: "
            + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items()))
            + "): each is listed under Ingest alerts below."
        )
        if status == "intact":
            css = "alerts"
            label = f"INTACT, BUT CARACAL RECORDED {len(alerts):,} TAMPER SIGNAL(S)"
            meaning += (
                " The chain examined verifies; the alerts say what Caracal saw arrive "
                "(for instance a replayed event with different content), which the chain "
                "alone does not show."
            )
    return css, label, meaning, signals


def render_html(
    report: Report,
    stats: Mapping[str, Any],
    *,
    charts: Mapping[str, str] | None = None,
    generated_at: str | None = None,
    sources: Iterable[str] = (),
    zones: Iterable[str] | None = None,
    alerts: Iterable[Mapping[str, Any]] = (),
    title: str = TITLE,
) -> str:
    """The report as one HTML document (text). ``charts`` maps a heading to inline SVG;
    ``zones`` names the zones verification was narrowed to (counts cover every zone);
    ``alerts`` are the ingest alerts (``alerts.alert_records``), listed and named in the
    verdict."""
    from .chain.summary import fold_copies

    generated = generated_at or report.generated_at or _now()
    version = report.toolkit_version or __version__
    status = report.status
    alerts = list(alerts)
    css, label, meaning, signals = _verdict(report, alerts)
    findings = sorted(
        report.findings,
        key=lambda f: (SEVERITY_ORDER.get(f.severity, 9),) + tuple(f.sort_key()),
    )
    shown, folds = fold_copies(report)
    shown_ids = {id(f) for f in shown}
    parts: list[str] = [
        *_document_head(title, label, generated, version),
        f'<section class="verdict s-{_e(css)}" id="verdict">'
        f'<strong id="verdict-status">{_e(label)}</strong>{_e(meaning)}'
        + (f'<p id="verdict-alerts">{_e(signals)}</p>' if signals else "")
        + (f'<p id="verdict-admin">The admin chain (admin_audit_events) has its own '
           f'verdict, <a href="#admin">below</a>: '
           f'{_e(STATUS_TEXT.get(report.admin.status, (report.admin.status,))[0])}. '
           f'The exit code is that of both: {_e(report.overall_status)}.</p>'
           if report.admin is not None else "")
        + "</section>",
    ]

    # --- the facts of this run
    fingerprint = report.key_fingerprint
    key_text = (
        f"<code>{_e(fingerprint)}</code> (SHA-256 of the key bytes, first 16 hex digits; "
        "the key itself is not in this report)"
        if fingerprint
        else "no key was given: chain HMACs could not be checked"
    )
    kinds = Counter(f.kind for f in report.findings)
    failing = sum(1 for f in report.findings if f.severity == "fails")
    facts = [
        (
            "Verdict",
            _tag(status, STATUS_TEXT.get(status, (status.upper(), ""))[0])
            + (" " + _tag("fails", "wrong key?") if report.likely_wrong_key else "")
            + (" " + _tag("warning", f"{len(alerts):,} ingest alert(s)") if alerts else ""),
        ),
        ("Events checked", _num(report.events_checked)),
        ("Zones", _num(len(report.zones))),
        (
            "Findings",
            f"{len(report.findings):,} ({failing:,} failing verification)"
            + (
                ": " + ", ".join(f"{_e(k)} {n:,}" for k, n in sorted(kinds.items()))
                if kinds
                else ""
            ),
        ),
        (
            "Ingest alerts",
            f'<a href="#alerts">{len(alerts):,} recorded by Caracal</a>'
            if alerts else "none in the sources (an audit_ingest_alerts dump or a snapshot "
            "holds them)",
        ),
        ("HMAC key", key_text),
        ("Toolkit", f"caracal-forensics {_e(version)}"),
        ("Generated at", _e(generated)),
    ]
    if zones:
        facts.append(
            (
                "Zones verified",
                ", ".join(f"<code>{_e(z)}</code>" for z in zones)
                + " only (the counts and charts below cover every zone in the sources)",
            )
        )
    sources = list(sources)
    if sources:
        facts.append(("Sources given", "<br>".join(f"<code>{_e(s)}</code>" for s in sources)))
    parts.append("<h2>About this run</h2><dl class=facts>")
    parts += [f"<dt>{_e(name)}</dt><dd>{value}</dd>" for name, value in facts]
    parts.append("</dl>")
    if report.checks:
        parts.append("<h3>What each check covered</h3>")
        parts.append(
            _table(
                [("check", False), ("coverage", False)],
                ([f"<code>{_e(k)}</code>", _e(v)] for k, v in report.checks.items()),
                narrow=True,
            )
        )

    # --- inputs
    parts.append("<h2 id=inputs>What was examined</h2>")
    parts.append(
        '<p class="muted">Each input file as handed over: its size and SHA-256 let anyone '
        "check that they hold the same bytes (an object in a bucket: its ETag too).</p>"
    )
    inputs = list(report.inputs)
    etags = any(_get(i, "etag") for i in inputs)  # the column only for objects
    parts.append(
        _table(
            [("path", False), ("shape", False), ("size", True), ("rows", True), ("SHA-256", False),
             *([("ETag", False)] if etags else [])],
            (
                [
                    f"<code>{_e(_get(i, 'path'))}</code>",
                    _e(_get(i, "shape")),
                    _e(_size(int(_get(i, "bytes") or 0))),
                    _num(_get(i, "rows")),
                    f"<code class=hash>{_e(_get(i, 'sha256'))}</code>",
                    *([f"<code class=hash>{_e(_get(i, 'etag') or '')}</code>"] if etags else []),
                ]
                for i in inputs
            ),
        )
    )

    # --- verification per zone
    parts.append("<h2 id=zones>Verification per zone</h2>")
    parts.append(
        _table(
            [
                ("zone", False),
                ("verdict", False),
                ("events", True),
                ("first seq", True),
                ("last seq", True),
                ("last content_sha256 (anchor for a later run)", False),
            ],  # fmt: skip
            (
                [
                    f"<code>{_e(z.zone_id)}</code>",
                    _tag(z.status),
                    _num(z.events),
                    _num(z.first_seq),
                    _num(z.last_seq),
                    f"<code class=hash>{_e(z.last_content_sha256 or '')}</code>",
                ]
                for z in report.zones
            ),
        )
    )

    # --- what Caracal itself recorded at ingest
    if alerts:
        parts.append(f"<h2 id=alerts>Ingest alerts ({len(alerts):,})</h2>")
        parts.append(
            '<p class="muted">Tamper signals Caracal recorded when the events arrived '
            "(audit_ingest_alerts), each once however many dumps of the table were given; "
            "the source is the file and line it was read from.</p>"
        )
        parts.append(
            _table(
                [
                    ("observed at", False),
                    ("kind", False),
                    ("zone", False),
                    ("event", False),
                    ("alert id", False),
                    ("detail", False),
                    ("source (file:line)", False),
                ],  # fmt: skip
                (
                    [
                        _e(_get(a, "observed_at") or ""),
                        f"<code>{_e(_get(a, 'kind') or '')}</code>",
                        f"<code>{_e(_get(a, 'zone_id') or '')}</code>",
                        f"<code>{_e(_get(a, 'event_id') or '')}</code>",
                        _e(_get(a, "id") or ""),
                        f"<span class=detail>{_e(_get(a, 'detail') or '')}</span>",
                        f"<code>{_e(_get(a, 'source') or '')}</code>",
                    ]
                    for a in alerts
                ),
            )
        )

    # --- findings: the summary here, every finding in detail at the end
    parts.append(f"<h2 id=findings>Findings ({len(findings):,})</h2>")
    if not findings:
        parts.append("<p>None: every check that ran found nothing to report.</p>")
    else:
        summary = Counter((f.severity, f.kind) for f in findings)
        parts.append(
            '<p class="muted">Each finding is listed with its event and source row under '
            '<a href="#all-findings">Every finding</a> below'
            + (
                f"; the {sum(len(f.findings) for f in folds):,} exact copies of the same "
                "export in other shapes are summarised there, one line per pair of shapes "
                "(the JSON form of the verification report lists each)"
                if folds else ""
            )
            + ".</p>"
        )
        parts.append(
            _table(
                [("severity", False), ("kind", False), ("count", True)],
                (
                    [_tag(sev), f"<code>{_e(kind)}</code>", _num(n)]
                    for (sev, kind), n in sorted(
                        summary.items(), key=lambda kv: (SEVERITY_ORDER.get(kv[0][0], 9), kv[0])
                    )
                ),
                narrow=True,
            )
        )

    # --- counts
    parts.append("<h2 id=counts>Counts</h2>")
    parts.append("<dl class=facts>")
    for name, key in (
        ("Events (distinct zone, id)", "events"),
        ("Input rows", "rows"),
        ("Further copies of an event", "duplicate_rows"),
        ("Ingest alerts", "alerts"),
        ("First occurred_at", "first_occurred_at"),
        ("Last occurred_at", "last_occurred_at"),
    ):
        parts.append(f"<dt>{_e(name)}</dt><dd>{_num(stats.get(key))}</dd>")
    parts.append("</dl>")
    total = stats.get("events") or 1
    for heading, key in (("By decision", "by_decision"), ("By event type", "by_event_type")):
        counts = stats.get(key) or {}
        parts.append(f"<h3>{_e(heading)}</h3>")
        parts.append(
            _table(
                [("value", False), ("events", True), ("share", True)],
                ([f"<code>{_e(k)}</code>", _num(v), f"{v / total:.1%}"] for k, v in counts.items()),
                narrow=True,
            )
        )
    partial = any(z.get("partials") for z in stats.get("zones") or [])
    parts.append("<h3>Zones (chain_seq range in the export)</h3>")
    parts.append(
        _table(
            [
                ("zone", False),
                ("events", True),
                ("first seq", True),
                ("last seq", True),
                ("missing seq", True),
                ("allow", True),
                ("deny", True),
                *([("partial", True)] if partial else []),
                ("first occurred_at", False),
                ("last occurred_at", False),
            ],  # fmt: skip
            (
                [
                    f"<code>{_e(z['zone_id'])}</code>",
                    _num(z["events"]),
                    _num(z["first_seq"]),
                    _num(z["last_seq"]),
                    _num(z["missing_seq"]),
                    _num(z["allows"]),
                    _num(z["denies"]),
                    *([_num(z.get("partials"))] if partial else []),
                    _e(z["first_occurred_at"] or ""),
                    _e(z["last_occurred_at"] or ""),
                ]
                for z in stats.get("zones") or []
            ),
        )
    )

    # --- charts (our own SVG: its data text is escaped where it is built)
    if charts:
        parts.append("<h2 id=charts>Charts</h2>")
        for heading, svg in charts.items():
            parts.append(f'<figure class=chart aria-label="{_e(heading)}">{svg}</figure>')

    if findings:
        parts.append(f"<h2 id=all-findings>Every finding ({len(findings):,})</h2>")
        for severity in sorted(
            {f.severity for f in findings}, key=lambda v: SEVERITY_ORDER.get(v, 9)
        ):
            group = [f for f in findings if f.severity == severity]
            parts.append(
                f"<h3>{_tag(severity)} {len(group):,}: {_e(SEVERITY_TEXT.get(severity, ''))}</h3>"
            )
            group = [f for f in group if id(f) in shown_ids]
            pairs = [fold for fold in folds if fold.findings[0].severity == severity]
            if pairs:
                parts.append(
                    _table(
                        [("kind", False), ("copies", True), ("shapes", False),
                         ("files", False)],
                        (
                            [
                                "<code>duplicate_event</code>",
                                _num(len(fold.findings)),
                                f"<span class=detail>{_e(fold.summary())}</span>",
                                f"<span class=detail>{_e(fold.files_text(limit=10))}</span>",
                            ]
                            for fold in pairs
                        ),
                    )
                )
            if not group:
                continue
            parts.append(
                _table(
                    [
                        ("kind", False),
                        ("zone", False),
                        ("seq", True),
                        ("event", False),
                        ("source (file:line)", False),
                        ("detail", False),
                    ],  # fmt: skip
                    (
                        [
                            f"<code>{_e(f.kind)}</code>",
                            f"<code>{_e(f.zone_id or '')}</code>",
                            _num(f.chain_seq),
                            f"<code>{_e(f.event_id or '')}</code>",
                            f"<code>{_e(f.source or '')}</code>",
                            f"<span class=detail>{_e(f.detail)}</span>",
                        ]
                        for f in group
                    ),
                )
            )

    if report.admin is not None:
        parts += admin_section(report.admin)

    parts += _document_end(generated, version)
    return "\n".join(parts) + "\n"


def _document_head(title: str, label: str, generated: str, version: str) -> list[str]:
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}: {_e(label)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Independent verification of exported Caracal audit data, '
        f"generated {_e(generated)} by caracal-forensics {_e(version)}.</p>",
    ]


def _document_end(generated: str, version: str) -> list[str]:
    return [
        "<footer>Generated by caracal-forensics "
        f"{_e(version)} at {_e(generated)}. This file is "
        "self-contained: it loads no script, style, font or image from anywhere. "
        "Finding kinds are named as in Caracal's audit format (docs/FORMAT.md, section 5, "
        "in the caracal-forensics source); a finding's severity says whether it fails "
        "verification (fails), may be an export artefact (warning), is for information "
        "(info), or names a check that could not run (unverifiable).</footer>",
        "</body></html>",
    ]


def render_admin_html(report: Report, *, generated_at: str | None = None,
                      sources: Iterable[str] = (), title: str = TITLE) -> str:
    """The evidence report of sources holding the admin chain alone (no event export):
    its section only, as one HTML document."""
    generated = generated_at or report.generated_at or _now()
    version = report.toolkit_version or __version__
    label = STATUS_TEXT.get(report.status, (report.status.upper(), ""))[0]
    parts = _document_head(title, label, generated, version)
    parts.append('<p class="muted">The sources hold no audit events: this report covers '
                 "the admin chain only.</p>")
    sources = list(sources)
    if sources:
        parts.append("<p>Sources given: " + ", ".join(f"<code>{_e(s)}</code>" for s in sources)
                     + "</p>")
    parts += admin_section(report)
    parts += _document_end(generated, version)
    return "\n".join(parts) + "\n"


def admin_section(admin: Report) -> list[str]:
    """The admin chain's own section (FORMAT.md 8): its verdict, what each check covered,
    its inputs, its chains (``(global)`` for the rows without a zone) and every finding."""
    from .chain.summary import fold_copies

    label, meaning = STATUS_TEXT.get(admin.status, (admin.status.upper(), ""))
    failing = sum(1 for f in admin.findings if f.fails)
    parts = [
        "<h2 id=admin>The admin chain (admin_audit_events)</h2>",
        '<p class="muted">Who changed which zone, application, resource, provider, grant or '
        "policy set: a second hash chain, per zone and one global chain "
        "(<code>(global)</code>) for changes without a zone, verified with the same key "
        "and the same checks as the events.</p>",
        f'<section class="verdict s-{_e(admin.status)}" id="admin-verdict">'
        f'<strong id="admin-verdict-status">{_e(label)}</strong>{_e(meaning)}</section>',
        "<dl class=facts>",
        f"<dt>Admin changes checked</dt><dd>{_num(admin.events_checked)}</dd>",
        f"<dt>Chains</dt><dd>{_num(len(admin.zones))}</dd>",
        f"<dt>Findings</dt><dd>{len(admin.findings):,} ({failing:,} failing "
        "verification)</dd>",
        "</dl>",
    ]
    if admin.checks:
        parts.append(_table([("check", False), ("coverage", False)],
                            ([f"<code>{_e(k)}</code>", _e(v)] for k, v in admin.checks.items()),
                            narrow=True))
    parts.append(_table(
        [("path", False), ("shape", False), ("size", True), ("rows", True),
         ("SHA-256", False)],
        ([f"<code>{_e(i.path)}</code>", _e(i.shape), _e(_size(int(i.bytes or 0))),
          _num(i.rows), f"<code class=hash>{_e(i.sha256)}</code>"] for i in admin.inputs)))
    parts.append(_table(
        [("chain", False), ("verdict", False), ("changes", True), ("first seq", True),
         ("last seq", True), ("last content_sha256 (anchor for a later run)", False)],
        ([f"<code>{_e(z.zone_id)}</code>", _tag(z.status), _num(z.events),
          _num(z.first_seq), _num(z.last_seq),
          f"<code class=hash>{_e(z.last_content_sha256 or '')}</code>"] for z in admin.zones)))
    shown, folds = fold_copies(admin)
    if folds:
        parts.append(_table(
            [("kind", False), ("copies", True), ("shapes", False)],
            (["<code>duplicate_event</code>", _num(len(fold.findings)),
              f"<span class=detail>{_e(fold.summary())}</span>"] for fold in folds)))
    findings = sorted(shown, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9),)
                      + tuple(f.sort_key()))
    if findings:
        parts.append(_table(
            [("severity", False), ("kind", False), ("chain", False), ("seq", True),
             ("admin change", False), ("source (file:line)", False), ("detail", False)],
            ([_tag(f.severity), f"<code>{_e(f.kind)}</code>",
              f"<code>{_e(f.zone_id or '')}</code>", _num(f.chain_seq),
              f"<code>{_e(f.event_id or '')}</code>", f"<code>{_e(f.source or '')}</code>",
              f"<span class=detail>{_e(f.detail)}</span>"] for f in findings)))
    else:
        parts.append("<p>No finding: every check that ran found nothing to report.</p>")
    return parts


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    snap: Snapshot,
    verifier: Verifier | None = None,
    *,
    sources: Iterable[str] = (),
    **options: Any,
) -> tuple[Report, str]:
    """Verify ``snap`` with ``verifier`` (else ``Verifier(**options)``: key, anchor, zones,
    ...) and render the evidence report; returns (Report, HTML text)."""
    from .chain.verifier import Verifier
    from .keys import key_fingerprint

    if verifier is None:
        verifier = Verifier(**options)
    elif options:
        raise TypeError(f"build_report: {', '.join(options)} given with a verifier")
    report = verifier.verify_snapshot(snap)
    sources = list(sources)
    if sources:  # the admin chain beside the events, its own section (FORMAT.md 8)
        report = verifier.with_admin(report, verifier.verify_admin_paths(sources))
    if not report.key_fingerprint and verifier.key_bytes is not None:
        report.key_fingerprint = key_fingerprint(verifier.key_bytes)
    if not report.inputs:
        from .chain.report import InputSummary

        report.inputs = [InputSummary.of(i) for i in snap.inputs]
    charts = {
        "Deny rate over time": deny_rate_over_time(snap),
        "Top denied principals": top_denied_principals(snap),
    }
    from .alerts import alert_records, query_alerts

    html = render_html(
        report,
        snap.stats(),
        charts=charts,
        sources=sources,
        zones=list(verifier.zones) if verifier.zones is not None else None,
        alerts=list(alert_records(query_alerts(snap))),
    )
    return report, html


def write_report(
    snap: Snapshot,
    out: str | os.PathLike[str],
    verifier: Verifier | None = None,
    *,
    sources: Iterable[str] = (),
    **options: Any,
) -> Report:
    """Verify, render and write the report to ``out`` (atomically); returns the Report.
    ``verifier`` as for :func:`build_report` (else ``Verifier(**options)``).

    Refuses to write over or into one of the inputs (``outputs.refuse_overwriting_inputs``).
    """
    from .outputs import check_output_file, refuse_overwriting_inputs, write_atomically

    refuse_overwriting_inputs(out, [*sources, *(item.path for item in snap.inputs)])
    check_output_file(out)  # before the verification, not after
    report, html = build_report(snap, verifier, sources=sources, **options)
    write_atomically(out, html)
    return report
