"""The shape registry: a shape is one class plus one registration, and nothing else in the
package needs to know it (detection, reading, ``caracal_forensics.open``, follow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import caracal_forensics as cf
from caracal_forensics.admin.model import AdminShape
from caracal_forensics.errors import InputError
from caracal_forensics.model import Shape
from caracal_forensics.sources import registry
from caracal_forensics.sources._batch import rows_to_batches
from caracal_forensics.sources.detect import detect_shape
from caracal_forensics.sources.shapes.base import TEXT, SourceShape

TSV = (
    "id\tzone_id\toccurred_at\tevent_type\tdecision\tchain_seq\n"
    "ev-1\tzone-a\t2026-05-11T08:00:00.123456Z\ttoken_exchange\tallow\t1\n"
    "ev-2\tzone-a\t2026-05-11T08:00:01.000001Z\ttoken_exchange\tdeny\t2\n"
    "ev-3\tzone-b\t2026-05-11T08:00:02Z\tpolicy_eval\tallow\t1\n"
)


class ToyTsv(SourceShape):
    """Events as tab-separated values: everything a shape has to say, in one class."""

    name = "toy_tsv"
    kind = TEXT
    line_oriented = True
    header_line = True

    @classmethod
    def detect(cls, probe):
        return probe.head.startswith(b"id\tzone_id\t")

    @classmethod
    def read(cls, source, bad) -> Iterator:
        with open(source.path, encoding="utf-8") as handle:
            names = handle.readline().rstrip("\n").split("\t")
            rows = []
            for number, line in enumerate(handle, start=2):
                row: dict = dict(zip(names, line.rstrip("\n").split("\t"), strict=True))
                row["chain_seq"] = int(row["chain_seq"])
                row.update(source_file=source.path, source_line=number,
                           source_shape=cls.name, occurred_at_digits=6,
                           absent_fields="content_sha256,prev_content_sha256,chain_hmac")
                rows.append(row)
        return rows_to_batches(rows, source.path)


@pytest.fixture
def toy(tmp_path: Path):
    path = tmp_path / "events.tsv"
    path.write_text(TSV, encoding="utf-8")
    registry.register(ToyTsv)
    try:
        yield path
    finally:
        registry.unregister(ToyTsv)


def test_a_registered_shape_is_detected_and_read_through_open(toy: Path) -> None:
    assert detect_shape(str(toy)) == "toy_tsv"
    snap = cf.open(str(toy))
    assert [i.shape for i in snap.inputs] == ["toy_tsv"]
    assert snap.count() == 3
    frame = snap.sql("SELECT id, zone_id, decision, chain_seq, source_line, source_shape "
                     "FROM events ORDER BY id")
    assert frame.rows() == [
        ("ev-1", "zone-a", "allow", 1, 2, "toy_tsv"),
        ("ev-2", "zone-a", "deny", 2, 3, "toy_tsv"),
        ("ev-3", "zone-b", "allow", 1, 4, "toy_tsv"),
    ]
    assert snap.tail(decision="deny", limit=0)["id"].to_list() == ["ev-2"]


def test_an_unregistered_shape_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv"
    path.write_text(TSV, encoding="utf-8")
    with pytest.raises(InputError, match="unknown shape"):
        detect_shape(str(path))


def test_a_name_is_registered_once() -> None:
    class Twin(ToyTsv):
        name = Shape.DB_CSV

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Twin)
    assert Twin not in registry.SHAPES


def test_every_file_shape_of_the_model_is_registered_in_detection_order() -> None:
    """The names in manifests and reports stay model.Shape's; the registry holds each
    once, and the order is the detection order detect.py always had."""
    names = [shape.name for shape in registry.SHAPES]
    assert len(names) == len(set(names))
    assert set(names) == set(Shape.EVENT_SHAPES + Shape.ALERT_SHAPES + AdminShape.ALL) - {
        Shape.POSTGRES, Shape.ALERTS_SNAPSHOT}
    # the admin chain's shapes first (an admin-audit page is a page too), then the rest
    json_order = [s.name for s in registry.SHAPES if s.kind == "json" and not s.holds_admin]
    # a spool by its file name and a dead letter by its keys first; then the Admin API's
    # JSON: its explain trace has "events", its rows "_json" keys
    assert json_order == [Shape.WIRE_SPOOL, Shape.DLQ_ENTRY, Shape.API_JSON, Shape.SEARCH_PAGE,
                          Shape.DB_JSONL, Shape.CLI_JSONL, Shape.ALERTS_JSONL]
    assert [s.name for s in registry.SHAPES if s.kind == "text" and not s.holds_admin] == [
        Shape.DB_CSV, Shape.ALERTS_CSV, Shape.API_CSV]
    assert registry.holds_alerts(Shape.ALERTS_SNAPSHOT)
    assert not registry.holds_alerts(Shape.POSTGRES)


def test_follow_reads_a_registered_line_shape_from_its_offset(toy: Path) -> None:
    """``line_oriented`` and ``header_line`` are all follow needs: the appended line is
    read alone (with the header repeated) and keeps its line number in the file."""
    from caracal_forensics.filters import Filters
    from caracal_forensics.follow import Follower

    with Follower([str(toy)], Filters.build(limit=0)) as follower:
        first = follower.poll()
        assert first.column("id").to_pylist() == ["ev-1", "ev-2", "ev-3"]
        with open(toy, "a", encoding="utf-8") as handle:
            handle.write("ev-4\tzone-b\t2026-05-11T08:00:03Z\tpolicy_eval\tdeny\t2\n")
        more = follower.poll()
        state = follower._files[str(toy)]
        assert state.incremental and state.offset == len(TSV.encode()) + 52
    assert more.column("id").to_pylist() == ["ev-4"]
    assert more.column("source_line").to_pylist() == [5]
    assert more.column("source_file").to_pylist() == [str(toy)]
