"""The clean pass (chain/clean.py) against the exhaustive pipeline: wherever the pass
answers, its report is the exhaustive one; it answers for intact exports (interleaved
zones, later starts, anchors, zone filters, no key); and it gives up on every tamper."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.streams import EDITS, SHAPES, streams
from support.streams import edit as _edit
from support.verify import KEY, OTHER_KEY, chain, connect, event, events, renumber

from caracal_forensics.chain import clean, native
from caracal_forensics.chain import verify as verify_module
from caracal_forensics.chain.report import Report
from caracal_forensics.model import HASH_FIELDS

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the clean pass needs the C kernel")


def _as_dict(report: Report) -> dict:
    data = report.to_dict()
    data.pop("generated_at")
    return data


def both(con_factory, monkeypatch=None, **kwargs) -> tuple[Report, bool]:
    """The report with the clean pass first and the exhaustive one; asserts they agree.
    Returns the report and whether the clean pass answered."""
    answered = []
    original = clean.clean_pass

    def spy(*args, **kw):
        result = original(*args, **kw)
        answered.append(result is not None)
        return result

    clean_first = _run(con_factory(), spy, True, **kwargs)
    exhaustive = _run(con_factory(), spy, False, **kwargs)
    assert _as_dict(clean_first) == _as_dict(exhaustive)
    return clean_first, answered[0]


def _run(con, spy, clean_pass: bool, **kwargs) -> Report:
    saved = (clean.ENABLED, clean.clean_pass)
    clean.ENABLED, clean.clean_pass = clean_pass, spy
    try:
        kwargs.setdefault("key", KEY)
        return verify_module.verify(con, **kwargs)
    finally:
        clean.ENABLED, clean.clean_pass = saved


def rows_con(rows):
    return lambda: connect(renumber(rows))


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(streams(), st.sampled_from(sorted(SHAPES)), st.sampled_from([None, *EDITS]),
       st.data())
def test_clean_pass_agrees_with_the_exhaustive_pipeline(rows, shape, kind, data) -> None:
    original = SHAPES[shape](rows)
    rnd = data.draw(st.randoms(use_true_random=False))
    if kind is not None:
        i = data.draw(st.integers(0, len(rows) - 1))
        tampered = _edit(rows if shape == "ocsf" else original, kind, i, shape, rnd)
        assume(tampered is not None)
        original = SHAPES["ocsf"](tampered) if shape == "ocsf" else tampered
    if data.draw(st.booleans()):
        rnd.shuffle(original)
    key = data.draw(st.sampled_from([KEY, None, OTHER_KEY]))
    zones = data.draw(st.one_of(st.none(), st.lists(
        st.sampled_from(["z1", "zone:prod/eu-1", "\u00e9t\u00e9", "absent"]),
        min_size=1, max_size=2, unique=True)))
    recover = data.draw(st.booleans())
    report, answered = both(rows_con(original), key=key, zones=zones,
                            recover_microseconds=recover)
    if answered:  # intact, or (the wrong key's pass) every HMAC failing alone
        failing = [f for f in report.findings if f.fails]
        assert all(f.every_hmac_failed for f in failing)
        assert key is OTHER_KEY or (not failing and report.status in ("intact", "partial"))


@SETTINGS
@given(streams(), st.integers(0, 5), st.integers(0, 5), st.sampled_from(sorted(SHAPES)),
       st.data())
def test_later_windows_and_anchors_agree(rows, drop, overlap, shape, data) -> None:
    """An export window starting later in each zone, with or without the earlier window's
    report as anchor (right after it, overlapping it, or leaving a gap)."""
    by_zone: dict[str, list[dict]] = {}
    for row in rows:
        by_zone.setdefault(row["zone_id"], []).append(row)
    earlier, later = [], []
    for zone_rows in by_zone.values():
        cut = min(drop, len(zone_rows))
        earlier += zone_rows[:cut]
        later += zone_rows[max(0, cut - overlap):]
    if data.draw(st.booleans()):
        later = [r for r in later if r is not rows[-1]]  # maybe a gap at the end too
    assume(later)
    anchor = None
    if earlier and data.draw(st.booleans()):
        anchor = verify_module.verify(connect(renumber(earlier)), key=KEY)
    key = data.draw(st.sampled_from([KEY, None]))
    both(rows_con(SHAPES[shape](later)), anchor=anchor, key=key, recover_microseconds=False)


def test_the_clean_pass_answers_for_intact_exports() -> None:
    rows = events(400, zones=("zone-a", "zone-b", "zone-c"))
    report, answered = both(rows_con(rows))
    assert answered and report.status == "intact" and report.events_checked == 400
    sorted_rows = sorted(rows, key=lambda r: (r["zone_id"], r["chain_seq"]))
    assert both(rows_con(sorted_rows))[1]
    later = [r for r in rows if r["chain_seq"] > 10]
    report, answered = both(rows_con(later))
    assert answered and {f.kind for f in report.findings} == {"unanchored_start"}
    report, answered = both(rows_con(rows), key=None)
    assert answered and report.status == "partial"
    report, answered = both(rows_con(rows), zones=["zone-b", "zone-x"])
    assert answered and [z.zone_id for z in report.zones] == ["zone-b", "zone-x"]


@pytest.mark.parametrize("shape", ["ocsf", "cli"])
def test_the_clean_pass_answers_for_shapes_without_a_prev_column(shape) -> None:
    """OCSF (millisecond time, recovery skipped) and the CLI's JSON (no content hash):
    the HMAC chains each event to its predecessor's content hash."""
    rows = SHAPES[shape](events(300, zones=("zone-a", "zone-b")))
    report, answered = both(rows_con(rows), recover_microseconds=False)
    assert answered and report.events_checked == 300
    assert report.status == ("partial" if shape == "ocsf" else "intact")
    later = [r for r in rows if r["chain_seq"] > 5]
    report, answered = both(rows_con(later), recover_microseconds=False)
    assert answered and "unanchored_start" in {f.kind for f in report.findings}
    if shape == "ocsf":  # with recovery the exhaustive path runs
        assert not both(rows_con(rows))[1]
    forged = [dict(r) for r in rows]
    forged[100]["chain_hmac"] = "0" * 64
    report, answered = both(rows_con(forged), recover_microseconds=False)
    assert not answered and report.status == "tampered"


@pytest.mark.parametrize("change", [
    {"content_sha256": "F" * 64},  # upper-case hex: the exhaustive path lowers it
    {"chain_hmac": None},
    {"chain_seq": 40},
    {"prev_content_sha256": ""},
    {"occurred_at_digits": 3},
    {"absent_fields": "ingest_signature"},
])
def test_the_clean_pass_gives_up_on_anything_unusual(change) -> None:
    rows = events(60, zones=("zone-a",))
    rows[30] = dict(rows[30], **change)
    if "content_sha256" in change:
        rows[30]["content_sha256"] = rows[30]["content_sha256"].upper()
    assert not both(rows_con(rows))[1]


def test_a_copied_or_replayed_event_sends_it_to_the_exhaustive_pipeline() -> None:
    rows = events(50, zones=("zone-a", "zone-b"))
    assert not both(rows_con(rows + rows[:3]))[1]  # copies: duplicate_event findings
    replay = chain([*[event(i) for i in range(5)], event(2)])  # the same id at seq 6
    report, answered = both(rows_con(replay))
    assert not answered and "conflicting_duplicate" in {f.kind for f in report.findings}


@pytest.mark.parametrize("shape", ["db", "cli", "ocsf"])
def test_a_wrong_key_is_answered_by_a_second_clean_pass(shape) -> None:
    """Every HMAC fails and nothing else does: the pass that expects it gives the
    exhaustive pipeline's report, one every_hmac_failed finding per zone, at its first
    event (with a zone's later start, a zone asked for that is absent, an HMAC stored in
    upper case, which fails all the same). Without a prev column (the CLI's JSON, OCSF)
    each HMAC is tested against its predecessor's content hash; there a zone starting
    later is the exhaustive pipeline's: its first HMAC chains to a hash not exported."""
    rows = SHAPES[shape](events(400, zones=("zone-a", "zone-b", "zone-c")))
    wrong = {"key": OTHER_KEY, "recover_microseconds": False}
    report, answered = both(rows_con(rows), **wrong)
    assert answered and report.status == "tampered" and report.likely_wrong_key
    assert [(f.zone_id, f.chain_seq, f.reason) for f in report.findings
            if f.fails] == [(zone, 1, "every_hmac_failed") for zone in ("zone-a", "zone-b",
                                                                        "zone-c")]
    later = [r for r in rows if r["chain_seq"] > 10]
    report, answered = both(rows_con(later), **wrong)
    assert answered == (shape == "db")
    assert {"unanchored_start", "hmac_mismatch"} <= {f.kind for f in report.findings}
    report, answered = both(rows_con(rows), zones=["zone-b", "zone-x"], **wrong)
    assert answered and [z.zone_id for z in report.zones] == ["zone-b", "zone-x"]
    upper = [dict(r, chain_hmac=r["chain_hmac"].upper()) if i == 30 else r
             for i, r in enumerate(rows)]
    assert both(rows_con(upper), **wrong)[1]


@pytest.mark.parametrize("shape", ["db", "cli"])
@pytest.mark.parametrize("change", ["one_verifies", "first_verifies", "upper_verifies",
                                    "one_event_zone", "no_hmac", "empty_hmac", "edited"])
def test_the_wrong_key_pass_gives_up_unless_every_hmac_fails_alone(change, shape) -> None:
    """One HMAC that verifies with the key given (an event re-chained with it), a zone of
    one event (one failing HMAC says nothing of the key), an HMAC missing (not checked),
    an edited event: the exhaustive pipeline's findings, not the wrong key's. (An HMAC
    stored in upper case verifies there: it is lower-cased first.) The CLI's JSON has no
    prev column: its HMACs are the links the follower tests."""
    from caracal_forensics.chain import digest

    rows = events(60, zones=("zone-a", "zone-b"))
    at = 0 if change == "first_verifies" else 30
    if change.endswith("_verifies"):
        row = rows[at]
        hmac = digest.chain_hmac(OTHER_KEY, row["content_sha256"], row["prev_content_sha256"])
        rows[at] = dict(row, chain_hmac=hmac.upper() if change == "upper_verifies" else hmac)
    elif change == "one_event_zone":
        rows += chain([event(99, zone="zone-c")])
    elif change in ("no_hmac", "empty_hmac"):
        rows[at] = dict(rows[at], chain_hmac=None if change == "no_hmac" else "")
    else:
        rows[at] = dict(rows[at], decision="allow-edited")
    report, answered = both(rows_con(SHAPES[shape](rows)), key=OTHER_KEY)
    assert report.status == "tampered"
    # in the CLI's JSON only the HMAC covers an event's content: under a wrong key an
    # edit shows nowhere, and both paths say every HMAC fails
    assert answered == (change == "edited" and shape == "cli")


# --- canonical snapshots: read straight from Parquet ----------------------------------------


@pytest.fixture()
def snapshot_dir(tmp_path):
    """A canonical snapshot of 3,000 intact events in three zones, row groups of 512."""
    from support.tail import SHAPES
    from support.verify import table

    import caracal_forensics as cf
    from caracal_forensics.ingest import write_snapshot

    snap = cf.open(str(SHAPES["db_csv"]))
    snap.duckdb.register("_rows", table(renumber(events(3000, zones=("zone-a", "zone-b",
                                                                      "zone-c")))))
    snap.duckdb.execute("CREATE OR REPLACE VIEW events AS SELECT * FROM _rows")
    out = tmp_path / "snap"
    write_snapshot(snap, str(out), row_group_rows=512)
    return out


def _snapshot_con(path):
    from caracal_forensics.snapshot import open_sources

    def factory():
        factory.snap = open_sources([str(path)])
        return factory.snap.duckdb

    return factory


def test_a_snapshot_is_checked_from_parquet_and_agrees(snapshot_dir, monkeypatch) -> None:
    factory = _snapshot_con(snapshot_dir)
    factory()
    inputs = factory.snap.inputs
    read = []
    monkeypatch.setattr(clean._Pass, "_batches", lambda *a: pytest.fail("not Parquet"))
    original = clean._Pass._read_and_check

    def counting(self, part):
        read.append(part[1])
        return original(self, part)

    monkeypatch.setattr(clean._Pass, "_read_and_check", counting)
    report, answered = both(factory, inputs=inputs)
    assert answered and report.status == "intact" and report.events_checked == 3000
    assert read
    report, answered = both(factory, inputs=inputs, zones=["zone-b"])
    assert answered and [z.zone_id for z in report.zones] == ["zone-b"]
    report, answered = both(factory, inputs=inputs, key=OTHER_KEY)
    assert answered and report.likely_wrong_key and len(report.findings) == 3


def test_a_tampered_snapshot_gets_the_exhaustive_findings(snapshot_dir) -> None:
    [part] = sorted((snapshot_dir / "events").glob("*.parquet"))
    table = pq.read_table(part)
    decision = table.column("decision")
    flipped = pc.if_else(pc.equal(table.column("chain_seq"), 7),
                         pa.scalar("allow-edited"), decision)
    pq.write_table(table.set_column(table.schema.get_field_index("decision"), "decision",
                                    flipped), part)
    # the editor covers their tracks in the manifest too (else opening refuses the part)
    manifest_path = snapshot_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        if entry["path"] == part.relative_to(snapshot_dir).as_posix():
            entry["bytes"] = part.stat().st_size
            entry["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    factory = _snapshot_con(snapshot_dir)
    factory()
    report, answered = both(factory, inputs=factory.snap.inputs)
    assert not answered
    assert {f.kind for f in report.findings if f.fails} == {"content_mismatch"}


def _displace(rows: list[dict], moves: list[tuple[int, int]]) -> list[dict]:
    """Rows with some moved ``by`` places earlier (an event filed early) or later."""
    rows = list(rows)
    for at, by in moves:
        if not rows:
            break
        row = rows.pop(at % len(rows))
        rows.insert(max(0, min(len(rows), at % (len(rows) + 1) - by)), row)
    return rows


@SETTINGS
@given(streams(), st.sampled_from(sorted(SHAPES)), st.sampled_from([None, *EDITS]),
       st.lists(st.tuples(st.integers(0, 99), st.integers(-6, 6)), max_size=4),
       st.integers(0, 12), st.integers(1, 7), st.data())
def test_displaced_rows_are_put_back_in_order(rows, shape, kind, moves, drop, batch_rows,
                                              data) -> None:
    """Rows filed out of chain order (as hourly OCSF files do) go through the reorder
    window in batches of any size: intact, the pass answers with the exhaustive report;
    edited, it gives up or still agrees; a zone may also start later than seq 1."""
    rows = [r for r in rows if r["chain_seq"] > drop] or rows
    original = SHAPES[shape](renumber(rows) if drop == 0 else rows)
    if kind is not None:
        i = data.draw(st.integers(0, len(original) - 1))
        tampered = _edit(rows if shape == "ocsf" else original, kind, i, shape,
                         data.draw(st.randoms(use_true_random=False)))
        assume(tampered is not None)
        original = SHAPES["ocsf"](tampered) if shape == "ocsf" else tampered
    displaced = _displace(original, moves)
    key = data.draw(st.sampled_from([KEY, None]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clean, "_displaced", lambda inputs: True)
        patch.setattr(clean, "BATCH_ROWS", batch_rows)
        report, answered = both(lambda: connect(displaced), key=key,
                                recover_microseconds=False)
    if kind is None and drop == 0:
        assert answered and report.events_checked == len(displaced)


def test_a_window_too_small_for_the_displacement_gives_up(monkeypatch) -> None:
    rows = events(60, zones=("a", "b"))
    late = rows[5:]
    late.insert(40, rows[4])  # seq 5 of its zone after 35 rows of it and the other zone
    whole = _batch(rows[:4] + late)
    batches = [whole.slice(i, 4) for i in range(0, whole.num_rows, 4)]
    monkeypatch.setattr(clean, "_displaced", lambda inputs: True)
    streamed = clean.clean_pass_over(lambda: batches, KEY, None, None, []).report
    assert streamed is not None
    assert _as_dict(streamed) == _as_dict(verify_module.verify(connect(rows), key=KEY))
    monkeypatch.setattr(clean, "REORDER_ROWS", 8)
    gave_up = clean.clean_pass_over(lambda: batches, KEY, None, None, [])
    assert gave_up.report is None and gave_up.sorting_may_prove


def test_the_reorder_window_lets_rows_through_once_they_link() -> None:
    def seqs(table) -> list[tuple[str, int]]:
        return list(zip(table.column("zone_id").to_pylist(),
                        table.column("chain_seq").to_pylist(), strict=True))

    rows = {(r["zone_id"], r["chain_seq"]): r for r in events(20, zones=("a", "b"))}
    window = clean._Reorder()
    first = [rows["a", 2], rows["b", 1], rows["a", 3], rows["b", 3]]
    assert seqs(window.add(_batch(first))) == [("b", 1)]  # a waits for its seq 1
    assert window.held_rows == 3
    assert seqs(window.add(_batch([rows["a", 1], rows["b", 2]]))) == [
        ("a", 1), ("a", 2), ("a", 3), ("b", 2), ("b", 3)]
    assert window.held_rows == 0
    with pytest.raises(clean._OutOfOrder):
        window.add(_batch([rows["a", 2]]))  # let through already
    later = clean._Reorder()
    assert seqs(later.add(_batch([rows["a", 6], rows["a", 5]]))) == []
    assert seqs(later.add(None)) == [("a", 5), ("a", 6)]  # the stream ended: it starts at 5


# --- the kernel's pieces ------------------------------------------------------------------


def _batch(rows) -> pa.RecordBatch:
    from support.verify import table

    return table(rows).to_batches()[0]


def test_follow_links_interleaved_zones_and_stops_at_a_break() -> None:
    rows = events(100, zones=("a", "b", "c"))
    state = native.follower()
    assert native.follow(state, _batch(rows[:50])) [0] == -1
    bad, starts, on_hmac = native.follow(state, _batch(rows[50:]))
    assert bad == -1 and starts == [] and not on_hmac
    zones = {z: (n, first, last) for z, n, first, last, _ in native.follower_zones(state)}
    assert sum(n for n, _, _ in zones.values()) == 100
    assert all(first == 1 and last == n for n, first, last in zones.values())
    assert native.ids_unique(state)
    broken = [dict(r) for r in rows]
    broken[60]["prev_content_sha256"] = "0" * 64
    state = native.follower()
    assert native.follow(state, _batch(broken))[0] == 60 or broken[60]["chain_seq"] == 1
    repeated = native.follower()
    native.follow(repeated, _batch(rows))
    assert native.follow(repeated, _batch(rows[:1]))[0] == 0  # seq 1 again


def test_first_unproven_row_checks_content_and_hmac() -> None:
    rows = events(20, zones=("a",))
    batch = _batch(rows)
    assert native.first_unproven_row(batch, KEY) == -1
    assert native.first_unproven_row(batch, None) == -1
    assert native.first_unproven_row(batch, OTHER_KEY) == 0
    edited = [dict(r) for r in rows]
    edited[13]["decision"] = "edited"
    assert native.first_unproven_row(_batch(edited), None) == 13
    edited = [dict(r) for r in rows]
    edited[5]["chain_hmac"] = edited[5]["chain_hmac"].upper()
    assert native.first_unproven_row(_batch(edited), KEY) == 5
    assert native.first_unproven_row(_batch(edited), None) == -1


@given(position=st.integers(0, 63), byte=st.integers(1, 255),
       column=st.sampled_from(["content_sha256", "prev_content_sha256"]))
@settings(max_examples=300, deadline=None)
def test_only_lowercase_hex_passes_the_form_check(position, byte, column) -> None:
    """Without the content recomputed (millisecond time) the stored hashes are only
    checked for their form: 64 lowercase hex digits, whatever byte sits wherever."""
    rows = events(3, zones=("a",))
    edited = [dict(r) for r in rows]
    value = edited[2][column]
    edited[2][column] = value[:position] + chr(byte) + value[position + 1:]
    expected = -1 if chr(byte) in "0123456789abcdef" else 2
    assert native.first_unproven_row(_batch(edited), None, check_content=False) == expected


@SETTINGS
@given(streams(), st.sets(st.sampled_from([f for f in HASH_FIELDS if f != "id"])),
       st.integers(0, 5), st.data())
def test_dictionary_encoded_fields_hash_as_their_values(rows, encoded, skip, data) -> None:
    """A snapshot's repeating columns reach the kernel dictionary-encoded (as stored):
    hashed through their indices, sliced or not, NULLs in the indices or the dictionary,
    they must give the very hashes of the plain columns."""
    plain = _batch(rows).slice(min(skip, len(rows) - 1))
    columns = []
    for name in plain.schema.names:
        column = plain.column(name)
        if name in encoded:
            column = pc.dictionary_encode(column)
            if data.draw(st.booleans()) and len(column.dictionary):
                values = column.dictionary.to_pylist()
                values[0] = None  # a NULL entry in the dictionary itself
                column = pa.DictionaryArray.from_arrays(column.indices, pa.array(values))
        columns.append(column)
    batch = pa.RecordBatch.from_arrays(columns, names=plain.schema.names)
    assert native.content_hex(batch).equals(native.content_hex(_decoded(batch)))
    assert native.first_unproven_row(batch, KEY) == native.first_unproven_row(
        _decoded(batch), KEY)


def _decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
         for c in batch.columns], names=batch.schema.names)


def test_a_dictionary_index_out_of_range_is_refused() -> None:
    batch = _batch(events(4, zones=("a",)))
    at = batch.schema.get_field_index("decision")
    broken = pa.DictionaryArray.from_arrays(pa.array([0, 1, 7, 0], pa.int32()),
                                            pa.array(["allow", "deny"]), safe=False)
    with pytest.raises(ValueError, match="dictionary index"):
        native.content_hex(batch.set_column(at, "decision", broken))


# --- verify_files: straight from the readers ------------------------------------------------


@pytest.mark.parametrize("shape", ["db_csv", "db_jsonl", "cli_jsonl", "ocsf", "search"])
def test_verify_files_gives_the_report_of_the_opened_snapshot(shape, monkeypatch) -> None:
    from support.tail import KEY_FILE, SHAPES

    import caracal_forensics as cf
    from caracal_forensics.chain.files import verify_files

    key = KEY_FILE.read_text().strip()
    for recover in (True, False):
        streamed = verify_files([str(SHAPES[shape])], key=key, recover_microseconds=recover)
        opened = cf.open(str(SHAPES[shape])).verify(key=key, recover_microseconds=recover)
        assert _as_dict(streamed.report) == _as_dict(opened)
        assert streamed.skipped_lines == 0
        assert all(i.rows for i in streamed.report.inputs)


def test_verify_files_streams_an_intact_dump_without_loading_it(tmp_path, monkeypatch) -> None:
    from support.tail import KEY_FILE, SHAPES

    from caracal_forensics import snapshot
    from caracal_forensics.chain.files import verify_files

    monkeypatch.setattr(snapshot, "open_sources", lambda *a, **k: pytest.fail("loaded"))
    key = KEY_FILE.read_text().strip()
    result = verify_files([str(SHAPES["db_csv"])], key=key)
    assert result.report.status == "intact" and result.report.events_checked == 240


def test_verify_files_falls_back_for_findings_and_counts_skipped_lines(tmp_path) -> None:
    from support.tail import KEY_FILE, SHAPES

    from caracal_forensics.chain.files import verify_files
    from caracal_forensics.errors import InputError

    key = KEY_FILE.read_text().strip()
    lines = SHAPES["db_jsonl"].read_bytes().split(b"\n")  # not splitlines: U+2028 in values
    broken = tmp_path / "db.jsonl"
    broken.write_bytes(b"\n".join([*lines[:10], b"{not json", *lines[10:]]))
    with pytest.raises(InputError, match=r"db\.jsonl.*line 11"):
        verify_files([str(broken)], key=key)
    skipped = verify_files([str(broken)], key=key, on_bad_line="skip")
    assert skipped.skipped_lines == 1 and skipped.report.status == "intact"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"\n".join(lines).replace(b'"deny"', b'"allow"', 1))
    report = verify_files([str(edited)], key=key).report
    assert report.status == "tampered"
    assert "content_mismatch" in {f.kind for f in report.findings}


@pytest.mark.parametrize("shape", ["db_csv", "db_jsonl", "cli_jsonl"])
def test_verify_files_streams_a_wrong_key_twice_without_loading(shape, tmp_path,
                                                                monkeypatch) -> None:
    """A wrong key over a text export: the first pass gives up at the first HMAC and the
    wrong key's reads the file again, not loaded; the file's SHA-256 is still that of
    its bytes (its reader hashes it on the way, twice) and a skipped line counts once."""
    from support.tail import SHAPES

    import caracal_forensics as cf
    from caracal_forensics import snapshot
    from caracal_forensics.chain.files import verify_files

    path = SHAPES[shape]
    opened = cf.open(str(path)).verify(key=OTHER_KEY)
    lines = path.read_bytes().split(b"\n")
    broken = tmp_path / path.name
    at = 12 if shape != "db_csv" else 1  # the CSV's skipped record: one short of fields
    broken.write_bytes(b"\n".join([*lines[:at], b'"x"' if shape == "db_csv" else b"{not",
                                   *lines[at:]]))
    monkeypatch.setattr(snapshot, "open_sources", lambda *a, **k: pytest.fail("loaded"))
    streamed = verify_files([str(path)], key=OTHER_KEY)
    assert streamed.report.likely_wrong_key
    assert _as_dict(streamed.report) == _as_dict(opened)
    assert streamed.report.inputs[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    skipped = verify_files([str(broken)], key=OTHER_KEY, on_bad_line="skip")
    assert skipped.skipped_lines == 1 and skipped.report.likely_wrong_key
    assert skipped.report.inputs[0].sha256 == hashlib.sha256(broken.read_bytes()).hexdigest()


def test_loaded_rows_are_passed_over_again_only_to_be_sorted(tmp_path, monkeypatch) -> None:
    """Where the pass over the rows as read gives up at an edited event, the pass over the
    loaded rows would give up at the same row: it is not made. Rows further out of chain
    order than the reorder window reaches are passed over again, sorted, and proven."""
    from support.tail import KEY_FILE, SHAPES

    from caracal_forensics.chain.files import verify_files

    passes = []
    over_loaded = clean.clean_pass
    monkeypatch.setattr(clean, "clean_pass",
                        lambda *args, **kw: passes.append(1) or over_loaded(*args, **kw))
    key = KEY_FILE.read_text().strip()
    lines = SHAPES["db_jsonl"].read_bytes().split(b"\n")  # not splitlines: U+2028 in values
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"\n".join(lines).replace(b'"deny"', b'"allow"', 1))
    for wrong in (False, True):
        report = verify_files([str(edited)], key=OTHER_KEY if wrong else key).report
        assert report.status == "tampered" and passes == []
    monkeypatch.setattr(clean, "REORDER_ROWS", 8)
    reversed_ = tmp_path / "reversed.jsonl"
    reversed_.write_bytes(b"\n".join(line for line in reversed(lines) if line) + b"\n")
    report = verify_files([str(reversed_)], key=key).report
    assert report.status == "intact" and passes == [1]


def test_verify_files_checks_a_snapshot_without_duckdb(snapshot_dir, monkeypatch) -> None:
    import caracal_forensics as cf
    from caracal_forensics import snapshot
    from caracal_forensics.chain.files import verify_files

    opened = cf.open(str(snapshot_dir)).verify(key=KEY)
    wrong_key = cf.open(str(snapshot_dir)).verify(key=OTHER_KEY)
    monkeypatch.setattr(snapshot, "open_sources", lambda *a, **k: pytest.fail("opened"))
    streamed = verify_files([str(snapshot_dir)], key=KEY, zones=["zone-c", "zone-a"])
    assert [z.zone_id for z in streamed.report.zones] == ["zone-a", "zone-c"]
    streamed = verify_files([str(snapshot_dir)], key=KEY)
    assert _as_dict(streamed.report) == _as_dict(opened)
    # a wrong key: the second pass reads the files again, still without DuckDB
    streamed = verify_files([str(snapshot_dir)], key=OTHER_KEY)
    assert streamed.report.likely_wrong_key
    assert _as_dict(streamed.report) == _as_dict(wrong_key)
