"""The words of every finding: one function per kind of finding (and per cause, where a
kind has several), so that both passes, and anything else that reports, say the same.

Pure text: no DuckDB, no Arrow. The detail of a finding is for a reader; a program tells
findings apart by ``Finding.kind`` and ``Finding.reason``, never by these words.
Library words only: options are named as the parameters of ``Verifier`` (``key=``,
``recover_microseconds=``), and the CLI says which flag sets them.
"""

from __future__ import annotations

NO_EVENTS_DETAIL = "no events of this zone in the export"


def missing(after: int, before: int) -> str:
    """Human text for the seqs strictly between ``after`` and ``before``."""
    n = before - after - 1
    if n == 1:
        return f"seq {after + 1} is missing"
    return f"seq {after + 1}..{before - 1} are missing ({n} events)"


def more_findings(kind: str, hidden: int, cap: int) -> str:
    """The line that stands for a zone's findings of one kind beyond the cap."""
    return f"{hidden} more {kind} finding(s) in this zone not listed (first {cap} shown)"


# --- content_mismatch ------------------------------------------------------------------

def content_mismatch(digits: int, stored: str, calc: str | None) -> str:
    if digits < 6:
        return (f"no occurred_at within the stored {'milli' if digits == 3 else 'coarse'}"
                f"second reproduces content_sha256 {stored}: a hashed field was altered")
    return (f"stored content_sha256 {stored}, recomputed {calc}: a hashed field "
            "was altered after the event was chained")


# --- hmac_mismatch ---------------------------------------------------------------------

def every_hmac_failed(checked: int, fingerprint: str | None) -> str:
    """The one hmac_mismatch of a zone where every HMAC fails (``Reason.EVERY_HMAC_FAILED``)."""
    return (f"all {checked} chain_hmac values checked in this zone fail: the key is "
            f"probably wrong (key {fingerprint}), or every event was re-chained without "
            "the key")


def hmac_mismatch(seq: int, has_prev: bool, computed: bool, chained_to: str | None,
                  succ_fails: bool) -> str:
    if computed:
        text = ("chain_hmac does not match the HMAC of the recomputed content hash (the "
                "export carries none): a hashed field or chain_hmac was altered")
    elif has_prev:
        text = ("chain_hmac does not match HMAC(content_sha256|prev_content_sha256): the "
                "row was forged or re-hashed without the key")
    else:
        text = (f"chain_hmac does not match HMAC(content_sha256|content of seq {seq - 1}): "
                "the row was forged or re-hashed without the key")
    if chained_to:
        text += f"; seq {seq + 1} is authentically chained to content_sha256 {chained_to}"
    elif succ_fails:
        text += f"; the HMAC of seq {seq + 1}, chained to this event, fails with it"
    return text


SECOND_VERSION_HMAC = "chain_hmac of this second version of the seq does not match"


# --- chain_break -----------------------------------------------------------------------

def chain_break(seq: int, stored: str | None, expected: str | None, pred_from: str) -> str:
    if pred_from == "start":
        return f"first event of the zone, but prev_content_sha256 is {stored}"
    where = "the anchor's head" if pred_from == "anchor" else f"seq {seq - 1}"
    return (f"prev_content_sha256 {stored or '(empty)'} but {where} has content_sha256 "
            f"{expected}")


def second_version_break(stored: str | None, pred_hash: str | None) -> str:
    return (f"prev_content_sha256 {stored or '(empty)'} but the predecessor "
            f"has content_sha256 {pred_hash or '(none)'}")


# --- sequence_gap ----------------------------------------------------------------------

def sequence_gap(seq: int, pred_seq: int, has_prev: bool) -> str:
    text = missing(pred_seq, seq) + " before this event"
    if not has_prev:
        text += "; its HMAC cannot be checked without its predecessor"
    return text


def gap_after_anchor(anchor_seq: int, first_seq: int) -> str:
    return (f"the anchor ends at seq {anchor_seq} and this export starts "
            f"at seq {first_seq}: {missing(anchor_seq, first_seq)}")


# --- duplicates ------------------------------------------------------------------------

def duplicate_event(other: str | None) -> str:
    """An exact copy (``summary.fold_copies`` reads ``other`` back from these words)."""
    return f"exact copy of the event at {other}; counted once"


def conflicting_version(seq: int, other: str | None, other_id: str, differs: list[str]) -> str:
    return (f"seq {seq} also at {other} (event {other_id}) with a different "
            f"{', '.join(differs)}")


def replayed_id(event: str, first_seq: int) -> str:
    return f"event id {event} already appears at seq {first_seq}"


# --- anchor: truncated, anchor_mismatch, unanchored_start ---------------------------------

def zone_gone(anchor_seq: int) -> str:
    return f"the anchor saw this zone up to seq {anchor_seq}; the export holds none of its events"


def truncated(last_seq: int, anchor_seq: int) -> str:
    return (f"the export ends at seq {last_seq} but the anchor saw the zone up to seq "
            f"{anchor_seq}: {missing(last_seq, anchor_seq + 1)} from the tail")


def anchor_mismatch(found: str, anchor_seq: int, recorded: str) -> str:
    return (f"content_sha256 {found} at seq {anchor_seq}, but the anchor recorded "
            f"{recorded}")


def unanchored_start(first_seq: int, has_prev: bool) -> str:
    unchecked = "its link to the previous event" + (
        "" if has_prev else " and its HMAC") + " are unchecked"
    return f"the zone starts at seq {first_seq} here and no anchor covers it: {unchecked}"


# --- unverifiable ----------------------------------------------------------------------

def no_key(unproven: int = 0) -> str:
    extra = ""
    if unproven:
        extra = (f"; {unproven} event(s) carry no content_sha256, so their content is "
                 "unproven too")
    return f"chain_hmac not checked: no key given (key=None){extra}"


def field_absent(n: int, fields: str) -> str:
    return (f"{n} event(s) lack {fields} (the export shape does not carry it): their "
            "content hash cannot be recomputed")


def recovery_skipped(n: int) -> str:
    return (f"{n} event(s) have occurred_at in milliseconds and microsecond recovery was "
            "skipped: their content is unproven (the HMAC still checks the stored content "
            "hash)")


def millis_without_hash(n: int) -> str:
    return (f"{n} event(s) have occurred_at in milliseconds and no stored content_sha256: "
            "their content cannot be recomputed")


def no_hmac(n: int) -> str:
    return f"{n} event(s) carry no chain_hmac"


def unsigned(n: int) -> str:
    return (f"{n} row(s) carry no chain_hmac: the chain was written without a key, linked "
            "but unsigned (content, links and sequence checked; who wrote it cannot be "
            "proven)")


def key_order_not_found(n: int, budget: int) -> str:
    return (f"{n} row(s) have a payload whose key order was not found within the search "
            f"budget of {budget:,} orders: their content is unproven (the HMAC and the "
            "links still check the stored content hash)")


def hmac_unchecked(n: int) -> str:
    return (f"{n} HMAC(s) not checked: the content hash of the event or of its predecessor "
            "is unknown")


def no_seq(n: int) -> str:
    return (f"{n} event(s) carry no chain_seq: their order, gaps and links (and their HMAC, "
            "without a prev column) are unchecked")


# --- the report's checks -----------------------------------------------------------------

def recovery_skipped_check(n: int) -> str:
    """``checks["microseconds"]`` when recovery was turned off."""
    return f"skipped for {n} event(s) (recover_microseconds=False)"


def recovered_check(n: int) -> str:
    return f"recovered for {n} event(s) with millisecond time"



# --- before the ledger (FORMAT.md 7) ------------------------------------------------------

def signature_mismatch(reason: str | None) -> str:
    why = f" (dead-lettered as {reason})" if reason else ""
    return ("its producer signature (src_sig) is not the HMAC of its bytes under this key: "
            f"a message injected or altered after signing{why}")


def wire_conflicting_version(ledger_at: str | None, differs: list[str], wire: str,
                             ledger: str) -> str:
    where = f" (ledger row at {ledger_at})" if ledger_at else ""
    return (f"a second, validly signed version of this ledger event{where}: "
            f"{', '.join(differs) or 'content'} differ; signed: {wire}; ledger: {ledger}")


def producer_mismatch(wire_at: str, differs: list[str], wire: str, ledger: str) -> str:
    return (f"this row's content differs from the wire event its ingest_signature signs "
            f"({wire_at}): {', '.join(differs) or 'content'} differ; signed: {wire}; "
            f"ledger: {ledger} (rewritten and re-chained by someone holding the key?)")


def not_in_ledger(reason: str | None, other: str | None = None) -> str:
    where = f"dead-lettered ({reason})" if reason else "spooled by its producer"
    if other:
        return (f"{where}; no ledger row here has its signature, and the row of its id "
                f"({other}) holds other content: these bytes never arrived")
    return f"{where} and no ledger row here has its signature or id: it never arrived"


def producers_unchecked(n: int) -> str:
    return f"{n} wire event(s): producer signatures not checked without the key"


def producers_check(events: int, files: int, keyed: bool) -> str:
    """The report's ``checks`` line for the wire events given (FORMAT.md 7)."""
    if not keyed:
        return f"{events} wire event(s) in {files} spool/dead-letter file(s): not checked, no key"
    return (f"{events} wire event(s) in {files} spool/dead-letter file(s): signatures, and "
            "the ledger rows their signatures name, against their bytes")


# --- missing_hour (chain/hours.py) -----------------------------------------------------

def missing_hour(first: str, last: str, count: int, through: str) -> str:
    hours = f"hour {first}" if count == 1 else f"{count} hours {first}..{last}"
    return (f"no hourly file for {hours}, inside the range complete through {through}: "
            "the exporter uploads nothing for an hour without events, so whether events "
            "are missing the chains say (sequence_gap, truncated)")


def hours_check(first: str, through: str, said: str, missing: int) -> str:
    return (f"hourly files {first}..{through} (complete through {through}, by {said}): "
            + (f"{missing} hour(s) without a file" if missing else "none missing"))
