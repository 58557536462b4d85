"""The evidence report: content, exit codes, hostile data, and no external loads.

The HTML is checked twice for loads: statically (no element or attribute that could
fetch anything, no CSS url() but fragments and data:), and by rendering it in headless
Chromium (Debian's chromium package; ``make system-deps`` installs it), which must show
the verdict. Data is hostile: metadata, principal ids and even input file names carry
markup that must come out as text.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.cli import cli
from support.crafted import KEY_HEX, SCRIPT, chain_events, crafted_events, write_jsonl

import caracal_forensics as cf
from caracal_forensics import __version__
from caracal_forensics.chain.report import Finding, InputSummary, Report, ZoneSummary
from caracal_forensics.keys import key_fingerprint
from caracal_forensics.report_html import render_html, write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EVIL_NAME = "<img src=x onerror=alert(2)>.jsonl"

# --- a static check that nothing in the page can load anything ---------------------------

LOADING_TAGS = {
    "script", "img", "iframe", "frame", "object", "embed", "link", "base", "audio", "video",
    "source", "track", "picture", "form", "input", "image", "use", "feimage", "foreignobject",
}  # fmt: skip
URL_ATTRIBUTES = {
    "src", "href", "xlink:href", "action", "formaction", "poster", "srcset", "data",
    "background", "ping", "manifest", "codebase", "cite", "longdesc",
}  # fmt: skip
CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.I)


class LoadFinder(HTMLParser):
    """Collects every way the page could make a request."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.tags: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in LOADING_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "style":
            self._style = True
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}>")
            if name in URL_ATTRIBUTES and not (value.startswith("#") or value.startswith("data:")):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name == "style":
                self._css(value)
            if tag == "meta" and name == "http-equiv" and value.lower() == "refresh":
                self.problems.append("<meta refresh>")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self._css(data)

    def _css(self, text: str) -> None:
        if "@import" in text.lower():
            self.problems.append("@import")
        for target in CSS_URL.findall(text):
            if not (target.startswith("#") or target.startswith("data:")):
                self.problems.append(f"url({target})")


def load_problems(html: str) -> LoadFinder:
    finder = LoadFinder()
    finder.feed(html)
    finder.close()
    return finder


def test_the_load_finder_finds_loads() -> None:
    page = (
        '<html><head><link rel=stylesheet href="http://x/a.css"><style>@import "b.css"; '
        "p { background: url(http://x/i.png) }</style></head><body>"
        '<a href="#ok">ok</a><img src="data:image/png;base64,AA"><svg><image href="http://x"/>'
        '</svg><div style="background:url(//x)" onclick="f()"></div><script src=x></script>'
        "</body></html>"
    )
    problems = load_problems(page).problems
    expected = [
        "<link>", "@import", "url(http://x/i.png)", "<img>", "<image>",
        "<image href='http://x'>", "url(//x)", "<div onclick>", "<script>",
    ]  # fmt: skip
    for problem in expected:
        assert problem in problems, problem
    assert not any("#ok" in p for p in problems)


# --- building reports ---------------------------------------------------------------------


def export(folder: Path, *, tamper: bool = False, evil_copy: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = chain_events(crafted_events())
    if tamper:
        rows[7]["decision"] = "deny"  # e08, line 8: edited after the fact
    write_jsonl(folder / "db.jsonl", rows)
    if evil_copy:
        shutil.copy(folder / "db.jsonl", folder / EVIL_NAME)
    (folder / "alerts.csv").write_text(
        "id,event_id,zone_id,kind,detail,observed_at\n"
        f'1,e07,z1,content_mismatch_on_replay,"{SCRIPT}",2026-05-11 11:00:00+00\n',
        "utf-8",
    )
    key = folder.parent / "key.hex"
    key.write_text(KEY_HEX + "\n")
    return folder


def run_report(capsys, folder: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    code, stdout, err = cli(capsys, "report", "--out", str(out), "--source", str(folder), *extra)
    return code, stdout, err


def common_checks(html: str, folder: Path) -> None:
    finder = load_problems(html)
    assert finder.problems == []
    assert "script" not in finder.tags
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for path in sorted(folder.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in html, path.name
    assert KEY_HEX not in html and KEY_HEX.upper() not in html
    assert f"caracal-forensics {__version__}" in html
    assert html.count("<svg") == 2
    # hostile data is text, never markup
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "</script><script>" not in html


def test_intact_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = export(tmp_path / "export")
    out = tmp_path / "evidence.html"
    code, stdout, _ = run_report(capsys, folder, out, "--key-file", str(tmp_path / "key.hex"))
    assert code == 0 and "intact" in stdout and str(out) in stdout
    html = out.read_text("utf-8")
    common_checks(html, folder)
    # the chain is intact, and Caracal recorded one alert: the banner says both
    assert 'id="verdict-status">INTACT, BUT CARACAL RECORDED 1 TAMPER SIGNAL(S)<' in html
    assert key_fingerprint(bytes.fromhex(KEY_HEX)) in html
    for zone in ("z1", "z2"):
        assert f"<code>{zone}</code>" in html
    assert "13 of 21 events denied" in html
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # shareable, not private


def test_report_without_a_key_is_partial(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    folder = export(tmp_path / "export")
    out = tmp_path / "evidence.html"
    code, stdout, _ = run_report(capsys, folder, out)
    assert code == 3 and "partial" in stdout
    html = out.read_text("utf-8")
    common_checks(html, folder)
    assert 'id="verdict-status">PARTIAL<' in html and "no key was given" in html
    # the key may also come from the environment, as Caracal's services take it
    monkeypatch.setenv("AUDIT_HMAC_KEY_FILE", str(tmp_path / "key.hex"))
    code, _, _ = run_report(capsys, folder, out)
    assert code == 0


def test_tampered_report_names_the_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = export(tmp_path / "export", tamper=True, evil_copy=True)
    out = tmp_path / "evidence.html"
    code, stdout, _ = run_report(capsys, folder, out, "--key-file", str(tmp_path / "key.hex"))
    assert code == 1 and "tampered" in stdout
    html = out.read_text("utf-8")
    common_checks(html, folder)
    assert 'id="verdict-status">TAMPERED<' in html
    assert "<code>e08</code>" in html and "content_mismatch" in html
    assert "db.jsonl:8" in html
    # a file named like markup is listed as text
    assert "&lt;img src=x onerror=alert(2)&gt;.jsonl" in html
    report = cf.open(str(folder)).verify(key=KEY_HEX)
    shown = re.search(r"<h2 id=findings>Findings \(([\d,]+)\)", html)
    assert shown and int(shown.group(1).replace(",", "")) == len(report.findings)
    rendered = len(re.findall(r"<tr><td><code>(?:[a-z_]+)</code></td><td><code>", html))
    assert rendered == len(report.findings)  # every finding has its row
    render_in_chromium(out, tmp_path, "TAMPERED")


def test_report_refuses_to_overwrite_an_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = export(tmp_path / "export")
    before = (folder / "db.jsonl").read_bytes()
    code, out, err = run_report(capsys, folder, folder / "db.jsonl")
    assert code == 2 and "is inside the input" in err
    assert (folder / "db.jsonl").read_bytes() == before
    code, _, err = run_report(capsys, folder, tmp_path / "missing" / "e.html")
    assert code == 2 and "does not exist" in err


def test_render_html_escapes_every_field() -> None:
    evil = '<svg onload=alert(1)>"\u202e'
    report = Report(
        status="tampered",
        events_checked=2,
        zones=[ZoneSummary(evil, 2, 1, 2, "ab" * 32, "tampered")],
        findings=[
            Finding("hmac_mismatch", evil, evil, 2, f"{evil}.jsonl:3", f"detail {evil}"),
            Finding("duplicate_event", evil, "e1", 1, "x.jsonl:1", "copy"),
        ],
        inputs=[InputSummary(f"{evil}.jsonl", 10, "cd" * 32, "db_jsonl", 2)],
        key_fingerprint="sha256:0123456789abcdef",
        toolkit_version=__version__,
        generated_at="2026-05-11T12:00:00+00:00",
        checks={"hmac": evil},
    )
    stats = {
        "events": 2, "rows": 2, "duplicate_rows": 0, "alerts": 0,
        "first_occurred_at": "2026-05-11T10:00:00.000000Z",
        "last_occurred_at": "2026-05-11T10:00:01.000000Z",
        "by_decision": {evil: 2}, "by_zone": {evil: 2}, "by_event_type": {evil: 2},
        "zones": [{"zone_id": evil, "events": 2, "first_seq": 1, "last_seq": 2,
                   "missing_seq": 0, "allows": 0, "denies": 2,
                   "first_occurred_at": None, "last_occurred_at": None}],
    }  # fmt: skip
    html = render_html(report, stats, sources=[evil])
    assert load_problems(html).problems == []
    assert "<svg onload" not in html and "\u202e" not in html
    assert html.count("&lt;svg onload=alert(1)&gt;&quot;\\u202e") >= 10
    assert "sha256:0123456789abcdef" in html and "2026-05-11T12:00:00+00:00" in html
    listed = html[html.index("id=all-findings") :]
    assert listed.index("hmac_mismatch") < listed.index("duplicate_event")  # failing first


def test_write_report_api(tmp_path: Path) -> None:
    folder = export(tmp_path / "export")
    snap = cf.open(str(folder))
    report = write_report(snap, tmp_path / "r.html", key=KEY_HEX, sources=[str(folder)])
    assert report.status == "intact" and report.exit_code == 0
    html = (tmp_path / "r.html").read_text("utf-8")
    assert str(folder) in html
    assert 'id="verdict-status">INTACT, BUT CARACAL RECORDED 1 TAMPER SIGNAL(S)<' in html
    assert "Zones verified" not in html
    narrowed = write_report(snap, tmp_path / "z.html", key=KEY_HEX, zones=["z2"])
    assert [z.zone_id for z in narrowed.zones] == ["z2"]
    html = (tmp_path / "z.html").read_text("utf-8")
    assert "Zones verified</dt><dd><code>z2</code> only" in html


# --- rendering in a real browser -----------------------------------------------------------


def render_in_chromium(page: Path, tmp_path: Path, verdict: str) -> None:
    """Headless Chromium renders the file (with any host lookup failing) and shows it."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make system-deps` (apt-get install chromium)")
    profile = tmp_path / "chromium-profile"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not render the report within 120 s")
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert f'id="verdict-status">{verdict}<' in dom
    assert "Verification per zone" in dom and dom.count("<svg") == 2
    # what the browser built holds no element that hostile data could have injected
    finder = load_problems(dom)
    assert finder.problems == [] and "script" not in finder.tags
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom


def test_chromium_renders_an_intact_report(tmp_path: Path) -> None:
    folder = export(tmp_path / "export")
    out = tmp_path / "evidence.html"
    write_report(cf.open(str(folder)), out, key=KEY_HEX)
    render_in_chromium(out, tmp_path, "INTACT, BUT CARACAL RECORDED 1 TAMPER SIGNAL(S)")
    (folder / "alerts.csv").unlink()
    write_report(cf.open(str(folder)), out, key=KEY_HEX)
    render_in_chromium(out, tmp_path, "INTACT")


def test_report_json_is_not_the_html(tmp_path: Path) -> None:
    """The HTML is for people; the machine-readable verdict stays verify --json's."""
    folder = export(tmp_path / "export")
    report = write_report(cf.open(str(folder)), tmp_path / "e.html", key=KEY_HEX)
    assert json.loads(report.to_json())["status"] == "intact"


# --- what the report says first: ingest alerts, a wrong key, copies across shapes -------


def _alerts_dumped_twice(folder: Path) -> None:
    """The alerts table as CSV (written by ``export``) and as JSON lines, plus a second."""
    (folder / "alerts.csv").write_text(
        "id,event_id,zone_id,kind,detail,observed_at\n"
        "1,e07,z1,content_mismatch_on_replay,stored=aa incoming=bb,2026-05-11 11:00:00+00\n"
        "2,e09,z2,content_mismatch_on_replay,stored=cc incoming=dd,2026-05-11 11:05:00+00\n",
        "utf-8",
    )
    (folder / "alerts.jsonl").write_text(
        '{"id": 1, "event_id": "e07", "zone_id": "z1", "kind": "content_mismatch_on_replay", '
        '"detail": "stored=aa incoming=bb", "observed_at": "2026-05-11T11:00:00+00:00"}\n'
        '{"id": 2, "event_id": "e09", "zone_id": "z2", "kind": "content_mismatch_on_replay", '
        '"detail": "stored=cc incoming=dd", "observed_at": "2026-05-11T11:05:00+00:00"}\n',
        "utf-8",
    )


def test_ingest_alerts_are_listed_and_named_in_the_verdict(tmp_path: Path) -> None:
    """Issues 15.8 and 15.12: each alert is listed once, and an intact chain with
    alerts is not green only: the banner says Caracal recorded tamper signals."""
    folder = export(tmp_path / "export")
    _alerts_dumped_twice(folder)
    out = tmp_path / "e.html"
    report = write_report(cf.open(str(folder)), out, key=KEY_HEX)
    assert report.status == "intact" and report.exit_code == 0
    html = out.read_text("utf-8")
    assert 'id="verdict-status">INTACT, BUT CARACAL RECORDED 2 TAMPER SIGNAL(S)<' in html
    assert 'class="verdict s-alerts"' in html and 'class="verdict s-intact"' not in html
    banner = html[html.index('id="verdict"') : html.index("</section>")]
    assert "Caracal itself recorded 2 tamper signal(s)" in banner
    assert "content_mismatch_on_replay 2" in banner
    listed = html[html.index("<h2 id=alerts>") : html.index("<h2 id=findings>")]
    assert "Ingest alerts (2)" in listed
    assert listed.count("<tr><td>2026-05-11T11:0") == 2  # each alert once, not 4 rows
    assert "stored=aa incoming=bb" in listed and "<code>e09</code>" in listed
    assert f"{folder / 'alerts.csv'}:2" in listed  # where it was read
    assert "<dt>Ingest alerts</dt><dd>2</dd>" in html  # the counts agree


def test_a_wrong_key_leads_with_the_key(tmp_path: Path) -> None:
    """Issue 15.13: every HMAC fails and nothing else does: say the key is probably
    wrong, first, in the JSON report and the HTML; the status (and exit 1) stays."""
    folder = export(tmp_path / "export")
    wrong = "ab" * 32
    report = write_report(cf.open(str(folder)), tmp_path / "w.html", key=wrong)
    assert report.status == "tampered" and report.exit_code == 1
    data = json.loads(report.to_json())
    assert data["likely_wrong_key"] is True
    assert data["verdict"].startswith(
        "every HMAC fails and nothing else does: the key is probably wrong (key "
        + key_fingerprint(bytes.fromhex(wrong))
    )
    html = (tmp_path / "w.html").read_text("utf-8")
    assert 'id="verdict-status">WRONG KEY?<' in html
    assert "Every HMAC fails and nothing else does" in html
    # a tampered export with the right key is not called a wrong key
    tampered = export(tmp_path / "tampered", tamper=True)
    right = cf.open(str(tampered)).verify(key=KEY_HEX)
    assert right.status == "tampered" and not right.likely_wrong_key
    assert json.loads(right.to_json())["likely_wrong_key"] is False


def test_copies_across_shapes_are_folded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 15.7: the same export as a table dump and as `audit tail --json`: one
    summary row per pair of shapes in the HTML, every copy still in the JSON report."""
    folder = export(tmp_path / "export")
    code, lines, _ = cli(capsys, "audit", "tail", "-s", str(folder / "db.jsonl"),
                         "--limit", "0", "--json")
    assert code == 0
    (folder / "cli.jsonl").write_text(lines, "utf-8")
    out = tmp_path / "e.html"
    report = write_report(cf.open(str(folder)), out, key=KEY_HEX)
    copies = report.findings_of("duplicate_event")
    rows = len(lines.splitlines())
    assert len(copies) == rows and report.status == "intact"
    assert all(f.source and f.event_id for f in copies)  # the JSON report keeps each
    html = out.read_text("utf-8")
    every = html[html.index("id=all-findings") :]
    assert every.count("<tr><td><code>duplicate_event</code>") == 1
    assert f"{rows} event(s) kept from " in every and "as exact copies" in every
    assert "<code>e07</code>" not in every  # no row per copy
