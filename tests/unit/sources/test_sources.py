"""Readers: every shape reads to the same events; bad input is refused with file and line."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bundled import make_fixtures
from support.paths import FIXTURE_EXPORT, ROOT
from support.paths import VECTOR_EXPORT as VECTORS

import caracal_forensics as cf
from caracal_forensics.errors import InputError, UsageError
from caracal_forensics.model import EVENT_SCHEMA, HASH_FIELDS, Shape
from caracal_forensics.sources import BadLines, read_events, scan

SHAPES = {
    Shape.DB_CSV: VECTORS / "db.csv",
    Shape.DB_JSONL: VECTORS / "db.jsonl",
    Shape.CLI_JSONL: VECTORS / "cli.jsonl",
    Shape.OCSF_PARQUET: VECTORS / "ocsf",
    Shape.SEARCH_PAGE: VECTORS / "search",
}
#: Columns every shape carries; OCSF's occurred_at is compared at millisecond precision.
COMMON = [*HASH_FIELDS, "chain_hmac", "chain_seq"]


def rows_of(path: Path | str, order: str = "id") -> list[dict]:
    snap = cf.open(str(path))
    return snap.sql(f"SELECT * FROM events ORDER BY {order}").to_dicts()


def test_every_shape_reads_the_same_240_events() -> None:
    reference = {row["id"]: row for row in rows_of(SHAPES[Shape.DB_JSONL])}
    assert len(reference) == 240
    for shape, path in SHAPES.items():
        rows = rows_of(path)
        assert len(rows) == 240, shape
        assert {row["source_shape"] for row in rows} == {shape}
        for row in rows:
            expected = reference[row["id"]]
            for name in COMMON:
                assert row[name] == expected[name], (shape, row["id"], name)
            micros = expected["occurred_at"]
            if shape == Shape.OCSF_PARQUET:
                assert row["occurred_at_digits"] == 3
                micros = micros.replace(microsecond=micros.microsecond // 1000 * 1000)
            else:
                assert row["occurred_at_digits"] == 6
            assert row["occurred_at"] == micros, (shape, row["id"])
            if shape not in (Shape.CLI_JSONL, Shape.OCSF_PARQUET):
                for name in ("content_sha256", "prev_content_sha256", "ingested_at"):
                    assert row[name] == expected[name], (shape, row["id"], name)


def test_absent_fields_say_what_a_shape_lacks() -> None:
    cli = rows_of(SHAPES[Shape.CLI_JSONL])[0]["absent_fields"].split(",")
    assert "prev_content_sha256" in cli and "content_sha256" in cli
    assert "evaluation_status" not in cli and "chain_seq" not in cli
    ocsf = rows_of(SHAPES[Shape.OCSF_PARQUET])[0]["absent_fields"].split(",")
    assert "prev_content_sha256" in ocsf and "ingested_at" in ocsf
    assert rows_of(SHAPES[Shape.DB_CSV])[0]["absent_fields"] is None


def test_provenance_names_file_and_line() -> None:
    rows = {r["id"]: r for r in rows_of(SHAPES[Shape.DB_CSV])}
    lines = (VECTORS / "db.csv").read_text(encoding="utf-8").split("\n")
    for event_id, row in rows.items():
        assert lines[row["source_line"] - 1].startswith(event_id + ",")
    jsonl = {r["id"]: r for r in rows_of(SHAPES[Shape.DB_JSONL])}
    text = (VECTORS / "db.jsonl").read_text(encoding="utf-8").split("\n")
    for event_id, row in jsonl.items():
        assert f'"id":"{event_id}"' in text[row["source_line"] - 1]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_ingested_snapshot_round_trips_exactly(shape: str, tmp_path: Path) -> None:
    original = cf.open(str(SHAPES[shape]))
    manifest = original.ingest(str(tmp_path / "snap"))
    assert manifest["events"] == 240
    assert sum(z["events"] for z in manifest["zones"].values()) == 240
    again = cf.open(str(tmp_path / "snap"))
    query = "SELECT * FROM events ORDER BY id"
    assert again.sql(query).equals(original.sql(query))
    assert again.inputs[0].shape == Shape.SNAPSHOT


def test_snapshot_manifest_fingerprints_inputs_and_heads(tmp_path: Path) -> None:
    manifest = cf.open(str(VECTORS / "db.csv")).ingest(str(tmp_path / "snap"))
    (entry,) = manifest["inputs"]
    assert (
        entry["sha256"]
        == __import__("hashlib").sha256((VECTORS / "db.csv").read_bytes()).hexdigest()
    )
    assert entry["bytes"] == (VECTORS / "db.csv").stat().st_size and entry["rows"] == 240
    rows = rows_of(VECTORS / "db.csv")
    for zone, head in manifest["zones"].items():
        last = max((r for r in rows if r["zone_id"] == zone), key=lambda r: r["chain_seq"])
        assert head["last_seq"] == last["chain_seq"]
        assert head["last_content_sha256"] == last["content_sha256"]
        assert head["first_seq"] == 1


def test_ingest_refuses_to_write_over_anything(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    with pytest.raises(UsageError, match="not an empty directory"):
        cf.open(str(VECTORS / "db.csv")).ingest(str(tmp_path / "busy"))
    assert (tmp_path / "busy" / "x").read_text() == "keep me"


def test_shape_is_detected_from_content_and_compression(tmp_path: Path) -> None:
    (tmp_path / "export.bin").write_bytes((VECTORS / "db.csv").read_bytes())
    (tmp_path / "rows.dat.gz").write_bytes(gzip.compress((VECTORS / "db.jsonl").read_bytes()))
    (tmp_path / "tail.out").write_bytes(
        zstandard.ZstdCompressor().compress((VECTORS / "cli.jsonl").read_bytes())
    )
    shapes = {
        Path(i.path).name: i.shape
        for i in scan([str(tmp_path / n) for n in ("export.bin", "rows.dat.gz", "tail.out")])
    }
    assert shapes == {
        "export.bin": Shape.DB_CSV,
        "rows.dat.gz": Shape.DB_JSONL,
        "tail.out": Shape.CLI_JSONL,
    }
    snap = cf.open(*(str(tmp_path / n) for n in ("export.bin", "rows.dat.gz", "tail.out")))
    assert snap.count() == 720


def test_bundled_fixtures_mix_every_shape() -> None:
    snap = cf.open(str(FIXTURE_EXPORT))
    shapes = {i.shape for i in snap.inputs}
    assert shapes >= {*SHAPES, Shape.ALERTS_CSV, Shape.ALERTS_JSONL}
    per_shape = snap.sql(
        "SELECT source_shape, count(*) n, count(DISTINCT id) d FROM events GROUP BY 1"
    ).to_dicts()
    assert {r["n"] for r in per_shape} == {300} and {r["d"] for r in per_shape} == {300}
    assert snap.sql("SELECT count(*) n FROM alerts").item() == 4


def test_line_separator_inside_a_string_is_not_a_line_break(tmp_path: Path) -> None:
    lines = (VECTORS / "db.jsonl").read_bytes().split(b"\n")
    assert any("\u2028".encode() in line for line in lines)
    assert len(rows_of(VECTORS / "db.jsonl")) == 240


def test_inputs_are_opened_read_only_and_never_changed(tmp_path: Path) -> None:
    copy = tmp_path / "ro"
    shutil.copytree(VECTORS, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    for path in before:
        path.chmod(0o444)
    snap = cf.open(str(copy))
    snap.ingest(str(tmp_path / "snap"))
    assert {p: p.read_bytes() for p in before} == before


def test_reader_streams_in_bounded_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from caracal_forensics.sources import _batch

    monkeypatch.setattr(_batch, "BATCH_ROWS", 50)
    monkeypatch.setattr(
        _batch.rows_to_batches, "__defaults__", (EVENT_SCHEMA, ("occurred_at", "ingested_at"), 50)
    )
    (source,) = scan([str(VECTORS / "db.jsonl")])
    sizes = [batch.num_rows for batch in read_events(source, BadLines())]
    assert sizes == [50, 50, 50, 50, 40]


# --- bad input: one clear error naming the file and the line --------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines))
    return path


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error must say)."""
    jsonl = _lines(VECTORS / "db.jsonl")
    csv = _lines(VECTORS / "db.csv")
    cases: dict[str, tuple[Path, str]] = {}
    broken = list(jsonl)
    broken[4] = broken[4][:-30]
    cases["malformed json line"] = (_write(tmp / "a.jsonl", broken), "line 5: malformed JSON")
    cut = (VECTORS / "db.jsonl").read_bytes()[:-100]
    (tmp / "cut.jsonl").write_bytes(cut)
    cases["truncated file"] = (tmp / "cut.jsonl", "line 240: truncated JSON line")
    (tmp / "cut.jsonl.gz").write_bytes(gzip.compress((VECTORS / "db.jsonl").read_bytes())[:-400])
    cases["truncated gzip"] = (tmp / "cut.jsonl.gz", "truncated or unreadable compressed data")
    number_zone = list(jsonl)
    number_zone[2] = number_zone[2].replace(b'"zone_id":"zone-alpha"', b'"zone_id":7', 1)
    cases["wrong type"] = (_write(tmp / "b.jsonl", number_zone), "line 3: zone_id must be a string")
    no_zone = list(jsonl)
    no_zone[6] = no_zone[6].replace(b'"zone_id":"zone-alpha",', b"", 1)
    assert no_zone[6] != jsonl[6]
    cases["missing field"] = (_write(tmp / "c.jsonl", no_zone), "line 7: missing required field")
    bad_utf8 = list(jsonl)
    bad_utf8[1] = bad_utf8[1].replace(b"zone", b"zo\xffne", 1)
    cases["not utf-8"] = (_write(tmp / "d.jsonl", bad_utf8), "line 2: not UTF-8")
    short_row = list(csv)
    short_row[6] = b"ev-x,zone-alpha,token_exchange"
    cases["csv column count"] = (_write(tmp / "e.csv", short_row), "line 7: expected 19 columns")
    bad_time = list(csv)
    bad_time[9] = bad_time[9].replace(b"2026-05-11 08:", b"2026-13-11 08:", 1)
    cases["csv bad timestamp"] = (_write(tmp / "f.csv", bad_time), "line 10: occurred_at is not")
    no_time = list(csv)
    no_time[11] = re.sub(rb",2026-05-11 08:[0-9:.+]+,", b",,", no_time[11], count=1)
    assert no_time[11] != csv[11]
    cases["csv empty timestamp"] = (_write(tmp / "g.csv", no_time),
                                    "line 12: missing required field 'occurred_at'")
    parquet = (VECTORS / "ocsf/audit/2026/05/11/2026-05-11T08.parquet").read_bytes()
    footer_len = int.from_bytes(parquet[-8:-4], "little")
    scrambled = bytes((b * 7 + 13) % 256 for b in parquet[-8 - footer_len : -8])
    (tmp / "footer.parquet").write_bytes(parquet[: -8 - footer_len] + scrambled + parquet[-8:])
    cases["corrupt parquet footer"] = (tmp / "footer.parquet", "corrupt footer")
    (tmp / "noise.txt").write_bytes(b"hello, world\nthis is not an export\n")
    cases["unknown shape"] = (tmp / "noise.txt", "unknown shape")
    (tmp / "empty.jsonl").write_bytes(b"")
    cases["empty file"] = (tmp / "empty.jsonl", "empty file")
    page = (VECTORS / "search/page-000.json").read_bytes()
    (tmp / "page.json").write_bytes(page[: len(page) // 2])
    cases["truncated search page"] = (tmp / "page.json", "not a complete search page")
    cases["missing path"] = (tmp / "nope.csv", "no such file or directory")
    return cases


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "case",
    [
        "malformed json line",
        "truncated file",
        "truncated gzip",
        "wrong type",
        "missing field",
        "not utf-8",
        "csv column count",
        "csv bad timestamp",
        "corrupt parquet footer",
        "unknown shape",
        "empty file",
        "truncated search page",
        "missing path",
    ],
)
def test_bad_input_is_refused_with_file_and_line(case: str, bad) -> None:
    path, expected = bad[case]
    with pytest.raises(InputError) as error:
        cf.open(str(path)).count()
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_corrupt_parquet_row_group_is_named(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(VECTORS / "ocsf/audit/2026/05/11/2026-05-11T08.parquet")
    path = tmp_path / "groups.parquet"
    pq.write_table(table, path, row_group_size=60, compression="zstd")
    meta = pq.ParquetFile(path).metadata
    column = meta.row_group(2).column(meta.schema.names.index("metadata_json"))
    offset = column.data_page_offset
    data = bytearray(path.read_bytes())
    # the same bytes every run: random ones (os.urandom) once left the page readable
    # (one CI run in hundreds), and the test failed by chance
    data[offset + 20 : offset + 220] = b"\xff" * 200
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"row group 3 of 4"):
        cf.open(str(path))


@pytest.mark.parametrize("millis", [
    253_402_300_800_000,  # 10000-01-01: Python's datetime ends with 9999
    -62_135_596_800_001,  # the millisecond before 0001-01-01
    2**63 - 1,  # x 1000 wrapped around to a time in 1969, read as if it were the time
])
def test_an_ocsf_time_outside_the_years_1_to_9999_is_named(tmp_path: Path, millis: int) -> None:
    """Such a time used to be read: stats, explain and reconcile then stopped with
    "unexpected OverflowError" (no file), the largest ones silently as another time."""
    import pyarrow.parquet as pq

    table = pq.read_table(VECTORS / "ocsf/audit/2026/05/11/2026-05-11T08.parquet")
    times = table.column("time").to_pylist()
    times[4] = millis
    index = table.schema.get_field_index("time")
    path = tmp_path / "2026-05-11T08.parquet"
    pq.write_table(table.set_column(index, "time", pa.array(times, pa.int64())), path)
    with pytest.raises(InputError) as error:
        cf.open(str(path))
    assert str(error.value) == (f"{path}: row 5: column 'time' holds {millis} ms, a time "
                                "outside the years 1-9999")


@pytest.mark.parametrize("name, old, new, shown", [
    ("db.jsonl", "2026-05-11T08:00:49.939955+00:00", "0000-01-01T00:00:00Z",
     "occurred_at 0000-01-01 00:00:00.000000Z"),
    ("db.csv", "2026-05-11 08:00:49.939955+00", "9999-12-31 23:00:00-05",
     "occurred_at 10000-01-01 04:00:00.000000Z"),
    ("db.jsonl", "2026-05-11T08:00:50.506955+00:00", "0001-01-01T00:00:00+05:00",
     "ingested_at 0000-12-31 19:00:00.000000Z"),
])
def test_a_text_time_outside_the_years_1_to_9999_is_named(tmp_path: Path, name: str, old: str,
                                                          new: str, shown: str) -> None:
    """Arrow reads year 0 and a 9999 pushed past its end by an offset; stats, explain and
    reconcile then stopped with "unexpected OverflowError", naming no file. Refused at
    its line, or skipped and counted."""
    text = (VECTORS / name).read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    line = 1 + text[:text.index(old)].count("\n")
    with pytest.raises(InputError) as error:
        cf.open(str(path))
    assert str(error.value) == f"{path}: line {line}: {shown} is a time outside the years 1-9999"
    skipped = cf.open(str(path), on_bad_line="skip")
    assert skipped.count() == 239 and skipped.skipped_lines == 1


def test_a_search_page_time_outside_the_years_1_to_9999_is_named_by_its_element(
        tmp_path: Path) -> None:
    """A search page has no lines: its rows are the elements of "events", as every other
    error about its events says (``model.source_line_unit``)."""
    import json

    page = json.loads((VECTORS / "search" / "page-000.json").read_text(encoding="utf-8"))
    page["events"][2]["Event"]["occurred_at"] = "0001-01-01T00:00:00+05:00"
    path = tmp_path / "page-000.json"
    path.write_text(json.dumps(page), encoding="utf-8")
    with pytest.raises(InputError) as error:
        cf.open(str(path))
    assert str(error.value) == (f"{path}: element 3: occurred_at 0000-12-31 19:00:00.000000Z "
                                "is a time outside the years 1-9999")


@pytest.mark.parametrize("seq", [-(2**63), 2**63 - 1])
def test_a_chain_seq_at_an_end_of_int64_is_named(tmp_path: Path, seq: int) -> None:
    """verify's seq - 1 and seq + 1 overflowed in DuckDB: "reading the data failed: Out
    of Range Error: Overflow in subtraction of INT64", naming no file and pointing at a
    snapshot's manifest. Refused at its line, or skipped and counted."""
    lines = (VECTORS / "db.csv").read_text(encoding="utf-8").split("\n")
    cells = lines[5].split(",")
    assert cells[-2].isdigit()  # chain_seq, before ingest_signature
    cells[-2] = str(seq)
    lines[5] = ",".join(cells)
    path = tmp_path / "db.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as error:
        cf.open(str(path))
    assert str(error.value) == f"{path}: line 6: chain_seq {seq} is out of the range of a chain"
    skipped = cf.open(str(path), on_bad_line="skip")
    assert skipped.count() == 239 and skipped.skipped_lines == 1


@pytest.mark.parametrize("value, said", [
    ({"a": [1]}, "an object"), ([5], "an array"), (True, "a boolean"), ("five", "'five'"),
])
def test_a_chain_seq_of_the_wrong_type_is_said_as_json(tmp_path: Path, value: object,
                                                      said: str) -> None:
    """An object used to be said as Python's repr: "{'a': [JsonbNumber('1')]}"."""
    import json

    lines = (VECTORS / "db.jsonl").read_text(encoding="utf-8").split("\n")
    row = json.loads(lines[1])
    row["chain_seq"] = value
    lines[1] = json.dumps(row)
    path = tmp_path / "db.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as error:
        cf.open(str(path))
    assert str(error.value) == f"{path}: line 2: chain_seq must be an integer, not {said}"


def test_skip_bad_lines_continues_and_counts(bad) -> None:
    path, _ = bad["malformed json line"]
    snap = cf.open(str(path), on_bad_line="skip")
    assert snap.count() == 239
    assert snap.skipped_lines == 1 and "line 5" in snap.first_skipped


def test_directory_walk_leaves_out_non_exports_but_explicit_files_must_be_exports() -> None:
    names = {Path(i.path).name for i in scan([str(VECTORS)])}
    assert "key.hex" not in names and "README.md" not in names
    with pytest.raises(InputError, match="unknown shape"):
        scan([str(VECTORS / "key.hex")])


def test_cli_reports_bad_input_as_one_line_and_exit_2(bad, tmp_path: Path) -> None:
    for case in ("malformed json line", "corrupt parquet footer", "unknown shape"):
        path, expected = bad[case]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "caracal_forensics",
                "ingest",
                "--source",
                str(path),
                "--out",
                str(tmp_path / case.replace(" ", "-")),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert str(path) in proc.stderr and expected in proc.stderr


def test_cli_skip_says_how_many_lines_it_skipped(bad, tmp_path: Path) -> None:
    path, _ = bad["malformed json line"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "caracal_forensics",
            "ingest",
            "--source",
            str(path),
            "--on-bad-line",
            "skip",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 malformed line" in proc.stderr
    assert "wrote 239 events" in proc.stdout


def test_source_falls_back_to_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "CARACAL_FORENSICS_SOURCE": str(VECTORS / "db.csv")}
    proc = subprocess.run(
        [sys.executable, "-m", "caracal_forensics", "ingest", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    env.pop("CARACAL_FORENSICS_SOURCE")
    proc = subprocess.run(
        [sys.executable, "-m", "caracal_forensics", "ingest", "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 2 and "CARACAL_FORENSICS_SOURCE" in proc.stderr


# --- property: whatever PostgreSQL could store, each dump shape reads back exactly -----

TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs",)),
    max_size=12,
)
class Num(str):
    """A number literal in a generated document (a plain str is a JSON string)."""


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    TEXT,
    st.integers(-(10**20), 10**20).map(lambda i: Num(i)),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: Num(f"{d:E}")),
)


def _json_text(value) -> str:
    import json

    if isinstance(value, dict):
        return "{" + ", ".join(json.dumps(k) + ": " + _json_text(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, Num):
        return str(value)
    return json.dumps(value)


JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(TEXT, children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def events(draw) -> list[dict]:
    count = draw(st.integers(1, 6))
    out = []
    for index in range(count):
        micros = draw(st.integers(1_700_000_000_000_000, 1_900_000_000_000_000))
        out.append(
            {
                "id": f"ev-{index}-" + draw(TEXT.filter(lambda s: "\n" not in s and "\r" not in s)),
                "zone_id": draw(st.sampled_from(["z1", "zone:prod/eu-1", "zöne"])),
                "event_type": draw(st.sampled_from(["token_exchange", "step_up_issued"])),
                "request_id": draw(st.one_of(st.none(), TEXT)),
                "decision": draw(st.sampled_from(["allow", "deny", "ALLOW", None])),
                "policy_set_id": draw(st.one_of(st.none(), TEXT)),
                "policy_set_version_id": "psv-1",
                "manifest_sha": "sha256:" + "a" * 64,
                "evaluation_status": draw(st.sampled_from(["complete", "anomaly", None, ""])),
                "determining_policies_json": draw(
                    st.one_of(st.none(), JSON_VALUE.map(lambda v: cf.jsonb_text(_json_text(v))))
                ),
                "diagnostics_json": draw(
                    st.one_of(st.none(), JSON_VALUE.map(lambda v: cf.jsonb_text(_json_text(v))))
                ),
                "metadata_json": cf.jsonb_text(
                    _json_text(draw(st.dictionaries(TEXT, JSON_VALUE, max_size=4)))
                ),
                "occurred_at": micros,
                "ingested_at": micros + draw(st.integers(0, 10**9)),
                "ingest_signature": None,
            }
        )
    make_fixtures.chain(out, b"k" * 32)
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events())
def test_dump_shapes_read_back_exactly(tmp_path: Path, stream: list[dict]) -> None:
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    make_fixtures.write_db_csv(stream, str(directory / "db.csv"))
    (directory / "db.jsonl").write_text(
        "".join(make_fixtures.db_json_line(e) + "\n" for e in stream), encoding="utf-8"
    )
    (directory / "cli.jsonl").write_text(
        "".join(make_fixtures.cli_json_line(e) + "\n" for e in stream), encoding="utf-8"
    )
    for name in ("db.csv", "db.jsonl", "cli.jsonl"):
        rows = cf.open(str(directory / name)).sql("SELECT * FROM events ORDER BY source_line")
        assert rows.height == len(stream), name
        for row, event in zip(rows.to_dicts(), stream, strict=True):
            for field in HASH_FIELDS:
                expected = event[field]
                if name != "db.csv" and field.endswith("_json") and expected == "null":
                    expected = None  # JSON shapes print SQL NULL and jsonb null alike
                assert row[field] == expected, (name, field)
            stamp = row["occurred_at"]
            assert int(stamp.timestamp()) * 1_000_000 + stamp.microsecond == event["occurred_at"]
            assert row["chain_seq"] == event["chain_seq"]


def test_python_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "caracal_forensics", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("caracal-forensics ")


def test_empty_inputs_still_have_columns(tmp_path: Path) -> None:
    (tmp_path / "only-header.csv").write_text(
        (VECTORS / "db.csv").read_text().split("\n")[0] + "\n"
    )
    snap = cf.open(str(tmp_path / "only-header.csv"))
    assert snap.count() == 0
    assert snap.sql("SELECT * FROM events").columns == EVENT_SCHEMA.names
    assert isinstance(snap.arrow(), pa.Table)


# --- large JSON lines files are parsed by worker processes: same rows, same errors ------


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    from caracal_forensics.sources import _parallel

    monkeypatch.setattr(_parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_parallel, "BLOCK_BYTES", 20_000)  # many blocks from a small file
    monkeypatch.setenv(_parallel.WORKERS_ENV, "2")
    # with the C kernel the readers stay in-process; these tests are about the workers
    from caracal_forensics import jsonb_native

    monkeypatch.setattr(jsonb_native, "AVAILABLE", False)


def test_parallel_parse_gives_the_serial_rows(parallel) -> None:
    for path in (VECTORS / "db.jsonl", VECTORS / "cli.jsonl"):
        rows = cf.open(str(path)).sql("SELECT * FROM events ORDER BY source_line")
        assert rows.equals(_serial(path)), path
        assert rows["source_line"].to_list() == list(range(1, 241))


def _serial(path: Path):
    from caracal_forensics.sources import _parallel

    saved = _parallel.PARALLEL_MIN_BYTES
    _parallel.PARALLEL_MIN_BYTES = 1 << 62
    try:
        return cf.open(str(path)).sql("SELECT * FROM events ORDER BY source_line")
    finally:
        _parallel.PARALLEL_MIN_BYTES = saved


def test_parallel_parse_reports_the_first_bad_line(parallel, bad) -> None:
    path, expected = bad["malformed json line"]
    with pytest.raises(InputError, match=expected):
        cf.open(str(path))
    path, expected = bad["truncated file"]
    with pytest.raises(InputError, match=expected):
        cf.open(str(path))
    snap = cf.open(str(bad["not utf-8"][0]), on_bad_line="skip")
    assert snap.count() == 239 and snap.skipped_lines == 1 and "line 2" in snap.first_skipped


@pytest.mark.parametrize("variant", ["as is", "small blocks", "gzip", "short row"])
def test_a_table_dump_is_fingerprinted_by_its_reader(tmp_path, monkeypatch, variant):
    """The CSV reader's parallel pass hashes the file's bytes as stored while it parses
    them, so verify reads a dump once; where that pass does not read it through (a short
    row sends the rest to the line-exact reader) the file is hashed on its own. Either
    way the fingerprint is the file's, byte for byte."""
    from caracal_forensics.chain.files import verify_files
    from caracal_forensics.sources import _io, db_csv

    data = (VECTORS / "db.csv").read_bytes()
    if variant == "small blocks":
        monkeypatch.setattr(db_csv, "BLOCK_SIZE", 4096)
    if variant == "short row":
        lines = data.split(b"\n")
        lines[7] = b"ev-short,zone-alpha,token_exchange"
        data = b"\n".join(lines)
    path = tmp_path / ("db.csv.gz" if variant == "gzip" else "db.csv")
    path.write_bytes(gzip.compress(data) if variant == "gzip" else data)
    tapped = []
    original = _io.FileDigest.result
    monkeypatch.setattr(_io.FileDigest, "result",
                        lambda self: tapped.append(original(self)) or tapped[-1])
    key = (VECTORS / "key.hex").read_text().strip()
    verified = verify_files([str(path)], key=key, on_bad_line="skip")
    expected = _io.file_sha256(str(path))
    assert (verified.report.inputs[0].bytes, verified.report.inputs[0].sha256) == expected
    assert tapped == ([None] if variant == "short row" else [expected])


@pytest.mark.parametrize("name", ["db.csv", "db.jsonl", "cli.jsonl"])
def test_a_file_read_twice_is_fingerprinted_by_its_second_reading(tmp_path, monkeypatch,
                                                                   name):
    """A wrong key: verify's first pass gives up at the first HMAC and the wrong key's
    pass reads the file again from the start; the reader's tap starts over with it, so
    the fingerprint is still taken on the way, not by hashing the file once more."""
    from caracal_forensics.chain.files import verify_files
    from caracal_forensics.sources import _io

    tapped = []
    original = _io.FileDigest.result
    monkeypatch.setattr(_io.FileDigest, "result",
                        lambda self: tapped.append(original(self)) or tapped[-1])
    path = VECTORS / name
    verified = verify_files([str(path)], key="ab" * 32)
    assert verified.report.likely_wrong_key
    expected = _io.file_sha256(str(path))
    assert (verified.report.inputs[0].bytes, verified.report.inputs[0].sha256) == expected
    assert tapped == [expected]


def test_a_snapshot_input_counts_its_events(tmp_path):
    """Reports list each input's rows; a snapshot's are its events (from its footers)."""
    from caracal_forensics.chain.files import verify_files

    out = tmp_path / "snap"
    cf.open(str(VECTORS / "db.csv")).ingest(str(out))
    events = cf.open(str(VECTORS / "db.csv")).sql("SELECT count(*) AS n FROM events").to_dicts()
    assert [i.rows for i in scan([str(out)])] == [events[0]["n"]] and events[0]["n"] > 0
    key = (VECTORS / "key.hex").read_text().strip()
    assert [i.rows for i in verify_files([str(out)], key=key).report.inputs] == [events[0]["n"]]


def test_a_failed_read_leaves_no_fingerprint_thread(tmp_path):
    """The JSON lines reader hashes its blocks on a thread of the fingerprint's own; a
    read that fails (a malformed line) must not leave that thread waiting forever."""
    import threading
    import time

    lines = _lines(VECTORS / "db.jsonl")
    lines[150] = lines[150][:-30]
    path = _write(tmp_path / "broken.jsonl", lines)
    with pytest.raises(InputError, match="line 151"):
        cf.open(str(path))
    deadline = time.monotonic() + 5
    while any(t.name == "fingerprint-tap" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a fingerprint thread is still waiting"
        time.sleep(0.01)


@pytest.mark.parametrize("shape, name", [("db.jsonl", "db.jsonl"), ("cli.jsonl", "cli.jsonl")])
def test_a_first_line_longer_than_the_detection_peek_is_still_detected(
        tmp_path: Path, shape: str, name: str) -> None:
    """Detection peeks at 64 KiB; a real first event may be longer (up to the maximum
    line), and was refused as "malformed JSON on the first line (truncated?)"."""
    lines = (VECTORS / shape).read_bytes().splitlines(keepends=True)
    first = lines[0].decode("utf-8")
    key = next(k for k in ('"metadata_json":{', '"metadata" : {') if k in first)
    padded = first.replace(key, key + '"pad": "' + "x" * 200_000 + '", ', 1)
    path = tmp_path / name
    path.write_bytes(padded.encode("utf-8") + b"".join(lines[1:]))
    assert scan([str(path)])[0].shape == scan([str(VECTORS / shape)])[0].shape
    events = cf.open(str(path)).duckdb.sql("SELECT count(*) FROM events").fetchall()[0][0]
    assert events == len(lines)
