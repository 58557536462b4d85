"""What verification found: small typed models and their JSON form (FORMAT.md section 5).

A Report is also the anchor of a later run (``--anchor REPORT.json``): its ``zones`` hold
the trusted heads (last_seq, last_content_sha256), so ``from_json`` must read back what
``to_json`` writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import InputError


class Kind:
    """Finding kinds, as named in FORMAT.md section 5."""

    CONTENT_MISMATCH = "content_mismatch"
    HMAC_MISMATCH = "hmac_mismatch"
    CHAIN_BREAK = "chain_break"
    SEQUENCE_GAP = "sequence_gap"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    DUPLICATE_EVENT = "duplicate_event"
    TRUNCATED = "truncated"
    ANCHOR_MISMATCH = "anchor_mismatch"
    UNANCHORED_START = "unanchored_start"
    UNVERIFIABLE = "unverifiable"
    #: a snapshot's event files disagree with its manifest's own counts or zone heads:
    #: the snapshot was altered after it was written (its hashes recomputed, say)
    MANIFEST_MISMATCH = "manifest_mismatch"
    #: before the ledger (FORMAT.md 7): a wire event's producer signature is not the
    #: HMAC of its bytes (an injected or altered message)
    SIGNATURE_MISMATCH = "signature_mismatch"
    #: a validly signed wire event has a ledger row's id and occurred_at, other content
    CONFLICTING_VERSION = "conflicting_version"
    #: a ledger row's content differs from the wire bytes its ingest_signature signs
    PRODUCER_MISMATCH = "producer_mismatch"
    #: a wire event with no ledger row in the sources given (it never arrived)
    NOT_IN_LEDGER = "not_in_ledger"
    #: no hourly OCSF file for an hour inside the range said complete (``chain/hours.py``)
    MISSING_HOUR = "missing_hour"
    #: reconciling two sets of sources (``reconcile.py``): an event on one side only
    MISSING_IN_SOURCE = "missing_in_source"
    #: reconciling: the same event differs in a field both sides can carry
    FIELD_MISMATCH = "field_mismatch"


class Reason:
    """Why a finding was written, where one kind has a cause a program must tell apart
    (``Finding.reason``); None for the rest."""

    #: the one hmac_mismatch of a zone whose every HMAC checked fails: a wrong key, or
    #: every event re-chained without it (``Report.likely_wrong_key``)
    EVERY_HMAC_FAILED = "every_hmac_failed"
    #: the unverifiable of an admin chain written without a key (NULL chain_hmac): linked
    #: but unsigned (FORMAT.md 8)
    UNSIGNED = "unsigned"
    #: the unverifiable of rows whose payload key order was not found within the budget
    KEY_ORDER = "key_order_not_found"


class Severity:
    FAILS = "fails"
    WARNING = "warning"
    INFO = "info"
    UNVERIFIABLE = "unverifiable"


SEVERITY: dict[str, str] = {
    Kind.CONTENT_MISMATCH: Severity.FAILS,
    Kind.HMAC_MISMATCH: Severity.FAILS,
    Kind.CHAIN_BREAK: Severity.FAILS,
    Kind.SEQUENCE_GAP: Severity.FAILS,
    Kind.CONFLICTING_DUPLICATE: Severity.FAILS,
    Kind.TRUNCATED: Severity.FAILS,
    Kind.ANCHOR_MISMATCH: Severity.FAILS,
    Kind.MANIFEST_MISMATCH: Severity.FAILS,
    Kind.SIGNATURE_MISMATCH: Severity.FAILS,
    Kind.CONFLICTING_VERSION: Severity.FAILS,
    Kind.PRODUCER_MISMATCH: Severity.FAILS,
    Kind.NOT_IN_LEDGER: Severity.WARNING,
    Kind.MISSING_HOUR: Severity.WARNING,
    Kind.MISSING_IN_SOURCE: Severity.FAILS,
    Kind.FIELD_MISMATCH: Severity.FAILS,
    Kind.DUPLICATE_EVENT: Severity.WARNING,
    Kind.UNANCHORED_START: Severity.INFO,
    Kind.UNVERIFIABLE: Severity.UNVERIFIABLE,
}


#: Per zone and kind, at most this many findings are listed; the rest are counted.
MAX_FINDINGS_PER_KIND = 1000


class Status:
    INTACT = "intact"
    TAMPERED = "tampered"
    PARTIAL = "partial"


EXIT_CODES = {Status.INTACT: 0, Status.TAMPERED: 1, Status.PARTIAL: 3}


def worst(*statuses: str) -> str:
    """tampered over partial over intact: the status of several sections together."""
    for status in (Status.TAMPERED, Status.PARTIAL):
        if status in statuses:
            return status
    return Status.INTACT


def status_of(findings: list[Finding]) -> str:
    """tampered if any finding fails, partial if a check could not run, else intact."""
    severities = {f.severity for f in findings}
    if Severity.FAILS in severities:
        return Status.TAMPERED
    if Severity.UNVERIFIABLE in severities:
        return Status.PARTIAL
    return Status.INTACT


@dataclass(frozen=True)
class Finding:
    """One thing verification found, located at an event and at the row it came from.

    ``source`` is ``file:line`` (line, row or element number, per the shape); zone-level
    findings (no key, a missing zone) have no event, seq or source. ``detail`` is for a
    reader; ``reason`` (a ``Reason``, else None) is for a program, and is written to the
    JSON only when set.
    """

    kind: str
    zone_id: str | None
    event_id: str | None
    chain_seq: int | None
    source: str | None
    detail: str
    severity: str = ""
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SEVERITY:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if not self.severity:
            object.__setattr__(self, "severity", SEVERITY[self.kind])

    @property
    def fails(self) -> bool:
        return self.severity == Severity.FAILS

    @property
    def every_hmac_failed(self) -> bool:
        """The one finding verify writes for a zone whose HMACs all fail (a wrong key?)."""
        return self.reason == Reason.EVERY_HMAC_FAILED

    def sort_key(self) -> tuple:
        return (
            self.zone_id or "",
            self.chain_seq if self.chain_seq is not None else -1,
            self.source or "",
            self.kind,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.reason is None:
            del data["reason"]
        return data


@dataclass(frozen=True)
class ZoneSummary:
    """One zone's chain as seen in this export; ``last_*`` is the head a later run anchors to."""

    zone_id: str
    events: int
    first_seq: int | None
    last_seq: int | None
    last_content_sha256: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InputSummary:
    """One examined input file, fingerprinted as handed over."""

    path: str
    bytes: int
    sha256: str
    shape: str
    rows: int
    #: an object's ETag (an ``s3://`` input), written to the JSON only when set
    etag: str | None = None

    @classmethod
    def of(cls, value: Any) -> InputSummary:
        """From anything with path/bytes/sha256/shape/rows[/etag] (sources.InputFile, a
        dict)."""
        if isinstance(value, InputSummary):
            return value
        get = value.get if isinstance(value, dict) else lambda name: getattr(value, name)
        return cls(
            path=str(get("path")),
            bytes=int(get("bytes") or 0),
            sha256=str(get("sha256") or ""),
            shape=str(get("shape") or ""),
            rows=int(get("rows") or 0),
            etag=(value.get("etag") if isinstance(value, dict)
                  else getattr(value, "etag", None)) or None,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.etag is None:
            del data["etag"]
        return data


@dataclass
class Report:
    """The outcome of one verification run. ``checks`` says what each check covered."""

    status: str
    events_checked: int
    zones: list[ZoneSummary] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    inputs: list[InputSummary] = field(default_factory=list)
    key_fingerprint: str | None = None
    toolkit_version: str = ""
    generated_at: str = ""
    checks: dict[str, str] = field(default_factory=dict)
    #: malformed lines left out of this run (``on_bad_line="skip"``); about the run, not
    #: the chain, so not written to the JSON (nor compared)
    skipped_lines: int = field(default=0, compare=False, repr=False)
    #: which chain this report is of: "events" (FORMAT.md 2) or "admin" (FORMAT.md 8)
    chain: str = "events"
    #: the admin chain's own report when the sources held both chains (a second section
    #: with its own status and verdict); ``overall_status`` takes both into account
    admin: Report | None = None

    @property
    def overall_status(self) -> str:
        """The status of every section together (what the exit code says)."""
        return worst(self.status, *([self.admin.status] if self.admin is not None else []))

    def sections(self) -> list[Report]:
        """This report and the admin chain's, when there is one."""
        return [self] + ([self.admin] if self.admin is not None else [])

    @property
    def exit_code(self) -> int:
        """0 intact, 1 tampered, 3 partial (2 is for usage and input errors), over every
        section."""
        return EXIT_CODES[self.overall_status]

    @property
    def ok(self) -> bool:
        return self.overall_status == Status.INTACT

    @property
    def likely_wrong_key(self) -> bool:
        """Every HMAC of every zone fails and nothing else does: content hashes, links
        and sequence hold, so the key is probably not the one Caracal used (or every
        event was re-chained without it; the status stays tampered: nothing is proven)."""
        failing = [f for f in self.findings if f.fails]
        if not failing or not any(f.every_hmac_failed for f in failing):
            return False
        if any(f.kind != Kind.HMAC_MISMATCH for f in failing):
            return False
        return all(z.status == Status.TAMPERED for z in self.zones if z.events)

    @property
    def verdict(self) -> str:
        """One line for the reader: the wrong-key explanation when it applies, else the
        status and what failed."""
        if self.likely_wrong_key:
            return (
                "every HMAC fails and nothing else does: the key is probably wrong "
                f"(key {self.key_fingerprint}); content hashes, links and sequence all hold. "
                "If this is the key Caracal used, every event was re-chained without it"
            )
        failing = sum(1 for f in self.findings if f.fails)
        if self.status == Status.TAMPERED:
            return f"{failing} finding(s) fail verification"
        if self.status == Status.PARTIAL:
            return "nothing failed, but some checks could not run"
        return "every check that ran passed"

    def zone(self, zone_id: str) -> ZoneSummary | None:
        return next((z for z in self.zones if z.zone_id == zone_id), None)

    def findings_of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        data = self._section_dict()
        if self.chain != "events":
            data["chain"] = self.chain
        if self.admin is not None:
            # "status" is what the exit code says; each section keeps its own
            data["events_status"] = data["status"]
            data["events_verdict"] = data["verdict"]
            data["status"] = self.overall_status
            data["verdict"] = (f"events: {self.verdict}; admin changes: "
                               f"{self.admin.verdict}")
            data["admin"] = self.admin.to_dict()
        return data

    def _section_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "verdict": self.verdict,
            "likely_wrong_key": self.likely_wrong_key,
            "events_checked": self.events_checked,
            "zones": [z.to_dict() for z in self.zones],
            "findings": [f.to_dict() for f in self.findings],
            "inputs": [i.to_dict() for i in self.inputs],
            "key_fingerprint": self.key_fingerprint,
            "toolkit_version": self.toolkit_version,
            "generated_at": self.generated_at,
            "checks": dict(self.checks),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON report whole or not at all (a previous one, maybe an anchor,
        stays as it was when the disk is full)."""
        from ..outputs import write_atomically

        write_atomically(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        admin = data.get("admin")
        return cls(
            status=data.get("events_status", data["status"]),
            chain=data.get("chain", "events"),
            admin=cls.from_dict(admin) if isinstance(admin, dict) else None,
            events_checked=int(data.get("events_checked", 0)),
            zones=[ZoneSummary(**_known(ZoneSummary, z)) for z in data.get("zones", [])],
            findings=[Finding(**_known(Finding, f)) for f in data.get("findings", [])],
            inputs=[InputSummary(**_known(InputSummary, i)) for i in data.get("inputs", [])],
            key_fingerprint=data.get("key_fingerprint"),
            toolkit_version=data.get("toolkit_version", ""),
            generated_at=data.get("generated_at", ""),
            checks=dict(data.get("checks", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Report:
        """Read a report written earlier (an anchor); a malformed one is an input error."""
        name = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                return cls.from_json(handle.read())
        except OSError as error:
            raise InputError(name, f"cannot read report: {error.strerror}") from None
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(name, f"not a verification report: {error}") from None
        except RecursionError:  # JSON nested thousands deep
            raise InputError(name, "not a verification report: nested too deeply") from None


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Drop keys a newer toolkit may have added, so older ones still read the report."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
